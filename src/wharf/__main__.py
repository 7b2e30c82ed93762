"""``python -m wharf``: the same as the ``wharf`` command."""

from wharf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
