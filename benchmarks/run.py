"""Run every ``benchmarks/bench_*.py`` and write ``benchmarks/RESULTS.md``: ``make bench``.

Each module exposes ``run() -> list[dict]`` with keys benchmark, ours_s, reference_s, ratio,
goal, note. Timings inside one module are measured side by side in one run; only ratios are
compared with goals. ``python benchmarks/run.py core tracing`` runs a subset.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import sys
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names: list[str]) -> int:
    rows, failed = [], []
    for path in sorted(HERE.glob("bench_*.py")):
        if names and path.stem.removeprefix("bench_") not in names:
            continue
        print(f"== {path.name}", flush=True)
        try:
            for row in load(path).run():
                rows.append({"file": path.name, **row})
                print(f"   {row['benchmark']}: ratio {row['ratio']:.2f} (goal {row['goal']})", flush=True)
        except Exception:
            traceback.print_exc()
            failed.append(path.name)
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` on {datetime.date.today()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}. Times are medians; each ratio compares two timings "
        "taken side by side in the same run.",
        "",
        "| file | benchmark | ours (s) | reference (s) | ratio | goal | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['file']} | {r['benchmark']} | {r['ours_s']:.4f} | {r['reference_s']:.4f} | "
                     f"{r['ratio']:.2f} | {r['goal']} | {r.get('note', '')} |")
    if failed:
        lines += ["", f"Failed to run: {', '.join(failed)}"]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
