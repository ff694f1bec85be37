"""The ``imagelock`` command (and ``python -m imagelock``): the CLI, with Ctrl-C handled even while it loads.

``check`` and a ``lock`` with nothing to do may be answered before the CLI loads (``_fastpath``).
"""

import gc
import sys

from imagelock._fastpath import answer
from imagelock.errors import EXIT_INTERRUPTED


def main() -> None:
    try:
        remembered = answer(sys.argv[1:])
        if remembered is not None:
            raise SystemExit(remembered)
        from imagelock.cli import main as run  # typer and rich take a while to import: Ctrl-C may come now

        # What is loaded by now (modules, classes, functions) lives as long as the process: the cyclic
        # collector need not walk it again on each full collection (a 200-image lock made one, of 40 ms).
        gc.freeze()
        run()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    main()
