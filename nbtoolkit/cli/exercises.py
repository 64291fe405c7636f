"""Write the student notebooks (solutions removed by nbgrader) and an nbgrader course:
``python -m nbtoolkit.cli.exercises notebooks build`` (``make exercises``; see
:mod:`nbtoolkit.exercises.release` and notebooks/README.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..exercises.release import release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the student notebooks (solutions removed).")
    parser.add_argument("notebooks", type=Path, help="folder of the tutorials (notebooks/)")
    parser.add_argument("build", type=Path, help="output folder (build/)")
    args = parser.parse_args(argv)
    for path in release(args.notebooks, args.build):
        print(path)
    print(f"nbgrader course (for autograding): {args.build / 'classroom'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
