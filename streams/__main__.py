"""``python -m streams`` and the ``groupwarden`` command."""

import sys


def main() -> int:
    """The command line. Its modules take a second to load: a Ctrl-C meanwhile ends it as quietly as one later does."""
    try:
        from streams.cli import main as run  # noqa: PLC0415 - inside the guard
    except KeyboardInterrupt:
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())
