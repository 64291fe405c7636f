"""Run tutorial notebooks top to bottom (``make tutorials``, ``make test``,
:mod:`nbtoolkit.cli.tutorials`).

:func:`run_notebooks` executes notebooks with papermill (:mod:`nbtoolkit.cli.execute`), ``jobs`` at a time, each in its own
process with ``cpus // jobs`` threads, longest first; it writes each executed copy and its HTML.
:func:`write_index` writes ``build/index.html``: each notebook's status, time and result bands,
and the results tables in ``build/results/``. :func:`notebook_parameters` picks the papermill
parameters a notebook has (``PRESET``, ``MODEL`` and any other of its ``parameters`` cell).
Needs the ``dev`` extra (papermill, nbconvert).
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from .presets import NOTEBOOKS

# Started first when notebooks run side by side (the longest, measured cold on the CPU preset),
# so that the last one to start is short; the others follow in name order.
LONGEST_FIRST = ("04_boundless_das", "05_ccs", "02_causal_tracing", "06_instruction_shift",
                 "11_attribution_patching", "10_ioi_circuit", "08_selfie_control")


class NotebookRun(NamedTuple):
    """One executed notebook: its file name, whether every cell ran, seconds, the error's last line."""

    name: str
    ok: bool
    seconds: float
    error: str


def run_notebook(path: Path, out_dir: Path, *, parameters: dict | None = None,
                 env: dict | None = None, timeout: int = 900) -> NotebookRun:
    """Execute one notebook in its own folder with papermill ``parameters`` in a process with
    ``env`` (default: this one's); save the executed copy and its HTML in ``out_dir``."""
    import nbformat
    from nbconvert import HTMLExporter

    output = out_dir / path.name
    command = [sys.executable, "-m", "nbtoolkit.cli.execute", str(path), str(output),
               "--cwd", str(path.parent), "--kernel", "python3", "--execution-timeout", str(timeout),
               "--no-progress-bar", "--log-level", "ERROR", "-y", json.dumps(parameters or {})]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    error = "" if done.returncode == 0 else (lines[-1] if lines else f"papermill exit {done.returncode}")
    notebook = nbformat.read(output if output.exists() else path, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(notebook)
    (out_dir / path.with_suffix(".html").name).write_text(body)
    return NotebookRun(path.name, done.returncode == 0, seconds, error)


def run_notebooks(paths: list[Path], out_dir: Path, *, jobs: int = 1, parameters=None,
                  env: dict | None = None, report=print) -> list[NotebookRun]:
    """Run ``paths`` ``jobs`` at a time (longest first: :data:`LONGEST_FIRST`), each with
    ``parameters(stem)`` and ``env`` on top of this process's environment; ``report`` gets a line
    per finished notebook. Returns the runs in ``paths``' order."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out_dir.mkdir(parents=True, exist_ok=True)
    child = child_env(jobs, env)
    order = sorted(paths, key=longest_first)

    def run(path: Path) -> NotebookRun:
        result = run_notebook(path.resolve(), out_dir, env=child,
                              parameters=parameters(path.stem) if parameters else None)
        report(f"  {'pass' if result.ok else 'FAIL'}  {result.seconds:6.0f} s  {result.name}  {result.error}")
        return result

    with ThreadPoolExecutor(jobs) as pool:
        runs = {r.name: r for r in pool.map(run, order)}
    return [runs[p.name] for p in paths]


def longest_first(path: Path) -> tuple[int, str]:
    """Sort key: :data:`LONGEST_FIRST`'s notebooks in its order, then the others by name."""
    rank = LONGEST_FIRST.index(path.stem) if path.stem in LONGEST_FIRST else len(LONGEST_FIRST)
    return rank, path.name


def child_env(jobs: int, env: dict | None = None) -> dict:
    """This process's environment for a notebook run beside ``jobs - 1`` others: ``cpus // jobs``
    threads (unless OMP_NUM_THREADS is set), then ``env`` on top."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **os.environ, **(env or {})}


def bands_summary(build: Path, notebook: str) -> str:
    """The result bands of ``notebook``'s saved results, in a few words ('' when it has none)."""
    path = build / "results" / f"{notebook}.json"
    if not path.exists():
        return ""
    bands = json.loads(path.read_text()).get("bands")
    if not bands:
        return ""
    if not bands["applicable"]:
        return bands["reason"]
    statuses = [row["status"] for row in bands["rows"]]
    return ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))


def write_index(build: Path, runs: list[NotebookRun]) -> Path:
    """``build/index.html``: the executed notebooks, their result bands and the results tables."""
    items = "".join(
        f"<tr><td><a href='notebooks/{Path(r.name).with_suffix('.html').name}'>{html.escape(r.name)}</a></td>"
        f"<td>{'pass' if r.ok else 'FAIL'}</td><td>{r.seconds:.0f} s</td>"
        f"<td>{html.escape(bands_summary(build, Path(r.name).stem))}</td><td>{html.escape(r.error)}</td></tr>"
        for r in runs)
    results = sorted((build / "results").glob("*.csv")) if (build / "results").exists() else []
    links = "".join(f"<li><a href='results/{p.name}'>{p.name}</a> "
                    f"(<a href='results/{p.with_suffix('.json').name}'>json</a>)</li>" for p in results)
    page = (f"<html><head><meta charset='utf-8'><title>nbtoolkit tutorials</title></head><body>"
            f"<h1>nbtoolkit tutorials</h1><table border=1 cellpadding=4><tr><th>notebook</th>"
            f"<th>status</th><th>time</th><th>result bands</th><th>error</th></tr>{items}</table>"
            f"<h2>Results tables</h2><ul>{links or '<li>none yet</li>'}</ul></body></html>")
    path = build / "index.html"
    path.write_text(page)
    return path


def keeps_its_model(notebook: str) -> bool:
    """Whether ``notebook``'s ``MODEL`` names its own network (03's MLP), which ``--model`` does
    not replace."""
    return NOTEBOOKS[notebook].cpu.get("MODEL") == "mlp-16"


def notebook_parameters(notebook: str, preset: str | None, model: str | None,
                        given: dict) -> dict:
    """The papermill parameters ``notebook`` receives: those of its parameters cell only."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"{notebook} has no presets in nbtoolkit.tutorials.presets.NOTEBOOKS")
    own = NOTEBOOKS[notebook].cpu
    chosen = {name: value for name, value in given.items() if name in own}
    if model is not None and not keeps_its_model(notebook):
        chosen["MODEL"] = model
    if preset is not None:
        chosen["PRESET"] = preset
    return chosen
