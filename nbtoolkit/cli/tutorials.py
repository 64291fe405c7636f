"""Run every tutorial notebook top to bottom: ``python -m nbtoolkit.cli.tutorials notebooks build``
(``make tutorials``).

Writes executed copies and HTML to ``build/notebooks/``, an index page ``build/index.html``
linking them and the results tables in ``build/results/``, and prints seconds and pass/fail per
notebook. Exits non-zero when a notebook fails. Needs the ``dev`` extra (papermill, nbconvert).

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

from ..tutorials.presets import PRESETS
from ..tutorials.runner import notebook_parameters, run_notebook, write_index


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", type=Path, nargs="?", default=Path("notebooks"))
    parser.add_argument("build", type=Path, nargs="?", default=Path("build"))
    parser.add_argument("--only", nargs="*", help="notebook names (or prefixes) to run")
    parser.add_argument("--preset", choices=PRESETS, help="every notebook's PRESET")
    parser.add_argument("--model", help="every notebook's MODEL (but 03's)")
    parser.add_argument("-p", "--parameter", type=parameter, action="append", default=[],
                        metavar="NAME=VALUE", help="a parameter of the notebooks that have it")
    args = parser.parse_args(argv)
    given = dict(args.parameter)
    out_dir = args.build / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = sorted(args.notebooks.glob("*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in args.only)]
    rows = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        parameters = notebook_parameters(path.stem, args.preset, args.model or None, given)
        ok, seconds, error = run_notebook(path.resolve(), out_dir, parameters=parameters)
        rows.append((path.name, ok, seconds, error))
        print(f"  {'pass' if ok else 'FAIL'}  {seconds:6.0f} s  {error}", flush=True)
    index = write_index(args.build, rows)
    print(f"\n{'notebook':40s} {'status':6s} {'seconds':>8s}")
    for name, ok, seconds, _ in rows:
        print(f"{name:40s} {'pass' if ok else 'FAIL':6s} {seconds:8.0f}")
    print(f"\nindex: {index}")
    return 0 if all(ok for _, ok, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
