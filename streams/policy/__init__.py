"""Pure moderation policy: no Kafka, no Faust, no clocks. Everything here is a function of its inputs."""
