"""Run every tutorial notebook top to bottom: ``python -m nbtoolkit.tutorials notebooks build``.

Writes executed copies and HTML to ``build/notebooks/``, an index page ``build/index.html``
linking them and the results tables in ``build/results/``, and prints seconds and pass/fail per
notebook. Exits non-zero when a notebook fails. Needs the ``dev`` extra (papermill, nbconvert).

Parameters go in through papermill (after each notebook's ``parameters`` cell): ``--preset
paper`` (see :mod:`nbtoolkit.presets`), ``--model NAME`` (each notebook's ``MODEL``, but 03's,
whose network is trained in the notebook) and ``-p NAME=VALUE`` (a Python literal, else a
string) for any other; a notebook receives only the parameters it has.
"""

from __future__ import annotations

import argparse
import ast
import html
import sys
import time
from pathlib import Path

from .presets import NOTEBOOKS, PRESETS


def run_notebook(path: Path, out_dir: Path, timeout: int = 900,
                 parameters: dict | None = None) -> tuple[bool, float, str]:
    """Execute one notebook in its own folder with papermill ``parameters``; save the executed
    copy and its HTML."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    output = out_dir / path.name
    start, error = time.perf_counter(), ""
    try:
        papermill.execute_notebook(path, output, parameters=parameters or {}, kernel_name="python3",
                                   cwd=path.parent, execution_timeout=timeout, progress_bar=False)
    except Exception as exc:  # report and go on to the next notebook
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    seconds = time.perf_counter() - start
    notebook = nbformat.read(output if output.exists() else path, as_version=4)
    nbformat.write(notebook, output)
    body, _ = HTMLExporter().from_notebook_node(notebook)
    (out_dir / path.with_suffix(".html").name).write_text(body)
    return not error, seconds, error


def write_index(build: Path, rows: list[tuple[str, bool, float, str]]) -> Path:
    """``build/index.html``: the executed notebooks and the results tables."""
    items = "".join(
        f"<tr><td><a href='notebooks/{Path(n).with_suffix('.html').name}'>{html.escape(n)}</a></td>"
        f"<td>{'pass' if ok else 'FAIL'}</td><td>{s:.0f} s</td><td>{html.escape(e)}</td></tr>"
        for n, ok, s, e in rows)
    results = sorted((build / "results").glob("*.csv")) if (build / "results").exists() else []
    links = "".join(f"<li><a href='results/{p.name}'>{p.name}</a> "
                    f"(<a href='results/{p.with_suffix('.json').name}'>json</a>)</li>" for p in results)
    page = (f"<html><head><meta charset='utf-8'><title>nbtoolkit tutorials</title></head><body>"
            f"<h1>nbtoolkit tutorials</h1><table border=1 cellpadding=4><tr><th>notebook</th>"
            f"<th>status</th><th>time</th><th>error</th></tr>{items}</table>"
            f"<h2>Results tables</h2><ul>{links or '<li>none yet</li>'}</ul></body></html>")
    path = build / "index.html"
    path.write_text(page)
    return path


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


def notebook_parameters(notebook: str, preset: str | None, model: str | None,
                        given: dict) -> dict:
    """The papermill parameters ``notebook`` receives: those of its parameters cell only."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"{notebook} has no presets in nbtoolkit.presets.NOTEBOOKS")
    own = NOTEBOOKS[notebook].cpu
    chosen = {name: value for name, value in given.items() if name in own}
    if model is not None and own["MODEL"] != "mlp-16":  # 03's MODEL names the network it trains
        chosen["MODEL"] = model
    if preset is not None:
        chosen["PRESET"] = preset
    return chosen


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
