"""Run every tutorial notebook top to bottom: ``python -m nbtoolkit.cli.tutorials notebooks build``
(``make tutorials``; ``make test`` with ``--jobs 2``).

Writes executed copies and HTML to ``build/notebooks/``, an index page ``build/index.html``
linking them, their result bands and the results tables in ``build/results/``, and prints seconds
and pass/fail per notebook. Exits non-zero when a notebook fails (a cell raised, or a headline
number left its band: :mod:`nbtoolkit.tutorials.bands`). Needs the ``dev`` extra (papermill,
nbconvert).

Parameters go in through papermill (after each notebook's ``parameters`` cell): ``--preset
paper`` (see :mod:`nbtoolkit.tutorials.presets`), ``--model NAME`` (each notebook's ``MODEL``,
but 03's, whose network is trained in the notebook) and ``-p NAME=VALUE`` (a Python literal, else
a string) for any other; a notebook receives only the parameters it has.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from ..tutorials.presets import NOTEBOOKS, PRESETS
from ..tutorials.runner import notebook_parameters, run_notebooks, write_index


def parameter(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> (name, value): a Python literal (``10``, ``None``, ``[0, 1]``), else the
    text itself."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"parameters are NAME=VALUE, e.g. N_FACTS=10; got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def notebook_paths(folder: Path, only: list[str] | None) -> list[Path]:
    """The notebooks of ``folder`` (those whose names start with one of ``only``); an ``only``
    that matches none is an error."""
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise SystemExit(f"no notebooks in {folder}")
    for prefix in only or []:
        if not any(p.name.startswith(prefix) for p in paths):
            raise SystemExit(f"--only {prefix!r} matches no notebook in {folder}: "
                             f"{', '.join(p.stem for p in paths)}")
    return [p for p in paths if not only or any(p.name.startswith(o) for o in only)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", type=Path, nargs="?", default=Path("notebooks"))
    parser.add_argument("build", type=Path, nargs="?", default=Path("build"))
    parser.add_argument("--only", nargs="*", help="notebook names (or prefixes) to run")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run side by side")
    parser.add_argument("--preset", choices=PRESETS, help="every notebook's PRESET")
    parser.add_argument("--model", help="every notebook's MODEL (but 03's)")
    parser.add_argument("-p", "--parameter", type=parameter, action="append", default=[],
                        metavar="NAME=VALUE", help="a parameter of the notebooks that have it")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    given = dict(args.parameter)
    paths = notebook_paths(args.notebooks, args.only)
    unknown = sorted(name for name in given
                     if not any(name in NOTEBOOKS[p.stem].cpu for p in paths if p.stem in NOTEBOOKS))
    if unknown:
        parser.error(f"no notebook run here has the parameter {', '.join(unknown)} (-p NAME=VALUE)")
    print(f"running {len(paths)} notebooks, {args.jobs} at a time ...", flush=True)
    runs = run_notebooks(paths, args.build / "notebooks", jobs=args.jobs,
                         parameters=lambda stem: notebook_parameters(stem, args.preset,
                                                                     args.model or None, given),
                         report=lambda line: print(line, flush=True))
    index = write_index(args.build, runs)
    print(f"\n{'notebook':40s} {'status':6s} {'seconds':>8s}")
    for run in runs:
        print(f"{run.name:40s} {'pass' if run.ok else 'FAIL':6s} {run.seconds:8.0f}")
    print(f"\nindex: {index}")
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
