"""Run every ``benchmarks/bench_*.py`` and write ``benchmarks/RESULTS.md``: ``make bench``.

Each module exposes ``run() -> list[dict]`` of :func:`timing.row` dicts (benchmark, state,
ours_s, reference_s, ratio, goal, note); a row with ``times`` (library -> seconds) also goes
into the peers' table. Timings inside one module are measured side by side in one run; only
ratios are compared with goals. ``python benchmarks/run.py core tracing`` runs a subset.
RESULTS.md is rewritten except its hand-written "## Notes" section.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
LIBRARIES = ("plain", "nbtoolkit", "raw hook", "pyvene", "nnsight")
NOTES = "## Notes"  # RESULTS.md from this heading on is written by hand and kept


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peers_table(rows: list[dict]) -> list[str]:
    """Seconds per library and each one's ratio to the row's reference, one line per row."""
    lines = ["| benchmark | weights | " + " | ".join(LIBRARIES) + " |",
             "|---|---|" + "---|" * len(LIBRARIES)]
    for r in rows:
        cells = []
        for library in LIBRARIES:
            t = r["times"].get(library)
            ratio = "" if library == r["reference"] else f" ({t / r['reference_s']:.3f}×)"
            cells.append("skipped" if t is None else f"{t:.4f} s{ratio}")
        lines.append(f"| {r['benchmark']} | {r['state']} | " + " | ".join(cells) + " |")
    return lines


def main(names: list[str]) -> int:
    rows, failed = [], []
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    for path in sorted(HERE.glob("bench_*.py")):
        if names and path.stem.removeprefix("bench_") not in names:
            continue
        print(f"== {path.name}", flush=True)
        try:
            for row in load(path).run():
                rows.append({"file": path.name, **row})
                print(f"   {row['benchmark']} ({row['state'] or '-'}): ratio {row['ratio']:.3f} "
                      f"(goal {row['goal']})", flush=True)
        except Exception:
            traceback.print_exc()
            failed.append(path.name)
    minutes = (time.perf_counter() - start) / 60
    load_after = os.getloadavg()[0]
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` on {datetime.date.today()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}; {minutes:.0f} minutes; load average "
        f"{load_before:.1f} before and {load_after:.1f} after (above {os.cpu_count()}: other work "
        f"shared the cores). Times are medians; each ratio compares timings taken side by side in "
        f"the same run. Weights: the state of the model's parameters (frozen = "
        f"`requires_grad_(False)`).",
        "",
        "| file | benchmark | weights | ours (s) | reference (s) | ratio | goal | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['file']} | {r['benchmark']} | {r['state'] or '-'} | {r['ours_s']:.4f} | "
                     f"{r['reference_s']:.4f} | {r['ratio']:.3f} | {r['goal']} | {r['note']} |")
    peers = [r for r in rows if "times" in r]
    if peers:
        lines += ["", "## nbtoolkit and its peers, same weights, one run", "",
                  "Seconds (median) and the ratio to the row's reference (the plain forward or "
                  "generate; for causal tracing, nbtoolkit).", ""] + peers_table(peers)
    if failed:
        lines += ["", f"Failed to run: {', '.join(failed)}"]
    results = HERE / "RESULTS.md"
    kept = results.read_text().partition(NOTES)[2] if results.exists() else ""
    if kept:  # the hand-written notes below the tables stay
        lines += ["", NOTES + kept.rstrip("\n")]
    results.write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'} after {minutes:.1f} minutes")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
