"""Scores of a reporter's probabilities: accuracy, AUROC, bootstrap intervals, ``max(acc, 1 − acc)``."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from .pairs import check_labels


def accuracy(p, y) -> float:
    """Fraction of pairs where ``p > 0.5`` matches ``y``."""
    return float(accuracy_score(np.asarray(y) == 1, np.asarray(p) > 0.5))


def optimistic_accuracy(p, y) -> float:
    """``max(acc, 1 - acc)``: the paper's sign-free accuracy. Optimistic: it uses the *test* labels."""
    acc = accuracy(p, y)
    return max(acc, 1 - acc)


def auroc(scores, y) -> float:
    """Area under the ROC curve (scikit-learn's; ties count one half). NaN with a single class."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def bootstrap_ci(p, y, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals of accuracy and AUROC (``n_boot`` resamples of the pairs).

    Vectorised by hand (scikit-learn scores one resample per call, ~100× slower here): a resample is a vector of counts ``w`` [n]; AUROC = wₚᵀ M w₋ / (Σwₚ Σw₋) with
    ``M[i, j] = 1[sᵢ > sⱼ] + ½·1[sᵢ = sⱼ]``.
    """
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y)
    n = len(p)
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    out = {}
    correct = ((p > 0.5) == (y == 1)).astype(np.float64)
    pos, neg = p[y == 1], p[y == 0]
    m = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    accs, aucs = [], []
    for start in range(0, n_boot, 250):  # chunks keep the count matrices small
        b = min(250, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        w = np.zeros((b, n))
        np.add.at(w, (np.repeat(np.arange(b), n), idx.ravel()), 1.0)
        accs.append(w @ correct / n)
        wp, wn = w[:, y == 1], w[:, y == 0]
        denom = wp.sum(1) * wn.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs.append(((wp @ m) * wn).sum(1) / denom)
    accs, aucs = np.concatenate(accs), np.concatenate(aucs)
    out["acc_lower"], out["acc_upper"] = np.quantile(accs, [alpha, 1 - alpha]).tolist()
    aucs = aucs[np.isfinite(aucs)]
    lo, hi = np.quantile(aucs, [alpha, 1 - alpha]).tolist() if len(aucs) else (np.nan, np.nan)
    out["auroc_lower"], out["auroc_upper"] = lo, hi
    return out


def evaluate(p, y, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy, AUROC (each with a bootstrap 95% CI) and the optimistic ``max(acc, 1-acc)``."""
    y = check_labels(y, len(np.asarray(p)))
    row = {"n": len(y), "acc": accuracy(p, y), "auroc": auroc(p, y)}
    if n_boot:
        row.update(bootstrap_ci(p, y, n_boot=n_boot, seed=seed))
    row["acc_optimistic"] = optimistic_accuracy(p, y)
    return row
