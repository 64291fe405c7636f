"""Side-by-side timing: alternate the candidates in every repeat so drift hits both alike."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def side_by_side(candidates: dict[str, Callable[[], object]], repeats: int = 10,
                 warmup: int = 2) -> dict[str, float]:
    """Median seconds of each candidate, measured interleaved."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def row(benchmark: str, ours: float, reference: float, goal: str, note: str = "") -> dict:
    return dict(benchmark=benchmark, ours_s=ours, reference_s=reference, ratio=ours / reference,
                goal=goal, note=note)
