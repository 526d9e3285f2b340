"""The stages the Faust worker runs. They read a batch, call pure policy code and write the results."""
