"""``python -m vaelib``: the command line of :mod:`vaelib.cli`."""

from vaelib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
