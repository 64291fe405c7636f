"""Causal tracing on the default model, with trainable and with frozen weights:

1. The hidden grid of one 10-token prompt (FULL: hidden + MLP + attention, both weight states),
   ROME's way (one forward of 1 clean + 10 corrupted rows per cell, the reference in
   tests/test_tracing.py) against nbtoolkit.tracing (batched restorations, clean and corrupted
   runs cached, corrupted prefix from the KV cache, blocks below each restoration skipped,
   last-position logits), side by side.
2. The hidden grid with frozen weights against the same with trainable weights, interleaved
   (torch multiplies a strided input by a weight that needs no gradient row by row: a strided
   view reaching a linear layer makes frozen tracing slower; goal: within 10%).

    python benchmarks/bench_tracing.py      # or `make bench`
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from timing import FULL, STATES, row, states, weights

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "Eiffel Tower"
# Corrupted runs per cell: ROME's 10 with FULL; 5 by default (both loops take about half as long,
# the ratio is the same).
SAMPLES = 10 if FULL else 5
# The reference needs 3 × 300 batched forwards (minutes on a CPU): one repeat each by default.
REPEATS = int(os.environ.get("BENCH_TRACING_REPEATS", "3" if FULL else "1"))
STATE_REPEATS = 3 if FULL else 2  # frozen vs unfrozen, interleaved


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
    """Wall seconds and process CPU seconds (steadier on a shared machine) of each run, and the
    last output."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu, out


KINDS = ("hidden", "mlp", "attn") if FULL else ("hidden",)  # ROME's loop: about 50 s per kind


def full_grid(lm, level: float, state: str) -> list[dict]:
    """One row per kind of :data:`KINDS` (ours / ROME's loop), then, with several kinds, one
    for them together."""
    from nbtoolkit.tracing import causal_trace

    reference_trace = _reference()
    rows, worst = [], 0.0
    ours_total = ref_total = ours_cpu_total = ref_cpu_total = 0.0
    for kind in KINDS:
        ours_runs, ours_cpu, ours = _timed(lambda: causal_trace(lm, PROMPT, SUBJECT, kind=kind,
                                                             samples=SAMPLES, noise=level), REPEATS)
        ref_runs, ref_cpu, ref = _timed(lambda: reference_trace(lm, PROMPT, SUBJECT, kind, SAMPLES,
                                                             level), REPEATS)
        diff = float(np.max(np.abs(ours.scores - ref[0])))
        ours_s, ref_s = statistics.median(ours_runs), statistics.median(ref_runs)
        ours_cpu, ref_cpu = statistics.median(ours_cpu), statistics.median(ref_cpu)
        worst = max(worst, diff)
        ours_total, ref_total = ours_total + ours_s, ref_total + ref_s
        ours_cpu_total, ref_cpu_total = ours_cpu_total + ours_cpu, ref_cpu_total + ref_cpu
        rows.append(row(f"causal trace {kind} grid ({len(ours.tokens)} tokens × {lm.n_layers} "
                        f"layers, {SAMPLES} samples) vs ROME's loop", ours_runs, ref_runs,
                        "<= 0.25 (4× faster)",
                        f"speed-up {ref_s / ours_s:.2f}× (CPU time {ref_cpu / ours_cpu:.2f}×); "
                        f"max |Δp| {diff:.1e}", state))
    if len(KINDS) == 1:
        return rows
    total = row(f"causal trace full {'+'.join(KINDS)} grid ({len(ours.tokens)} tokens) vs ROME's loop",
                ours_total, ref_total, "<= 0.25 (4× faster)",
                f"speed-up {ref_total / ours_total:.2f}× (CPU time "
                f"{ref_cpu_total / ours_cpu_total:.2f}×); ROME: 1 forward of 1 clean + {SAMPLES} "
                f"corrupted rows per cell; max |Δp| {worst:.1e}; {REPEATS} repeat(s) each", state)
    return [total] + rows


def frozen_vs_unfrozen(lm, level: float) -> dict:
    """The hidden grid with each state in turn, ``STATE_REPEATS`` times; the same scores."""
    from nbtoolkit.tracing import causal_trace

    times, scores = {state: [] for state in STATES}, {}
    for _ in range(STATE_REPEATS):
        for state in STATES:
            with weights(lm.model, state):
                start = time.perf_counter()
                scores[state] = causal_trace(lm, PROMPT, SUBJECT, kind="hidden", samples=SAMPLES,
                                             noise=level).scores
                times[state].append(time.perf_counter() - start)
    np.testing.assert_array_equal(scores["frozen"], scores["unfrozen"])
    return row(f"causal trace hidden grid ({SAMPLES} samples): frozen vs unfrozen weights",
               times["frozen"], times["unfrozen"], "<= 1.10",
               "ours = frozen, reference = unfrozen; interleaved; the same scores", "both")


def run() -> list[dict]:
    from nbtoolkit import load_model
    from nbtoolkit.tracing import resolve_noise

    lm = load_model()
    level = resolve_noise(lm, "s3")
    rows = [frozen_vs_unfrozen(lm, level)]
    for state in states(slow=True):  # ROME's loop takes minutes
        with weights(lm.model, state):
            rows += full_grid(lm, level, state)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
