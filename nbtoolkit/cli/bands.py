"""Measure the result bands of the tutorial notebooks: ``python -m nbtoolkit.cli.bands``.

Runs each notebook (``--only``: some) at its CPU preset twice (:data:`RUNS`: as ``make test`` runs
it, and at another seed on two threads), both with ``NBTOOLKIT_BANDS=record``; reads each run's headline
numbers from its saved results and writes their runs and bands to
``nbtoolkit/tutorials/bands.json`` (the rule: :mod:`nbtoolkit.tutorials.bands`). Notebooks not
run keep their bands. Executed copies go to ``build/bands/``. A notebook that fails leaves
bands.json unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core.files import write_json
from ..tutorials.bands import BANDS_FILE, HEADLINES, band_of, load_bands
from ..tutorials.presets import NOTEBOOKS
from ..tutorials.runner import NotebookRun, child_env, longest_first, run_notebook
from .tutorials import notebook_paths


def threads(n: int) -> dict:
    """The environment that gives a run ``n`` threads, whatever ``--jobs`` is."""
    return {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}


# (label, parameters, environment) of each run: SEED = 0 as make test runs it (one thread), then
# SEED = 1 (a notebook without a seed keeps its own run) on two threads.
RUNS = [("seed-0", {"SEED": 0}, threads(1)), ("seed-1-two-threads", {"SEED": 1}, threads(2))]
CELL_TIMEOUT = 3600  # seconds a cell may take (runs side by side on a busy machine are slow)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", type=Path, nargs="?", default=Path("notebooks"))
    parser.add_argument("build", type=Path, nargs="?", default=Path("build") / "bands")
    parser.add_argument("--only", nargs="*", help="notebook names (or prefixes) to measure")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs whose results an interrupted measurement left in BUILD")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    paths = [p for p in notebook_paths(args.notebooks, args.only) if p.stem in HEADLINES]
    if not paths:
        raise SystemExit(f"none of these notebooks has headline numbers: {args.only}")
    tasks = [(label, path, parameters, env) for label, parameters, env in RUNS
             for path in sorted(paths, key=longest_first)]  # a round of every notebook per run

    def run(task):
        label, path, parameters, env = task
        folder = args.build / label
        if args.resume and (folder / "results" / f"{path.stem}.json").exists():
            print(f"  kept  {label}  {path.name}: its results are there (--resume)", flush=True)
            return NotebookRun(path.name, True, 0.0, "")
        if "SEED" not in NOTEBOOKS[path.stem].cpu:
            parameters = {}
        folder.mkdir(parents=True, exist_ok=True)
        extra = {"NBTOOLKIT_BANDS": "record", "NBTOOLKIT_RESULTS": str((folder / "results").resolve()), **env}
        result = run_notebook(path.resolve(), folder, parameters=parameters,
                              env=child_env(args.jobs, extra), timeout=CELL_TIMEOUT)
        print(f"  {'pass' if result.ok else 'FAIL'}  {result.seconds:6.0f} s  {label}  {result.name}  "
              f"{result.error}", flush=True)
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        failed = [r.name for r in pool.map(run, tasks) if not r.ok]
    if failed:
        print(f"failed: {', '.join(sorted(set(failed)))}; {BANDS_FILE} unchanged (executed copies in {args.build})")
        return 1
    bands = load_bands() if BANDS_FILE.exists() else {}
    for path in paths:
        values: dict[str, list[float]] = {}
        for label, _, _ in RUNS:
            saved = json.loads((args.build / label / "results" / f"{path.stem}.json").read_text())
            for row in saved["bands"]["rows"]:
                values.setdefault(row["number"], []).append(row["value"])
        bands[path.stem] = {number: dict(zip(("low", "high"), band_of(runs_)), runs=runs_)
                            for number, runs_ in values.items()}
        for number, band in bands[path.stem].items():
            print(f"{path.stem} {number}: [{band['low']:.4g}, {band['high']:.4g}] from {band['runs']}")
    write_json(BANDS_FILE, dict(sorted(bands.items())))
    print(f"wrote {BANDS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
