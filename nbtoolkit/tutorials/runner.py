"""Run tutorial notebooks top to bottom (``make tutorials``, :mod:`nbtoolkit.cli.tutorials`).

:func:`run_notebook` writes an executed copy and its HTML, :func:`write_index` the page
``build/index.html`` linking them and the results tables in ``build/results/``;
:func:`notebook_parameters` picks the papermill parameters a notebook has (after its ``parameters``
cell: ``PRESET``, ``MODEL`` and any other). Needs the ``dev`` extra (papermill, nbconvert).
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from .presets import NOTEBOOKS


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


def notebook_parameters(notebook: str, preset: str | None, model: str | None,
                        given: dict) -> dict:
    """The papermill parameters ``notebook`` receives: those of its parameters cell only."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"{notebook} has no presets in nbtoolkit.tutorials.presets.NOTEBOOKS")
    own = NOTEBOOKS[notebook].cpu
    chosen = {name: value for name, value in given.items() if name in own}
    if model is not None and own["MODEL"] != "mlp-16":  # 03's MODEL names the network it trains
        chosen["MODEL"] = model
    if preset is not None:
        chosen["PRESET"] = preset
    return chosen
