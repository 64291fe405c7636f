"""Scores of a reporter's probabilities: accuracy, AUROC, calibrated accuracy, calibration error
(elk's definitions), cluster-bootstrap intervals, ``max(acc, 1 − acc)``, and elk's three ways of
combining prompt templates (``ENSEMBLING``)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.metrics import accuracy_score, roc_auc_score

from .pairs import check_labels

#: elk's ensembling modes: none (one completion), partial (both halves), full (every template).
ENSEMBLING = ("none", "partial", "full")


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


def calibration_threshold(p, y) -> float:
    """elk's threshold for calibrated accuracy: the ``mean(y)``-quantile of ``p`` (linear
    interpolation, as ``torch.quantile``). For balanced labels this is the median."""
    return float(np.quantile(np.asarray(p, dtype=np.float64), np.mean(y)))


def calibrated_accuracy(p, y) -> float:
    """Accuracy of ``p > calibration_threshold(p, y)`` (elk's ``cal_acc``)."""
    return float(np.mean((np.asarray(p) > calibration_threshold(p, y)) == (np.asarray(y) == 1)))


def calibration_error(p, y, *, norm: int = 2) -> float:
    """Monotonic-sweep calibration error (Roelofs et al. 2020, arXiv 2012.08668; elk's ``ece``).

    Sort by ``p``; the number of equal-mass bins ``b`` grows from 1 while the bins' label
    frequencies stay strictly increasing and none is 0 or 1; then
    ``ece = (Σ_bins w·|freq − mean p|^norm)^(1/norm)`` with ``w`` the bins' share of the samples.
    Bins are ``np.array_split`` chunks (the first ``n mod b`` get one extra sample, as
    ``torch.tensor_split``); ties in ``p`` are ordered stably (elk's ``torch.sort`` is not).
    """
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(p) < 2:
        raise ValueError(f"need at least 2 predictions for a calibration error, got {len(p)}")
    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    best = np.array([y.mean()])
    for b in range(2, len(p) + 1):
        freqs = np.array([c.mean() for c in np.array_split(y, b)])
        if not np.all(freqs[1:] > freqs[:-1]) or not np.all(freqs * (1 - freqs)):
            break
        best = freqs
    bins = np.array_split(p, len(best))
    w = np.array([len(c) for c in bins]) / len(p)
    conf = np.array([c.mean() for c in bins])
    return float(np.sum(w * np.abs(best - conf) ** norm) ** (1 / norm))


def bootstrap_ci(p, y, *, clusters=None, cal_thresh: float | None = None, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals of accuracy and AUROC (and of calibrated accuracy when
    ``cal_thresh`` is given), resampling ``clusters`` (``[n]`` ids, default: every item its own;
    elk's cluster bootstrap resamples examples with all their templates).

    Vectorised by hand (scikit-learn scores one resample per call, ~100× slower here): a resample
    is a vector of counts ``w`` [n]; AUROC = wₚᵀ M w₋ / (Σwₚ Σw₋) with
    ``M[i, j] = 1[sᵢ > sⱼ] + ½·1[sᵢ = sⱼ]``.
    """
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y)
    ids = np.arange(len(p)) if clusters is None else np.unique(clusters, return_inverse=True)[1]
    n_clusters = int(ids.max()) + 1
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    correct = {"acc": ((p > 0.5) == (y == 1)).astype(np.float64)}
    if cal_thresh is not None:
        correct["cal_acc"] = ((p > cal_thresh) == (y == 1)).astype(np.float64)
    pos, neg = p[y == 1], p[y == 0]
    m = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    scores = {name: [] for name in correct} | {"auroc": []}
    for start in range(0, n_boot, 250):  # chunks keep the count matrices small
        b = min(250, n_boot - start)
        idx = rng.integers(0, n_clusters, size=(b, n_clusters))
        counts = np.zeros((b, n_clusters))
        np.add.at(counts, (np.repeat(np.arange(b), n_clusters), idx.ravel()), 1.0)
        w = counts[:, ids]  # an item counts as often as its cluster was drawn
        for name, c in correct.items():
            scores[name].append(w @ c / w.sum(1))
        wp, wn = w[:, y == 1], w[:, y == 0]
        denom = wp.sum(1) * wn.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores["auroc"].append(((wp @ m) * wn).sum(1) / denom)
    out = {}
    for name, parts in scores.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        lo, hi = np.quantile(values, [alpha, 1 - alpha]).tolist() if len(values) else (np.nan, np.nan)
        out[f"{name}_lower"], out[f"{name}_upper"] = lo, hi
    return out


def evaluate(p, y, *, clusters=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy, AUROC and calibrated accuracy (each with a bootstrap 95% CI), the calibration
    error ``ece`` and its threshold, and the optimistic ``max(acc, 1-acc)``. ``p``, ``y``: ``[n]``."""
    p = np.asarray(p, dtype=np.float64)
    y = check_labels(y, len(p))
    thresh = calibration_threshold(p, y)
    row = {"n": len(np.unique(clusters)) if clusters is not None else len(y),
           "acc": accuracy(p, y), "auroc": auroc(p, y), "cal_acc": calibrated_accuracy(p, y),
           "ece": calibration_error(p, y), "cal_thresh": thresh}
    if n_boot:
        row.update(bootstrap_ci(p, y, clusters=clusters, cal_thresh=thresh, n_boot=n_boot, seed=seed))
    row["acc_optimistic"] = optimistic_accuracy(p, y)
    return row


def evaluate_credences(credences, y, ensembling: str = "partial", *, n_boot: int = 1000,
                       seed: int = 0) -> dict:
    """An eval.csv row from per-state credences ``[n, v, 2]`` (logits; ``[..., 0]`` for the
    label-0 completion x⁻, ``[..., 1]`` for x⁺) of ``n`` examples under ``v`` templates.

    ``ensembling`` (elk's names):

    - ``"none"``: every state on its own: x⁺ is judged true when σ(ℓ⁺) > 0.5 (elk thresholds the
      logit itself at 0.5, a quirk we do not copy); AUROC ranks all ``2·n·v`` states (is this
      state the true completion?); calibration on σ(ℓ⁺).
    - ``"partial"``: per template, the larger credence of the pair wins: p = σ(ℓ⁺ − ℓ⁻).
    - ``"full"``: credences averaged over templates first, then p = σ(mean ℓ⁺ − mean ℓ⁻).

    Intervals come from a cluster bootstrap over examples (an example keeps all its templates).
    """
    c = np.asarray(credences, dtype=np.float64)
    if c.ndim != 3 or c.shape[-1] != 2:
        raise ValueError(f"credences must be [n, v, 2], got shape {c.shape}")
    y = check_labels(y, c.shape[0])
    n, v, _ = c.shape
    if ensembling not in ENSEMBLING:
        raise ValueError(f"ensembling must be one of {ENSEMBLING}, got {ensembling!r}")
    examples = np.repeat(np.arange(n), v)
    if ensembling == "full":
        mean = c.mean(1)
        return evaluate(expit(mean[:, 1] - mean[:, 0]), y, n_boot=n_boot, seed=seed)
    yv = np.repeat(y, v)
    if ensembling == "partial":
        return evaluate(expit(c[..., 1] - c[..., 0]).ravel(), yv, clusters=examples,
                        n_boot=n_boot, seed=seed)
    row = evaluate(expit(c[..., 1]).ravel(), yv, clusters=examples, n_boot=n_boot, seed=seed)
    states = c[..., ::-1].reshape(-1)                         # x⁺ then x⁻ of every (example, template)
    truth = np.stack([yv, 1 - yv], 1).reshape(-1)             # is that state the true completion?
    row["auroc"] = auroc(states, truth)
    if n_boot:
        ci = bootstrap_ci(states, truth, clusters=np.repeat(examples, 2), n_boot=n_boot, seed=seed)
        row["auroc_lower"], row["auroc_upper"] = ci["auroc_lower"], ci["auroc_upper"]
    return row
