"""How well an estimate of patching effects (AtP) agrees with the exact ones, over the same sites.

    agreement(atp.effects(), exact.effects(), k=10)   # {"pearson": ..., "spearman": ..., ...}

Effects are ``scores − base_score`` of two results over the same sites (any shape, flattened);
sites without a value in either (NaN: not swept) are left out.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def _paired(estimate, exact) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays flattened, the sites finite in both kept: ``[n_sites]`` each."""
    estimate, exact = np.asarray(estimate, float).ravel(), np.asarray(exact, float).ravel()
    if estimate.shape != exact.shape:
        raise ValueError(f"estimate has {estimate.size} sites but exact has {exact.size}")
    kept = np.isfinite(estimate) & np.isfinite(exact)
    return estimate[kept], exact[kept]


def top_k(effects: np.ndarray, k: int) -> set[int]:
    """Indices of the ``k`` sites with the largest ``|effect|`` (ties: the first index wins)."""
    return set(np.argsort(-np.abs(effects), kind="stable")[:k].tolist())


def false_negative_rate(estimate, exact, k: int) -> float:
    """The share of the exact top ``k`` sites (largest ``|effect|``) missing from the estimate's
    top ``k``: important sites a search guided by the estimate would not check."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    estimate, exact = _paired(estimate, exact)
    k = min(k, exact.size)
    return len(top_k(exact, k) - top_k(estimate, k)) / k if k else float("nan")


def agreement(estimate, exact, k: int = 10) -> dict[str, float]:
    """Pearson and Spearman correlation of ``estimate`` with ``exact``, the false-negative rate of
    the top ``k``, and the number of sites compared."""
    est, ex = _paired(estimate, exact)
    if est.size < 2 or np.ptp(est) == 0 or np.ptp(ex) == 0:
        pearson = spearman = float("nan")  # no spread: no correlation to report
    else:
        pearson, spearman = float(np.corrcoef(est, ex)[0, 1]), float(spearmanr(est, ex)[0])
    return dict(pearson=pearson, spearman=spearman,
                false_negatives=false_negative_rate(estimate, exact, k), n_sites=int(est.size))


__all__ = ["agreement", "false_negative_rate", "top_k"]
