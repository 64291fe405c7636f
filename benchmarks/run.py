"""Run every ``benchmarks/bench_*.py`` and write ``benchmarks/RESULTS.md`` whole: ``make bench``
(about 10 minutes: fewer repeats; the slow reference loops once, and the peers' and extraction
rows, on frozen weights) or ``make bench FULL=1`` (everything, both weight states, more repeats,
the peers' tracing loops; about 50 minutes).

Each module exposes ``run() -> list[dict]`` of :func:`timing.row` dicts (each side's repeats,
the ratio of the medians and the spread of the per-repeat ratios, the goal and whether it is
met); a row with ``times`` (library -> median seconds) also goes into the peers' table. Timings
inside one module are measured side by side in one run; only ratios are compared with goals.
``python benchmarks/run.py core tracing`` runs a subset (the file then holds only those rows).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from nbtoolkit.core.files import write_text
from timing import FULL

HERE = Path(__file__).resolve().parent
LIBRARIES = ("plain", "nbtoolkit", "raw hook", "pyvene", "nnsight", "transformer_lens")
VERSIONS = ("torch", "transformers", "numpy", "pyvene", "nnsight", "transformer-lens")


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peers_table(rows: list[dict]) -> list[str]:
    """Seconds per library and each one's ratio to the row's reference, one line per row ("–":
    not in that row, or not installed)."""
    lines = ["| benchmark | weights | " + " | ".join(LIBRARIES) + " |",
             "|---|---|" + "---|" * len(LIBRARIES)]
    for r in rows:
        cells = []
        for library in LIBRARIES:
            t, reference = r["times"].get(library), r["times"][r["reference_library"]]
            ratio = "" if library == r["reference_library"] else f" ({t / reference:.3f}×)" if t else ""
            cells.append("–" if t is None else f"{t:.4f} s{ratio}")
        lines.append(f"| {r['benchmark']} | {r['state']} | " + " | ".join(cells) + " |")
    return lines


def cell(text: str) -> str:
    """Text for a table cell: a ``|`` (as in ``max |Δp|``) would end the cell."""
    return str(text).replace("|", "\\|")


def seconds(t: dict) -> str:
    """A side's median seconds and, over several repeats, its range."""
    text = f"{t['median']:.4f}"
    return text + (f" ({t['min']:.4f}–{t['max']:.4f}, {t['n']} runs)" if t["n"] > 1 else "")


def verdict(r: dict) -> str:
    if r["met"] is None:
        return "–"
    if r.get("tie"):
        return "tie (within the spread)"
    return "met" if r["met"] else "**missed**"


def versions() -> str:
    found = []
    for name in VERSIONS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def main(names: list[str]) -> int:
    paths = {path.stem.removeprefix("bench_"): path for path in sorted(HERE.glob("bench_*.py"))}
    unknown = [name for name in names if name not in paths]
    if unknown:  # nothing run, RESULTS.md untouched
        print(f"no benchmark named {', '.join(map(repr, unknown))}; the benchmarks are: "
              f"{', '.join(paths)}", file=sys.stderr)
        return 2
    rows, failed = [], []
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    for name, path in paths.items():
        if names and name not in names:
            continue
        print(f"== {path.name}", flush=True)
        began = time.perf_counter()
        try:
            for row in load(path).run():
                rows.append({"file": path.name, **row})
                print(f"   {row['benchmark']} ({row['state'] or '-'}): ratio {row['ratio']:.3f} "
                      f"(goal {row['goal']}: {verdict(row)})", flush=True)
        except Exception:
            traceback.print_exc()
            failed.append(path.name)
        print(f"   ({time.perf_counter() - began:.0f} s)", flush=True)
    minutes = (time.perf_counter() - start) / 60
    load_after = os.getloadavg()[0]
    missed = [r for r in rows if r["met"] is False and not r.get("tie")]
    ties = sum(bool(r.get("tie")) for r in rows)
    lines = [
        "# Benchmark results",
        "",
        f"Written whole by `make bench{' FULL=1' if FULL else ''}` on {datetime.date.today()} "
        f"({'every row, both weight states' if FULL else 'the default: fewer repeats; slow reference loops, peers and extraction on frozen weights only'}"
        f"{'; only ' + ', '.join(names) if names else ''}): {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, Python "
        f"{platform.python_version()}; {versions()}. {minutes:.1f} minutes; load average "
        f"{load_before:.1f} before and {load_after:.1f} after (above {os.cpu_count()}: other work "
        f"shared the cores).",
        "",
        "Seconds: the median, then the range over the repeats, measured interleaved with the "
        "reference. Ratio: ours / reference of the medians, then the range of the per-repeat "
        "ratios. Weights: the state of the model's parameters (frozen = "
        f"`requires_grad_(False)`). Goals met: {sum(r['met'] is True for r in rows)} of "
        f"{sum(r['met'] is not None for r in rows)}"
        + (f"; peer rows that tie (above the best peer's median ratio but within its spread: the "
           f"repeats cannot order them): {ties}" if ties else "")
        + (f"; missed: {'; '.join(r['benchmark'] + ' (' + (r['state'] or '-') + ')' for r in missed)}."
           if missed else "."),
        "",
        "| file | benchmark | weights | ours (s) | reference (s) | ratio | goal | met | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["ratio_spread"]
        ratio = f"{r['ratio']:.3f}" + (f" ({low:.3f}–{high:.3f})" if high > low else "")
        lines.append(f"| {r['file']} | {cell(r['benchmark'])} | {r['state'] or '-'} | {seconds(r['ours'])} | "
                     f"{seconds(r['reference'])} | {ratio} | {cell(r['goal'])} | {verdict(r)} | "
                     f"{cell(r['note'])} |")
    peers = [r for r in rows if "times" in r]
    if peers:
        lines += ["", "## nbtoolkit and its peers, same weights, one run", "",
                  "Seconds (median) and the ratio to the row's reference (the plain forward or "
                  "generate; for causal tracing, the fastest peer loop).", ""] + peers_table(peers)
    if failed:
        lines += ["", f"Failed to run: {', '.join(failed)}"]
    results = write_text(HERE / "RESULTS.md", "\n".join(lines) + "\n")  # whole or not at all
    print(f"wrote {results} after {minutes:.1f} minutes")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
