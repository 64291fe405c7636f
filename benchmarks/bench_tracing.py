"""Causal tracing: the full hidden + MLP + attention grid of one 10-token prompt on the default
model, ROME's way (one forward of 1 clean + 10 corrupted rows per cell, the reference in
tests/test_tracing.py) against nbtoolkit.tracing (batched restorations, clean and corrupted
runs cached, corrupted prefix from the KV cache, blocks below each restoration skipped,
last-position logits), side by side in one run.

    python benchmarks/bench_tracing.py      # or `make bench`
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "Eiffel Tower"
SAMPLES = 10
# The reference needs 3 × 300 batched forwards (minutes on a CPU): one repeat each by default.
REPEATS = int(os.environ.get("BENCH_TRACING_REPEATS", "1"))


def _reference():
    """The literal ROME reference from the tests (one implementation, not a copy)."""
    tests = Path(__file__).resolve().parent.parent / "tests"
    sys.path.insert(0, str(tests))
    try:
        from test_tracing import reference_trace
    finally:
        sys.path.remove(str(tests))
    return reference_trace


def _timed(fn, repeats: int):
    """Median wall time, median process CPU time (steadier on a shared machine), last output."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), statistics.median(cpu), out


def run() -> list[dict]:
    from nbtoolkit import load_model
    from nbtoolkit.tracing import causal_trace, resolve_noise

    reference_trace = _reference()
    lm = load_model()
    level = resolve_noise(lm, "s3")
    n_tokens = len(lm.tokens(PROMPT))
    rows, worst = [], 0.0
    ours_total = ref_total = ours_cpu_total = ref_cpu_total = 0.0
    for kind in ("hidden", "mlp", "attn"):
        ours_s, ours_cpu, ours = _timed(lambda: causal_trace(lm, PROMPT, SUBJECT, kind=kind,
                                                             samples=SAMPLES, noise=level), REPEATS)
        ref_s, ref_cpu, ref = _timed(lambda: reference_trace(lm, PROMPT, SUBJECT, kind, SAMPLES,
                                                             level), REPEATS)
        diff = float(np.max(np.abs(ours.scores - ref[0])))
        worst = max(worst, diff)
        ours_total, ref_total = ours_total + ours_s, ref_total + ref_s
        ours_cpu_total, ref_cpu_total = ours_cpu_total + ours_cpu, ref_cpu_total + ref_cpu
        rows.append(dict(benchmark=f"causal trace {kind} grid ({n_tokens} tokens × {lm.n_layers} "
                                   f"layers, {SAMPLES} samples, smollm2-135m)",
                         ours_s=ours_s, reference_s=ref_s, ratio=ref_s / ours_s, goal=None,
                         note=f"max |Δp| vs reference {diff:.1e}; CPU-time ratio "
                              f"{ref_cpu / ours_cpu:.2f}; median of {REPEATS}"))
    rows.insert(0, dict(benchmark=f"causal trace full hidden+mlp+attn grid ({n_tokens} tokens, "
                                  f"smollm2-135m, CPU)",
                        ours_s=ours_total, reference_s=ref_total, ratio=ref_total / ours_total,
                        goal=4.0,
                        note=f"reference = ROME (1 forward of 1 clean + {SAMPLES} corrupted rows "
                             f"per cell); ours = batched restorations, clean and corrupted runs once, "
                             f"corrupted prefix from the KV cache, blocks below each restoration "
                             f"skipped, last-position logits; max |Δp| {worst:.1e}; "
                             f"CPU-time ratio {ref_cpu_total / ours_cpu_total:.2f}; {REPEATS} "
                             f"repeat(s) each (the reference takes minutes)"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
