"""Measure the result bands of the tutorial notebooks: ``python -m nbtoolkit.cli.bands``.

Runs each notebook (``--only``: some) at its CPU preset three times (:data:`RUNS`: two seeds, or
one and two threads for a notebook without a seed, and once on one thread with the CPU's baseline
kernels, ``ATEN_CPU_CAPABILITY=default``), all with ``NBTOOLKIT_BANDS=record``; reads each run's headline
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
from ..tutorials.runner import child_env, longest_first, run_notebook
from .tutorials import notebook_paths

BASELINE_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TWO_THREADS = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
# (label, parameters, environment) of each run: a notebook with a SEED parameter runs at SEED = 0
# and 1, one without (its numbers depend on no seed) on one and on two threads; both once more on
# the baseline kernels, with a cache of their own (activations extracted there, not read back).
RUNS = [("seed-0", {"SEED": 0}, {}), ("seed-1", {"SEED": 1}, TWO_THREADS),
        ("baseline-kernels", {"SEED": 0}, BASELINE_KERNELS)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", type=Path, nargs="?", default=Path("notebooks"))
    parser.add_argument("build", type=Path, nargs="?", default=Path("build") / "bands")
    parser.add_argument("--only", nargs="*", help="notebook names (or prefixes) to measure")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side")
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
        if "SEED" not in NOTEBOOKS[path.stem].cpu:
            parameters = {}  # seed-1 is then the same run on two threads
        folder = args.build / label
        folder.mkdir(parents=True, exist_ok=True)
        extra = {"NBTOOLKIT_BANDS": "record", "NBTOOLKIT_RESULTS": str((folder / "results").resolve()), **env}
        if env is BASELINE_KERNELS:
            extra["NBTOOLKIT_CACHE"] = str((folder / "cache").resolve())
        result = run_notebook(path.resolve(), folder, parameters=parameters,
                              env=child_env(args.jobs, extra))
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
