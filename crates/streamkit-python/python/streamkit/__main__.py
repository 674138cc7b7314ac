"""``python -m streamkit …`` runs the streamkit command line (the same code
as the ``streamkit`` binary: run, list, probe, bench, serve, ptp)."""

import sys

from ._native import run_cli


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    return run_cli(["streamkit", *args])


if __name__ == "__main__":
    sys.exit(main())
