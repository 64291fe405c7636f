"""Reporters that read truth from hidden states: CCS, CRC, a logistic ceiling and zero-shot baselines
(VINC, elk's eigen reporter, is in :mod:`nbtoolkit.probes.vinc`).

Every reporter is a scikit-learn estimator: ``__init__`` only stores its parameters
(``get_params`` / ``set_params`` / ``sklearn.base.clone`` work), ``fit(x_pos, x_neg, y=None)``
checks them and learns, ``predict_proba(x_pos, x_neg)`` gives the probability that the label-1
completion is the true one (one number per pair rather than scikit-learn's ``[n, 2]``),
``predict`` and ``score(x_pos, x_neg, y)`` (accuracy). ``x_pos``/``x_neg`` are ``[n, d]`` hidden
states of the two halves of ``n`` contrast pairs (``x_pos`` = the prompt completed with the
label-1 answer), or ``[n, v, d]``: the same ``n`` examples under ``v`` prompt templates, fitted
as one reporter (elk's "variants"); outputs then carry the template axis (``[n, v]``).

- :class:`CCS` (Burns et al. 2022): per-class mean normalisation (per template) fitted on the
  training set and reused unchanged at test time; consistency + confidence loss over every pair;
  ``n_tries`` restarts, lowest loss kept.
- :class:`CRC`: top principal component of the normalised pair differences (CRC-TPC).
- :class:`LogisticProbe`: supervised logistic regression on pair differences (the ceiling).
- :class:`ZeroShot`: the LM's own answer log-probabilities; ``calibrate=True`` moves the threshold to
  the training median (half the predictions each way).

Credences and Platt scaling (elk/ccs): an unsupervised reporter scores every hidden state on its
own, ``s(x)``; ``credences`` are the logits ``ℓ(x) = a·s(x) + b`` (``[..., 0]`` for x⁻,
``[..., 1]`` for x⁺) and ``predict_proba`` = σ(ℓ⁺ − ℓ⁻), elk's "partial" reading of a pair (the
same decision as Burns' ½(p⁺ + 1 − p⁻) > ½ when ``a > 0``). When ``fit`` gets training labels,
the scale ``a`` and bias ``b`` are fitted by logistic regression (BCE) of "this state
is the true completion" on ``s`` over every training state: two supervised numbers that fix the
sign (``flipped_`` = ``a < 0``) and calibrate the probabilities. Without labels ``a = 1, b = 0``
and the sign is arbitrary (``sign_resolved_`` is False): the paper's ``max(acc, 1 − acc)``
(:func:`~nbtoolkit.probes.metrics.optimistic_accuracy`, reported as ``acc_optimistic``) peeks at
the test labels instead and is never the headline number here.

Batched fitting: ``fit_many`` fits ``B`` independent problems (e.g. every layer) at once on
``[B, n, d]`` (or ``[B, n, v, d]``) arrays; each result equals a separate ``fit`` (AdamW and the
SVD act on each problem separately; the logistic loss is convex).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from ..core.modes import one_thread
from .metrics import accuracy, evaluate_credences
from .pairs import PairNormalizer, check_labels, check_pairs


NOT_FITTED = "%(name)s is not fitted; call fit() first"  # check_is_fitted's NotFittedError


def _pairs(x_pos, x_neg):
    """Checked ``[n, v, d]`` tensors, and whether the caller gave ``[n, d]`` (one template)."""
    xp, xn, _ = check_pairs(x_pos, x_neg)
    return xp, xn, np.ndim(x_pos) == 2


class Reporter(BaseEstimator):
    """The shared surface: ``fit`` (through ``fit_many``), ``credences``, ``predict_proba``,
    ``predict``, ``score``, ``evaluate``. Subclasses define ``fit_many`` and ``_scores``."""

    kind = "reporter"
    needs_labels = False

    def fit(self, x_pos, x_neg, y=None):
        """Fit on ``[n, d]`` or ``[n, v, d]`` pairs (``y`` [n]: training labels; for the
        unsupervised reporters they only fit the Platt scale and bias)."""
        xp, xn, y = check_pairs(x_pos, x_neg, y, need_y=self.needs_labels)
        with one_thread():
            fitted = self.fit_many(xp[None], xn[None], y)[0]
        self.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
        return self

    def fit_many(self, x_pos, x_neg, y=None) -> list["Reporter"]:
        """Fit ``B`` independent reporters on ``[B, n, d]`` or ``[B, n, v, d]`` pairs."""
        raise NotImplementedError

    def _check_params(self) -> None:
        """``ValueError`` for a parameter no fit can use (scikit-learn checks in ``fit``)."""

    def _scores(self, xp: torch.Tensor, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated per-state scores ``(s(x⁺), s(x⁻))``, each ``[n, v]``, of checked pairs."""
        raise NotImplementedError

    def credences(self, x_pos, x_neg) -> np.ndarray:
        """Per-state logits ``[n, 2]`` (``[n, v, 2]`` for ``[n, v, d]`` input): ``[..., 0]`` for
        x⁻, ``[..., 1]`` for x⁺, Platt-scaled."""
        check_is_fitted(self, "coef_", msg=NOT_FITTED)
        with torch.no_grad(), one_thread():
            xp, xn, one = _pairs(x_pos, x_neg)
            if torch.is_tensor(self.coef_) and xp.shape[-1] != self.coef_.shape[-1]:
                raise ValueError(f"states have width {xp.shape[-1]} but this {self.kind} "
                                 f"reporter was fitted on width {self.coef_.shape[-1]}")
            sp, sn = self._scores(xp, xn)
        c = torch.stack([sn, sp], -1).double().numpy() * self.platt_scale_ + self.platt_bias_
        return c[:, 0] if one else c

    def predict_proba(self, x_pos, x_neg) -> np.ndarray:
        """σ(ℓ⁺ − ℓ⁻): ``[n]`` (``[n, v]`` for ``[n, v, d]`` input)."""
        c = self.credences(x_pos, x_neg)
        return expit(c[..., 1] - c[..., 0])

    def predict(self, x_pos, x_neg) -> np.ndarray:
        """0/1 predictions: 1 when the label-1 completion is judged true."""
        return (self.predict_proba(x_pos, x_neg) > 0.5).astype(np.int64)

    def score(self, x_pos, x_neg, y) -> float:
        """Accuracy on ``(x_pos, x_neg, y)`` with the fitted sign (over every template)."""
        p = self.predict_proba(x_pos, x_neg)
        y = check_labels(y, len(p))
        return accuracy(p.ravel(), np.repeat(y, p[0].size))  # a label per (example, template)

    def evaluate(self, x_pos, x_neg, y, *, ensembling: str = "partial", n_boot: int = 1000,
                 seed: int = 0) -> dict:
        """An eval.csv row (:func:`~nbtoolkit.probes.metrics.evaluate_credences`)."""
        c = self.credences(x_pos, x_neg)
        if c.ndim == 2:
            c = c[:, None]
        return evaluate_credences(c, y, ensembling, n_boot=n_boot, seed=seed)

    def _calibrate(self, xp: torch.Tensor, xn: torch.Tensor, y) -> None:
        """Platt scaling on the training states (elk/ccs): scale and bias of ``s`` by BCE."""
        self.platt_scale_, self.platt_bias_ = 1.0, 0.0
        self.sign_resolved_ = y is not None
        if y is not None:
            with torch.no_grad():
                sp, sn = (s.double().numpy() for s in self._scores(xp, xn))
            truth = np.broadcast_to(np.asarray(y)[:, None], sp.shape)
            states = np.concatenate([sp.ravel(), sn.ravel()])[:, None]
            target = np.concatenate([truth.ravel(), 1 - truth.ravel()])
            centre, unit = states.mean(), states.std()
            if unit > 1e-9 * max(1.0, abs(centre)):  # constant scores carry no sign: a = 0
                # Standardised scores and a negligible L2 (C = 1e4) keep the fit well conditioned
                # and the scale finite when the training states are separable (elk instead stops
                # L-BFGS after 100 steps); Newton is exact in a few steps, lbfgs 8x slower.
                platt = LogisticRegression(C=1e4, solver="newton-cholesky")
                with warnings.catch_warnings():  # on a flat problem (a layer without signal)
                    warnings.simplefilter("ignore")  # Newton falls back to lbfgs, loudly
                    platt.fit((states - centre) / unit, target)
                self.platt_scale_ = float(platt.coef_[0, 0]) / unit
                self.platt_bias_ = float(platt.intercept_[0]) - self.platt_scale_ * centre
            else:
                self.platt_scale_ = 0.0
            self.train_acc_ = float(np.mean((self.platt_scale_ * (sp - sn) > 0) == truth))
        self.flipped_ = self.platt_scale_ < 0


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
    Per-state score: the probe's logit θᵀx̃ + c. Fitted: ``coef_`` [d], ``intercept_``,
    ``loss_``, ``normalizer_``, Platt ``platt_scale_``/``platt_bias_``, ``flipped_``.
    """

    kind = "ccs"

    def __init__(self, n_tries: int = 10, epochs: int = 1000, lr: float = 1e-2,
                 weight_decay: float = 0.01, scale: str | None = "norm", seed: int = 0):
        self.n_tries, self.epochs, self.lr = n_tries, epochs, lr
        self.weight_decay, self.scale, self.seed = weight_decay, scale, seed

    def _check_params(self):
        if self.n_tries < 1 or self.epochs < 1:
            raise ValueError(f"n_tries and epochs must be >= 1, got {self.n_tries}, {self.epochs}")

    def fit_many(self, x_pos, x_neg, y=None) -> list["CCS"]:
        self._check_params()
        xp, xn, y = check_pairs(x_pos, x_neg, y, batched=True)
        norm = PairNormalizer(self.scale).fit(xp, xn)
        a, b = (t.flatten(1, 2) for t in norm.transform(xp, xn))  # every (example, template) pair
        B, n, d = a.shape
        theta = _init_unit(B, self.n_tries, d, self.seed).requires_grad_(True)
        bias = torch.zeros(B, self.n_tries, requires_grad=True)
        opt = torch.optim.AdamW([theta, bias], lr=self.lr, weight_decay=self.weight_decay)

        def losses():
            lp = torch.einsum("bnd,btd->btn", a, theta) + bias[..., None]
            ln = torch.einsum("bnd,btd->btn", b, theta) + bias[..., None]
            return ccs_loss(torch.sigmoid(lp), torch.sigmoid(ln))  # [B, T]

        with torch.enable_grad(), one_thread():
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
            r = clone(self)
            r.normalizer_ = norm.select(i)
            r.coef_ = theta[i, best[i]].clone()
            r.intercept_ = float(bias[i, best[i]])
            r.loss_ = float(final[i, best[i]])
            r.try_losses_ = final[i].tolist()
            r._calibrate(xp[i], xn[i], y)
            out.append(r)
        return out

    def _scores(self, xp, xn):
        a, b = self.normalizer_.transform(xp, xn)
        return a @ self.coef_ + self.intercept_, b @ self.coef_ + self.intercept_

    def probabilities(self, x_pos, x_neg):
        """The probe's own ``(p(x⁺), p(x⁻))`` before Platt scaling (``[n]`` or ``[n, v]`` each)."""
        check_is_fitted(self, "coef_", msg=NOT_FITTED)
        xp, xn, one = _pairs(x_pos, x_neg)
        with torch.no_grad():
            pp, pn = (torch.sigmoid(s).numpy() for s in self._scores(xp, xn))
        return (pp[:, 0], pn[:, 0]) if one else (pp, pn)

    def loss(self, x_pos, x_neg) -> float:
        """The unsupervised CCS loss of the fitted probe on a set of pairs (every template)."""
        pp, pn = self.probabilities(x_pos, x_neg)
        return float(ccs_loss(torch.from_numpy(pp.ravel()), torch.from_numpy(pn.ravel())))


class CRC(Reporter):
    """Contrast-Representation Clustering, TPC variant: the top principal component θ of
    ``c = x̃⁺ − x̃⁻`` (normalised with training statistics, every template), threshold 0.

    Per-state score: θᵀx̃ / ``s`` with ``s`` the training std of θᵀc, so σ(s⁺ − s⁻) has unit scale.
    """

    kind = "crc"

    def __init__(self, scale: str | None = "norm"):
        self.scale = scale

    def fit_many(self, x_pos, x_neg, y=None) -> list["CRC"]:
        xp, xn, y = check_pairs(x_pos, x_neg, y, batched=True)
        norm = PairNormalizer(self.scale).fit(xp, xn)
        a, b = norm.transform(xp, xn)
        c = (a - b).flatten(1, 2).double()  # mean zero by construction of the per-class normalisation
        _, s, vh = torch.linalg.svd(c, full_matrices=False)
        out = []
        for i in range(len(c)):
            r = clone(self)
            r.normalizer_ = norm.select(i)
            v = vh[i, 0]
            r.coef_ = v.float()
            r.proj_std_ = float((c[i] @ v).std().clamp_min(1e-12))
            r.explained_ = float(s[i, 0] ** 2 / (s[i] ** 2).sum())
            r._calibrate(xp[i], xn[i], y)
            out.append(r)
        return out

    def _scores(self, xp, xn):
        a, b = self.normalizer_.transform(xp, xn)
        return a @ self.coef_ / self.proj_std_, b @ self.coef_ / self.proj_std_


class LogisticProbe(Reporter):
    """The supervised ceiling: L2-regularised logistic regression on pair differences x⁺ − x⁻.

    Features are standardised with training statistics; loss = mean BCE + ``l2``/2·‖w‖², minimised
    with L-BFGS (strong Wolfe) from zero, every layer's problem in one batched fit (scikit-learn's
    LogisticRegression fits one problem at a time). Burns et al. fit LR on the same differences.
    The probe reads pairs, not states: its credences are ±z/2 for the pair logit z, so
    σ(ℓ⁺ − ℓ⁻) = σ(z); it is already calibrated by its BCE, no Platt scaling.
    """

    kind = "lr"
    needs_labels = True

    def __init__(self, l2: float = 1e-2, max_iter: int = 200):
        self.l2, self.max_iter = l2, max_iter

    def _check_params(self):
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")

    def fit_many(self, x_pos, x_neg, y=None) -> list["LogisticProbe"]:
        self._check_params()
        xp, xn, y = check_pairs(x_pos, x_neg, y, need_y=True, batched=True)
        if len(np.unique(y)) < 2:
            raise ValueError(f"LogisticProbe needs both classes in y, got only label {int(y[0])} "
                             f"({len(y)} examples); a single-class probe is meaningless")
        v = xp.shape[-2]
        f = (xp - xn).flatten(1, 2).double()  # [B, n·v, d], example-major
        mu, sd = f.mean(-2, keepdim=True), f.std(-2, keepdim=True).clamp_min(1e-6)
        z = (f - mu) / sd
        t = torch.as_tensor(np.repeat(y, v), dtype=torch.float64)
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

        with torch.enable_grad(), one_thread():
            opt.step(closure)
        out = []
        for i in range(B):
            r = clone(self)
            r.mean_, r.std_ = mu[i, 0].float(), sd[i, 0].float()
            r.coef_, r.intercept_ = w[i].detach().float(), float(b[i].detach())
            r.platt_scale_, r.platt_bias_, r.flipped_ = 1.0, 0.0, False
            r.train_acc_ = r.score(xp[i], xn[i], y)
            out.append(r)
        return out

    def _scores(self, xp, xn):
        z = (((xp - xn) - self.mean_) / self.std_) @ self.coef_ + self.intercept_
        return z / 2, -z / 2


class ZeroShot(Reporter):
    """The LM's own answer: score = log p(answer⁺) − log p(answer⁻) (mean log-prob per answer token).

    ``calibrate=False``: predict 1 when score > 0. ``calibrate=True``: the threshold is the median
    training score, so half of the (training) predictions go each way (Burns' calibrated 0-shot).
    Takes ``[n]`` (or ``[n, v]``) log-probabilities instead of hidden states; credences are
    ±(score − threshold)/2.
    """

    def __init__(self, calibrate: bool = False):
        self.calibrate = calibrate

    @property
    def kind(self):
        return "zero_shot_cal" if self.calibrate else "zero_shot"

    @staticmethod
    def _margin(logp_pos, logp_neg) -> np.ndarray:
        lp, ln = np.asarray(logp_pos, np.float64), np.asarray(logp_neg, np.float64)
        if lp.shape != ln.shape or lp.ndim not in (1, 2):
            raise ValueError(f"logp_pos and logp_neg must both be [n] or [n, v], got {lp.shape} "
                             f"and {ln.shape}")
        if not (np.isfinite(lp).all() and np.isfinite(ln).all()):
            raise ValueError("answer log-probabilities hold NaN or infinite values")
        return lp - ln

    def fit(self, logp_pos, logp_neg, y=None) -> "ZeroShot":
        s = self._margin(logp_pos, logp_neg)
        self.coef_ = 1.0
        self.threshold_ = float(np.median(s)) if self.calibrate else 0.0
        return self

    def credences(self, logp_pos, logp_neg) -> np.ndarray:
        check_is_fitted(self, "coef_", msg=NOT_FITTED)
        z = self._margin(logp_pos, logp_neg) - self.threshold_
        return np.stack([-z / 2, z / 2], -1)


def refit_normalization(reporter: Reporter, x_pos, x_neg) -> Reporter:
    """A copy of a CCS/CRC reporter whose per-class means come from other (unlabelled) pairs —
    for transfer to a dataset or template with its own offsets. Labels are not used; other
    reporters come back unchanged."""
    if not isinstance(reporter, (CCS, CRC)):
        return reporter
    xp, xn, _ = check_pairs(x_pos, x_neg)
    out = clone(reporter)
    out.__dict__.update({k: v for k, v in vars(reporter).items() if k.endswith("_")})
    norm = PairNormalizer(reporter.scale).fit(xp, xn)
    norm.scale_ = reporter.normalizer_.scale_  # keep the trained scale: θ was fitted in those units
    out.normalizer_ = norm
    return out
