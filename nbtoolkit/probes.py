"""Reporters that read truth from hidden states: CCS, CRC, a logistic ceiling and zero-shot baselines.

Every reporter follows scikit-learn: ``fit(x_pos, x_neg, y=None)``, ``predict_proba(x_pos, x_neg)``
(probability that the label-1 completion is the true one, ``[n]``), ``predict`` and
``score(x_pos, x_neg, y)`` (accuracy). ``x_pos``/``x_neg`` are ``[n, d]`` hidden states of the two
halves of ``n`` contrast pairs (``x_pos`` = the prompt completed with the label-1 answer).

- :class:`CCS` (Burns et al. 2022): per-class mean normalisation fitted on the training set and
  reused unchanged at test time; consistency + confidence loss; ``n_tries`` restarts, lowest loss kept.
- :class:`CRC`: top principal component of the normalised pair differences (CRC-TPC).
- :class:`LogisticProbe`: supervised logistic regression on pair differences (the ceiling).
- :class:`ZeroShot`: the LM's own answer log-probabilities; ``calibrate=True`` moves the threshold to
  the training median (half the predictions each way).

Sign convention: CCS and CRC are unsupervised, their loss cannot tell a direction from its
negative. When ``fit`` is given training labels ``y`` the sign is resolved on them (one bit of
supervision, the accuracy on the *training* set decides); ``flipped_`` records it and
``sign_resolved_`` says whether it was done. The paper instead reports ``max(acc, 1 - acc)`` on
the test set: :func:`optimistic_accuracy`, reported as ``acc_optimistic``, is optimistic (it
peeks at test labels) and is never the headline number here.

Batched fitting: ``CCS.fit_many`` / ``CRC.fit_many`` / ``LogisticProbe.fit_many`` fit ``B``
independent problems (e.g. every layer) at once on ``[B, n, d]`` arrays; each result equals a
separate ``fit`` (AdamW and the SVD act on each problem separately; the logistic loss is convex).
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ArrayLike = "np.ndarray | torch.Tensor"


@contextmanager
def _one_thread():
    """Run torch single-threaded, then restore the caller's setting.

    Probe fits are thousands of tiny ops: intra-op threads only add synchronisation, and on a
    busy machine they made a step 100x slower (24 ms vs 0.3 ms measured on 2 shared cores).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- input checks

def _tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if not (x.is_floating_point()):
        raise TypeError(f"{name} must hold floats, got dtype {x.dtype}")
    return x.detach().to("cpu", torch.float32)


def check_pairs(x_pos, x_neg, y=None, *, need_y: bool = False, batched: bool = False):
    """Validate a set of contrast pairs; returns float32 tensors and ``y`` as an int64 array (or None).

    ``x_pos``, ``x_neg``: ``[n, d]`` (``[B, n, d]`` when ``batched``), same shape, finite.
    ``y``: ``[n]`` of 0/1.
    """
    xp, xn = _tensor(x_pos, "x_pos"), _tensor(x_neg, "x_neg")
    dims = 3 if batched else 2
    shape = "[B, n, d]" if batched else "[n, d]"
    for x, name in ((xp, "x_pos"), (xn, "x_neg")):
        if x.dim() != dims:
            raise ValueError(f"{name} must be {shape}, got shape {tuple(x.shape)}")
    if xp.shape != xn.shape:
        raise ValueError(f"the two halves of the contrast pairs differ in shape: x_pos "
                         f"{tuple(xp.shape)} vs x_neg {tuple(xn.shape)}; each example needs "
                         f"one x_pos and one x_neg")
    if xp.shape[-2] < 2:
        raise ValueError(f"need at least 2 contrast pairs, got {xp.shape[-2]}")
    for x, name in ((xp, "x_pos"), (xn, "x_neg")):
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).any(-1).sum())
            raise ValueError(f"{name} holds NaN or infinite values ({bad} rows); check the extraction "
                             f"(fp16 overflow?) before fitting")
    if y is None:
        if need_y:
            raise ValueError("labels y are required")
        return xp, xn, None
    y = _labels(y, xp.shape[-2])
    return xp, xn, y


def _labels(y, n: int) -> np.ndarray:
    y = np.asarray(y.cpu() if torch.is_tensor(y) else y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be [n] = [{n}] labels, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must hold 0/1 labels, got values {sorted(set(np.unique(y).tolist()))[:5]}")
    return y.astype(np.int64)


# --------------------------------------------------------------------------- normalisation

class PairNormalizer:
    """Per-class mean normalisation (Burns §2.2): x⁺ − μ⁺ and x⁻ − μ⁻, with μ fitted once.

    ``scale``: ``None`` (mean only, Burns code and elk/ccs), ``"norm"`` (also divide by the mean
    norm of the centred states / √d, one scalar, the paper's App. G; a scalar rescale changes no
    decision, only the optimiser's conditioning) or ``"std"`` (per-dimension std, Burns'
    ``var_normalize``). Works on ``[n, d]`` or ``[B, n, d]`` (statistics per leading index).
    """

    def __init__(self, scale: str | None = "norm"):
        if scale not in (None, "norm", "std"):
            raise ValueError(f"scale must be None, 'norm' or 'std', got {scale!r}")
        self.scale = scale

    def fit(self, x_pos: torch.Tensor, x_neg: torch.Tensor) -> "PairNormalizer":
        self.mean_pos_ = x_pos.mean(-2, keepdim=True)
        self.mean_neg_ = x_neg.mean(-2, keepdim=True)
        centred = torch.cat([x_pos - self.mean_pos_, x_neg - self.mean_neg_], -2)
        if self.scale == "norm":
            d = x_pos.shape[-1]
            s = centred.norm(dim=-1).mean(-1, keepdim=True)[..., None] / math.sqrt(d)
        elif self.scale == "std":
            s = centred.std(-2, keepdim=True)
        else:
            s = torch.ones_like(self.mean_pos_[..., :1])
        self.scale_ = s.clamp_min(1e-8)
        return self

    def transform(self, x_pos: torch.Tensor, x_neg: torch.Tensor):
        """``(x̃⁺, x̃⁻)`` with the training statistics, whatever set is passed."""
        if not hasattr(self, "mean_pos_"):
            raise RuntimeError("PairNormalizer is not fitted; call fit() on the training pairs")
        if x_pos.shape[-1] != self.mean_pos_.shape[-1]:
            raise ValueError(f"states have d={x_pos.shape[-1]}, the normaliser was fitted on "
                             f"d={self.mean_pos_.shape[-1]}")
        return (x_pos - self.mean_pos_) / self.scale_, (x_neg - self.mean_neg_) / self.scale_

    def select(self, i: int) -> "PairNormalizer":
        """The normaliser of problem ``i`` of a batched fit."""
        out = PairNormalizer(self.scale)
        out.mean_pos_, out.mean_neg_, out.scale_ = (self.mean_pos_[i], self.mean_neg_[i], self.scale_[i])
        return out

    def state(self, prefix: str = "norm.") -> dict[str, torch.Tensor]:
        return {prefix + "mean_pos": self.mean_pos_, prefix + "mean_neg": self.mean_neg_,
                prefix + "scale": self.scale_}

    @classmethod
    def from_state(cls, scale, tensors, prefix: str = "norm.") -> "PairNormalizer":
        out = cls(scale)
        out.mean_pos_ = tensors[prefix + "mean_pos"]
        out.mean_neg_ = tensors[prefix + "mean_neg"]
        out.scale_ = tensors[prefix + "scale"]
        return out


# --------------------------------------------------------------------------- metrics

def accuracy(p, y) -> float:
    """Fraction of pairs where ``p > 0.5`` matches ``y``."""
    p, y = np.asarray(p), np.asarray(y)
    return float(((p > 0.5) == (y == 1)).mean())


def optimistic_accuracy(p, y) -> float:
    """``max(acc, 1 - acc)``: the paper's sign-free accuracy. Optimistic: it uses the *test* labels."""
    acc = accuracy(p, y)
    return max(acc, 1 - acc)


def auroc(scores, y) -> float:
    """Area under the ROC curve (Mann–Whitney, ties count one half). NaN with a single class."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(y)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    from scipy.stats import rankdata
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def bootstrap_ci(p, y, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals of accuracy and AUROC (``n_boot`` resamples of the pairs).

    Vectorised: a resample is a vector of counts ``w`` [n]; AUROC = wₚᵀ M w₋ / (Σwₚ Σw₋) with
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
    y = _labels(y, len(np.asarray(p)))
    row = {"n": len(y), "acc": accuracy(p, y), "auroc": auroc(p, y)}
    if n_boot:
        row.update(bootstrap_ci(p, y, n_boot=n_boot, seed=seed))
    row["acc_optimistic"] = optimistic_accuracy(p, y)
    return row


# --------------------------------------------------------------------------- reporters

class Reporter:
    """Shared scikit-learn surface: ``predict``, ``score``, ``evaluate``."""

    kind = "reporter"

    def predict(self, x_pos, x_neg) -> np.ndarray:
        """0/1 predictions ``[n]``: 1 when the label-1 completion is judged true."""
        return (self.predict_proba(x_pos, x_neg) > 0.5).astype(np.int64)

    def score(self, x_pos, x_neg, y) -> float:
        """Accuracy on ``(x_pos, x_neg, y)`` with the fitted sign (not ``max(acc, 1-acc)``)."""
        p = self.predict_proba(x_pos, x_neg)
        return accuracy(p, _labels(y, len(p)))

    def evaluate(self, x_pos, x_neg, y, *, n_boot: int = 1000, seed: int = 0) -> dict:
        """:func:`evaluate` on this reporter's probabilities."""
        return evaluate(self.predict_proba(x_pos, x_neg), y, n_boot=n_boot, seed=seed)

    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def _resolve_sign(self, x_pos, x_neg, y):
        """Flip the direction if it is right on fewer than half of the *training* pairs."""
        self.flipped_ = False
        self.sign_resolved_ = y is not None
        if y is not None:
            self.train_acc_ = accuracy(self.predict_proba(x_pos, x_neg), y)
            if self.train_acc_ < 0.5:
                self._flip()
                self.flipped_ = True
                self.train_acc_ = 1 - self.train_acc_

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _init_unit(b: int, t: int, d: int, seed: int) -> torch.Tensor:
    """Random unit-norm directions ``[b, t, d]`` (the paper's spherical init), seeded; every
    problem of a batch gets the same ``t`` starts, so a batched fit equals separate fits."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(t, d, generator=g)
    return (theta / theta.norm(dim=-1, keepdim=True)).expand(b, t, d).clone()


def ccs_loss(p_pos: torch.Tensor, p_neg: torch.Tensor) -> torch.Tensor:
    """Mean over pairs (last dim) of [p⁺ − (1 − p⁻)]² + min(p⁺, p⁻)²."""
    consistency = (p_pos - (1 - p_neg)) ** 2
    confidence = torch.minimum(p_pos, p_neg) ** 2
    return (consistency + confidence).mean(-1)


class CCS(Reporter):
    """Contrast-Consistent Search: a linear probe + sigmoid trained without labels.

    ``n_tries`` random unit-norm starts, each trained full-batch with AdamW (``lr``,
    ``weight_decay``) for ``epochs`` steps; the try with the lowest final loss is kept
    (paper App. G.3: lr 0.01, 1000 epochs, 10 tries). ``scale``: see :class:`PairNormalizer`.
    Fitted: ``coef_`` [d], ``intercept_``, ``loss_``, ``normalizer_``, ``flipped_``.
    """

    kind = "ccs"

    def __init__(self, n_tries: int = 10, epochs: int = 1000, lr: float = 1e-2,
                 weight_decay: float = 0.01, scale: str | None = "norm", seed: int = 0):
        if n_tries < 1 or epochs < 1:
            raise ValueError(f"n_tries and epochs must be >= 1, got {n_tries}, {epochs}")
        self.n_tries, self.epochs, self.lr = n_tries, epochs, lr
        self.weight_decay, self.scale, self.seed = weight_decay, scale, seed

    def fit(self, x_pos, x_neg, y=None) -> "CCS":
        """Fit on ``[n, d]`` pairs; ``y`` (training labels, optional) only picks the sign."""
        xp, xn, y = check_pairs(x_pos, x_neg, y)
        return self.fit_many(xp[None], xn[None], None if y is None else y)[0]._copy_to(self)

    def fit_many(self, x_pos, x_neg, y=None) -> list["CCS"]:
        """Fit ``B`` independent probes on ``[B, n, d]`` pairs (e.g. one per layer)."""
        xp, xn, y = check_pairs(x_pos, x_neg, y, batched=True)
        norm = PairNormalizer(self.scale).fit(xp, xn)
        a, b = norm.transform(xp, xn)
        B, n, d = a.shape
        theta = _init_unit(B, self.n_tries, d, self.seed).requires_grad_(True)
        bias = torch.zeros(B, self.n_tries, requires_grad=True)
        opt = torch.optim.AdamW([theta, bias], lr=self.lr, weight_decay=self.weight_decay)

        def losses():
            lp = torch.einsum("bnd,btd->btn", a, theta) + bias[..., None]
            ln = torch.einsum("bnd,btd->btn", b, theta) + bias[..., None]
            return ccs_loss(torch.sigmoid(lp), torch.sigmoid(ln))  # [B, T]

        with torch.enable_grad(), _one_thread():
            for _ in range(self.epochs):
                opt.zero_grad(set_to_none=True)
                # Summing independent problems leaves each one's AdamW update unchanged.
                losses().sum().backward()
                opt.step()
        theta, bias = theta.detach(), bias.detach()
        with torch.no_grad():
            final = losses()
            best = final.argmin(-1)
        out = []
        for i in range(B):
            r = CCS(**self.params())
            r.normalizer_ = norm.select(i)
            r.coef_ = theta[i, best[i]].detach().clone()
            r.intercept_ = float(bias[i, best[i]])
            r.loss_ = float(final[i, best[i]])
            r.try_losses_ = final[i].tolist()
            r._resolve_sign(xp[i], xn[i], y)
            out.append(r)
        return out

    def _copy_to(self, other):
        other.__dict__.update(self.__dict__)
        return other

    def _flip(self):
        self.coef_, self.intercept_ = -self.coef_, -self.intercept_

    def probabilities(self, x_pos, x_neg):
        """``(p(x⁺), p(x⁻))``, each ``[n]``: the probe on each normalised half."""
        self._check_fitted()
        xp, xn, _ = check_pairs(x_pos, x_neg)
        a, b = self.normalizer_.transform(xp, xn)
        with torch.no_grad():
            return (torch.sigmoid(a @ self.coef_ + self.intercept_).numpy(),
                    torch.sigmoid(b @ self.coef_ + self.intercept_).numpy())

    def predict_proba(self, x_pos, x_neg) -> np.ndarray:
        """½·(p(x⁺) + 1 − p(x⁻)) ``[n]``."""
        pp, pn = self.probabilities(x_pos, x_neg)
        return 0.5 * (pp + 1 - pn)

    def loss(self, x_pos, x_neg) -> float:
        """The unsupervised CCS loss of the fitted probe on a set of pairs."""
        pp, pn = self.probabilities(x_pos, x_neg)
        return float(ccs_loss(torch.from_numpy(pp), torch.from_numpy(pn)))


class CRC(Reporter):
    """Contrast-Representation Clustering, TPC variant: the top principal component of
    ``c = x̃⁺ − x̃⁻`` (normalised with training statistics), threshold 0.

    ``predict_proba`` = σ(θᵀc / s) with ``s`` the training std of θᵀc, so 0.5 is the threshold.
    """

    kind = "crc"

    def __init__(self, scale: str | None = "norm"):
        self.scale = scale

    def fit(self, x_pos, x_neg, y=None) -> "CRC":
        xp, xn, y = check_pairs(x_pos, x_neg, y)
        r = self.fit_many(xp[None], xn[None], y)[0]
        self.__dict__.update(r.__dict__)
        return self

    def fit_many(self, x_pos, x_neg, y=None) -> list["CRC"]:
        xp, xn, y = check_pairs(x_pos, x_neg, y, batched=True)
        norm = PairNormalizer(self.scale).fit(xp, xn)
        a, b = norm.transform(xp, xn)
        c = (a - b).double()  # mean zero by construction of the per-class normalisation
        _, s, vh = torch.linalg.svd(c, full_matrices=False)
        out = []
        for i in range(len(c)):
            r = CRC(self.scale)
            r.normalizer_ = norm.select(i)
            v = vh[i, 0]
            r.coef_ = v.float()
            r.proj_std_ = float((c[i] @ v).std().clamp_min(1e-12))
            r.explained_ = float(s[i, 0] ** 2 / (s[i] ** 2).sum())
            r.intercept_ = 0.0
            r._resolve_sign(xp[i], xn[i], y)
            out.append(r)
        return out

    def _flip(self):
        self.coef_ = -self.coef_

    def predict_proba(self, x_pos, x_neg) -> np.ndarray:
        self._check_fitted()
        xp, xn, _ = check_pairs(x_pos, x_neg)
        a, b = self.normalizer_.transform(xp, xn)
        return torch.sigmoid((a - b) @ self.coef_ / self.proj_std_).numpy()


class LogisticProbe(Reporter):
    """The supervised ceiling: L2-regularised logistic regression on pair differences x⁺ − x⁻.

    Features are standardised with training statistics; loss = mean BCE + ``l2``/2·‖w‖², minimised
    with L-BFGS (strong Wolfe) from zero. Burns et al. fit LR on the same differences.
    """

    kind = "lr"

    def __init__(self, l2: float = 1e-2, max_iter: int = 200):
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.l2, self.max_iter = l2, max_iter

    def fit(self, x_pos, x_neg, y) -> "LogisticProbe":
        xp, xn, y = check_pairs(x_pos, x_neg, y, need_y=True)
        r = self.fit_many(xp[None], xn[None], y)[0]
        self.__dict__.update(r.__dict__)
        return self

    def fit_many(self, x_pos, x_neg, y) -> list["LogisticProbe"]:
        xp, xn, y = check_pairs(x_pos, x_neg, y, need_y=True, batched=True)
        if len(np.unique(y)) < 2:
            raise ValueError(f"LogisticProbe needs both classes in y, got only label {int(y[0])} "
                             f"({len(y)} examples); a single-class probe is meaningless")
        f = (xp - xn).double()
        mu, sd = f.mean(-2, keepdim=True), f.std(-2, keepdim=True).clamp_min(1e-6)
        z = (f - mu) / sd
        t = torch.as_tensor(y, dtype=torch.float64)
        B, n, d = z.shape
        w = torch.zeros(B, d, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(B, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1, max_iter=self.max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = torch.einsum("bnd,bd->bn", z, w) + b[:, None]
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, t.expand_as(logits), reduction="none").mean(-1)
            # The problems are separate and convex: minimising the sum minimises each one.
            loss = (bce + 0.5 * self.l2 * (w ** 2).sum(-1)).sum()
            loss.backward()
            return loss

        with torch.enable_grad(), _one_thread():
            opt.step(closure)
        out = []
        for i in range(B):
            r = LogisticProbe(self.l2, self.max_iter)
            r.mean_, r.std_ = mu[i, 0].float(), sd[i, 0].float()
            r.coef_, r.intercept_ = w[i].detach().float(), float(b[i].detach())
            r.train_acc_ = accuracy(r.predict_proba(xp[i], xn[i]), y)
            out.append(r)
        return out

    def predict_proba(self, x_pos, x_neg) -> np.ndarray:
        self._check_fitted()
        xp, xn, _ = check_pairs(x_pos, x_neg)
        z = ((xp - xn) - self.mean_) / self.std_
        return torch.sigmoid(z @ self.coef_ + self.intercept_).numpy()


class ZeroShot(Reporter):
    """The LM's own answer: score = log p(answer⁺) − log p(answer⁻) (mean log-prob per answer token).

    ``calibrate=False``: predict 1 when score > 0. ``calibrate=True``: the threshold is the median
    training score, so half of the (training) predictions go each way (Burns' calibrated 0-shot).
    Takes ``[n]`` log-probabilities instead of hidden states.
    """

    def __init__(self, calibrate: bool = False):
        self.calibrate = calibrate

    @property
    def kind(self):
        return "zero_shot_cal" if self.calibrate else "zero_shot"

    @staticmethod
    def _scores(logp_pos, logp_neg) -> np.ndarray:
        lp, ln = np.asarray(logp_pos, np.float64), np.asarray(logp_neg, np.float64)
        if lp.shape != ln.shape or lp.ndim != 1:
            raise ValueError(f"logp_pos and logp_neg must both be [n], got {lp.shape} and {ln.shape}")
        if not (np.isfinite(lp).all() and np.isfinite(ln).all()):
            raise ValueError("answer log-probabilities hold NaN or infinite values")
        return lp - ln

    def fit(self, logp_pos, logp_neg, y=None) -> "ZeroShot":
        s = self._scores(logp_pos, logp_neg)
        self.coef_ = 1.0
        self.threshold_ = float(np.median(s)) if self.calibrate else 0.0
        return self

    def predict_proba(self, logp_pos, logp_neg) -> np.ndarray:
        self._check_fitted()
        return 1 / (1 + np.exp(-(self._scores(logp_pos, logp_neg) - self.threshold_)))


REPORTERS = {"ccs": CCS, "crc": CRC, "lr": LogisticProbe}


def make_reporter(kind: str, **kwargs) -> Reporter:
    """``"ccs"``, ``"crc"`` or ``"lr"`` -> a new reporter."""
    if kind not in REPORTERS:
        raise ValueError(f"unknown reporter {kind!r}; choose from {', '.join(REPORTERS)}")
    return REPORTERS[kind](**kwargs)


# --------------------------------------------------------------------------- saving (no pickle)

def save_reporter(reporter: Reporter, path: str | Path) -> Path:
    """Write ``<path>.safetensors`` (tensors) + ``<path>.json`` (class and parameters)."""
    from safetensors.torch import save_file

    path = Path(path)
    reporter._check_fitted()
    tensors = {"coef": reporter.coef_.contiguous()}
    meta = {"kind": reporter.kind, "params": reporter.params(),
            "intercept": reporter.intercept_, "flipped": getattr(reporter, "flipped_", False)}
    if isinstance(reporter, (CCS, CRC)):
        tensors.update({k: v.contiguous() for k, v in reporter.normalizer_.state().items()})
    if isinstance(reporter, CRC):
        meta["proj_std"] = reporter.proj_std_
    if isinstance(reporter, LogisticProbe):
        tensors["mean"], tensors["std"] = reporter.mean_.contiguous(), reporter.std_.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return path


def load_reporter(path: str | Path) -> Reporter:
    """Inverse of :func:`save_reporter` (classes come from a fixed table, never from the file)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    tensors = load_file(str(path.with_suffix(".safetensors")))
    r = make_reporter(meta["kind"], **meta["params"])
    r.coef_, r.intercept_, r.flipped_ = tensors["coef"], meta["intercept"], meta["flipped"]
    if isinstance(r, (CCS, CRC)):
        r.normalizer_ = PairNormalizer.from_state(r.scale, tensors)
    if isinstance(r, CRC):
        r.proj_std_ = meta["proj_std"]
    if isinstance(r, LogisticProbe):
        r.mean_, r.std_ = tensors["mean"], tensors["std"]
    return r


def refit_normalization(reporter: Reporter, x_pos, x_neg) -> Reporter:
    """A copy of an unsupervised reporter whose per-class means come from other (unlabelled)
    pairs — for transfer to a dataset or template with its own offsets. Labels are not used."""
    if not isinstance(reporter, (CCS, CRC)):
        return reporter
    xp, xn, _ = check_pairs(x_pos, x_neg)
    out = type(reporter).__new__(type(reporter))
    out.__dict__.update(reporter.__dict__)
    norm = PairNormalizer(reporter.scale).fit(xp, xn)
    norm.scale_ = reporter.normalizer_.scale_  # keep the trained scale: θ was fitted in those units
    out.normalizer_ = norm
    return out


# --------------------------------------------------------------------------- sweeps

EVAL_COLUMNS = ["dataset", "template", "layer", "reporter", "n_train", "n_test", "acc", "acc_lower",
                "acc_upper", "auroc", "auroc_lower", "auroc_upper", "acc_optimistic", "train_acc",
                "flipped", "train_loss"]


def fit_layers(kind: str, train, layers: list[int] | None = None, **kwargs) -> dict[int, Reporter]:
    """Fit one reporter per layer on a :class:`~nbtoolkit.activations.ContrastStates` training set
    (all layers in one batched fit); training labels resolve the sign. Returns ``{layer: reporter}``."""
    layers = list(train.layers) if layers is None else list(layers)
    xp, xn = train.stack(layers)
    fitted = make_reporter(kind, **kwargs).fit_many(xp, xn, train.labels)
    return dict(zip(layers, fitted))


def eval_layers(reporters: dict[int, Reporter], test, *, n_boot: int = 1000, seed: int = 0,
                n_train: int | None = None, refit_norm_on=None) -> pd.DataFrame:
    """One eval.csv row per layer for fitted reporters on a test :class:`ContrastStates`.

    ``refit_norm_on``: unlabelled states whose per-class means replace the training ones
    (transfer to another dataset/template); ``None`` keeps the training statistics.
    """
    rows = []
    for layer, rep in reporters.items():
        xp, xn = test.at(layer)
        if refit_norm_on is not None:
            rep = refit_normalization(rep, *refit_norm_on.at(layer))
        row = {"dataset": test.dataset, "template": test.template_id, "layer": layer,
               "reporter": rep.kind, "n_train": n_train, "n_test": len(test)}
        row.update(rep.evaluate(xp, xn, test.labels, n_boot=n_boot, seed=seed))
        row["train_acc"] = getattr(rep, "train_acc_", np.nan)
        row["flipped"] = getattr(rep, "flipped_", False)
        row["train_loss"] = getattr(rep, "loss_", np.nan)
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=EVAL_COLUMNS)


def sweep_layers(train, test, reporters=("ccs", "crc", "lr"), layers: list[int] | None = None, *,
                 n_boot: int = 1000, seed: int = 0, options: dict | None = None) -> pd.DataFrame:
    """Fit every reporter on every layer of ``train`` and evaluate on ``test``: an eval.csv table.

    ``options`` maps a reporter kind to its constructor arguments, e.g. ``{"ccs": {"n_tries": 5}}``.
    """
    options = options or {}
    frames = []
    for kind in reporters:
        fitted = fit_layers(kind, train, layers, **options.get(kind, {}))
        frames.append(eval_layers(fitted, test, n_boot=n_boot, seed=seed, n_train=len(train)))
    return pd.concat(frames, ignore_index=True)


def zero_shot_eval(train, test, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Rows for the zero-shot and calibrated zero-shot baselines (``layer`` = -1: not a layer)."""
    rows = []
    for calibrate in (False, True):
        rep = ZeroShot(calibrate).fit(train.logp_pos, train.logp_neg)
        row = {"dataset": test.dataset, "template": test.template_id, "layer": -1,
               "reporter": rep.kind, "n_train": len(train), "n_test": len(test)}
        row.update(rep.evaluate(test.logp_pos, test.logp_neg, test.labels, n_boot=n_boot, seed=seed))
        row["train_acc"] = rep.score(train.logp_pos, train.logp_neg, train.labels)
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=EVAL_COLUMNS)


def transfer_matrix(splits: dict, layer: int, kind: str = "crc", *, metric: str = "auroc",
                    **kwargs) -> pd.DataFrame:
    """Train on dataset A, evaluate on dataset B, for every (A, B): a ``[train × eval]`` frame.

    ``splits`` maps a name to ``(train, test)`` :class:`ContrastStates`. A reporter is trained on
    A's training split (sign from A's labels); on B its per-class means are refitted on B's
    *unlabelled* training split (CCS/CRC only), then it is scored on B's test split.
    """
    names = list(splits)
    table = pd.DataFrame(index=pd.Index(names, name="train"), columns=pd.Index(names, name="eval"),
                         dtype=float)
    for a in names:
        rep = fit_layers(kind, splits[a][0], [layer], **kwargs)[layer]
        for b in names:
            train_b, test_b = splits[b]
            r = rep if a == b else refit_normalization(rep, *train_b.at(layer))
            p = r.predict_proba(*test_b.at(layer))
            table.loc[a, b] = auroc(p, test_b.labels) if metric == "auroc" else accuracy(p, test_b.labels)
    return table
