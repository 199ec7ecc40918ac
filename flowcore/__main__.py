"""``python -m flowcore``: the ``flowcore`` command line (see :mod:`flowcore.cli`)."""

from flowcore.cli import main

if __name__ == "__main__":
    main()
