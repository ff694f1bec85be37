"""The ``imagelock`` command (and ``python -m imagelock``): the CLI, with Ctrl-C handled even while it loads."""

import sys

from imagelock.errors import EXIT_INTERRUPTED


def main() -> None:
    try:
        from imagelock.cli import main as run  # typer and rich take a while to import: Ctrl-C may come now

        run()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    main()
