"""What causal tracing returns: one prompt's trace and the averages over facts (data only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

KINDS = ("hidden", "mlp", "attn")
BUCKETS = ("first subject token", "middle subject tokens", "last subject token",
           "first subsequent token", "further tokens", "last token")
TRACE_COLUMNS = ("position", "token", "is_subject", "layer", "score", "effect", "kind")
AVERAGE_COLUMNS = ("kind", "bucket", "layer", "aie", "ci_low", "ci_high", "mean", "std", "count")


@dataclass
class TraceResult:
    """One prompt's trace.

    ``scores[t, l]``: mean p(answer) over the corrupted rows with the clean state restored at token
    ``t``, layer (window centre) ``l``; rows not traced (``positions=...``) are NaN.
    ``low_score``: corrupted, nothing restored; ``high_score``: clean.
    """

    scores: np.ndarray
    low_score: float
    high_score: float
    tokens: list[str]
    subject_range: tuple[int, int]
    kind: str
    answer: str
    answer_id: int
    prompt: str = ""
    subject: str = ""
    window: int = 10
    samples: int = 10
    noise: float = 0.0

    @property
    def n_layers(self) -> int:
        return self.scores.shape[1]

    def to_frame(self) -> pd.DataFrame:
        """One row per (token, layer): ``position, token, is_subject, layer, score, effect, kind``
        (effect = score − low_score, the indirect effect; :data:`TRACE_COLUMNS`)."""
        start, end = self.subject_range
        rows = []
        for t, token in enumerate(self.tokens):
            for layer in range(self.n_layers):
                score = float(self.scores[t, layer])
                rows.append(dict(position=t, token=token, is_subject=start <= t < end, layer=layer,
                                 score=score, effect=score - self.low_score, kind=self.kind))
        return pd.DataFrame(rows, columns=TRACE_COLUMNS)



@dataclass
class AverageEffect:
    """ROME's averaged trace over facts: six token buckets × layers.

    ``mean[b, l]``: mean score in bucket ``b`` (middle subject / further tokens pool every token
    of the bucket); ``std[b, l]`` its standard deviation; ``count[b]`` the number of prompts in the
    bucket (used for the 95% interval 1.96·std/√count, as ROME's line plot); ``aie = mean −
    low_score`` (not clipped; ROME's heatmaps clip at 0).
    """

    kind: str
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    low_score: float
    high_score: float
    results: list[TraceResult] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    @property
    def aie(self) -> np.ndarray:
        return self.mean - self.low_score

    @property
    def ci95(self) -> np.ndarray:
        return 1.96 * self.std / np.sqrt(np.maximum(self.count, 1))[:, None]

    @property
    def total_effect(self) -> float:
        """ATE: mean clean p(answer) − mean corrupted p(answer)."""
        return self.high_score - self.low_score

    def peak(self, bucket: str) -> tuple[int, float]:
        """(layer, AIE) of the largest average indirect effect in ``bucket``."""
        row = self.aie[_bucket_index(bucket)]
        if np.all(np.isnan(row)):
            return -1, float("nan")
        layer = int(np.nanargmax(row))
        return layer, float(row[layer])

    def to_frame(self) -> pd.DataFrame:
        """One row per (bucket, layer): ``kind, bucket, layer, aie, ci_low, ci_high, mean, std,
        count`` (:data:`AVERAGE_COLUMNS`)."""
        rows = []
        ci = self.ci95
        for b, bucket in enumerate(BUCKETS):
            for layer in range(self.mean.shape[1]):
                rows.append(dict(kind=self.kind, bucket=bucket, layer=layer,
                                 aie=self.aie[b, layer], ci_low=self.aie[b, layer] - ci[b, layer],
                                 ci_high=self.aie[b, layer] + ci[b, layer],
                                 mean=self.mean[b, layer], std=self.std[b, layer],
                                 count=int(self.count[b])))
        return pd.DataFrame(rows, columns=AVERAGE_COLUMNS)



def _bucket_index(bucket: str) -> int:
    if bucket not in BUCKETS:
        raise ValueError(f"unknown bucket {bucket!r}; valid: {', '.join(BUCKETS)}")
    return BUCKETS.index(bucket)


def bucket_rows(result: TraceResult) -> list[np.ndarray]:
    """ROME's six buckets of one result: each a ``[n_rows, n_layers]`` array (NaN rows dropped)."""
    start, end = result.subject_range
    last = len(result.tokens) - 1
    s = result.scores
    parts = [s[start:start + 1], s[start + 1:end - 1], s[end - 1:end], s[end:end + 1],
             s[end + 1:last], s[last:last + 1]]
    return [p[~np.all(np.isnan(p), axis=1)] for p in parts]


