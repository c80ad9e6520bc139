"""``python -m glia``: the ``glia`` command."""

from glia.cli import main

if __name__ == "__main__":
    main()
