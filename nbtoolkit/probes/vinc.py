"""VINC, elk's "eigen" reporter (its default after CRC; EleutherAI/elk and EleutherAI/ccs
``training/eigen_reporter.py``): the top eigenvector of

    A = w_var · Σ_inter − (1 − w_neg) · Σ_intra − w_neg · Σ_xcov

with the pseudo-label direction erased from A (P A Pᵀ, P the LEACE projection). On hidden states
``h [n, v, 2, d]`` of ``n`` examples, ``v`` templates and the two completions:

- Σ_intra (invariance): mean over (example, completion) of the covariance across templates;
- Σ_inter (variance): mean over the two completions of the covariance over examples of the
  template centroid (mean over templates; ``use_centroids=False``: every template on its own);
- Σ_xcov (negative covariance): the symmetrised cross-covariance of the two completions' centroids.

A direction where x⁺ and x⁻ move against each other (truth) and that is stable across templates
scores high. elk's defaults: ``var_weight`` 0 (its "Variance sucks" change), ``neg_cov_weight`` 0.5.

LEACE (Belrose et al. 2023) for the two-valued pseudo-label z ("this state ends in answer 1") is
rank one: with c = Cov(x, z) and Σ = Cov(x), the eraser is x ↦ x − c·aᵀ(x − μ)/(cᵀa), a = Σ⁺c,
and P = I − c aᵀ/(cᵀa). We use the pseudo-inverse of the sample covariance (concept-erasure's
``shrinkage=False``; elk shrinks Σ first) and skip the erasure when its singular value
‖Σ^{-½}Cov(x, one-hot z)‖ is under 0.01, as concept-erasure's ``svd_tol``. Everything lives in the
span of the centred states, so the work is in ``r ≤ 2·n·v`` coordinates, not ``d``.
The per-state score is wᵀ erase(x); its sign is fixed by Platt scaling (see
:mod:`nbtoolkit.probes.reporters`).
"""

from __future__ import annotations

import math

import torch
from sklearn.base import clone

from .pairs import check_pairs
from .reporters import Reporter

SVD_TOL = 0.01  # concept-erasure's default: no erasure below this singular value


class VINC(Reporter):
    """Variance, Invariance, Negative Covariance (elk's eigen reporter), one head.

    Fitted: ``coef_`` [d] (unit norm), LEACE ``mean_`` [d], ``erase_dir_`` (c) and
    ``erase_coef_`` (a / cᵀa) [d], ``eigenvalue_``, Platt ``platt_scale_``/``platt_bias_``.
    """

    kind = "vinc"

    def __init__(self, var_weight: float = 0.0, neg_cov_weight: float = 0.5,
                 use_centroids: bool = True):
        self.var_weight, self.neg_cov_weight = var_weight, neg_cov_weight
        self.use_centroids = use_centroids

    def _check_params(self):
        if not 0 <= self.neg_cov_weight <= 1:
            raise ValueError(f"neg_cov_weight must be in [0, 1], got {self.neg_cov_weight}")
        if not math.isfinite(self.var_weight):
            raise ValueError(f"var_weight must be a finite number, got {self.var_weight}")

    def fit_many(self, x_pos, x_neg, y=None) -> list["VINC"]:
        self._check_params()
        xp, xn, y = check_pairs(x_pos, x_neg, y, batched=True)
        h = torch.stack([xn, xp], -2).double()                       # [B, n, v, 2, d]
        B, n, v, k, d = h.shape
        states = h.reshape(B, -1, d)
        mean = states.mean(1)                                        # [B, d]
        # an orthonormal basis of the centred states' span: every matrix below lives there
        _, _, basis = torch.linalg.svd(states - mean[:, None], full_matrices=False)  # [B, r, d]
        hr = torch.einsum("bnvkd,brd->bnvkr", h - mean[:, None, None, None], basis)
        zr = hr.reshape(B, -1, basis.shape[1])                       # [B, N, r]
        N = zr.shape[1]
        label = torch.tensor([0.0, 1.0], dtype=torch.float64).repeat(n * v) - 0.5
        cross = torch.einsum("bnr,n->br", zr, label) / (N - 1)       # Cov(x, z)
        cov = zr.mT @ zr / (N - 1)
        a = (torch.linalg.pinv(cov, hermitian=True) @ cross[..., None])[..., 0]
        ca = (cross * a).sum(-1)                                     # cᵀΣ⁺c
        erase = math.sqrt(2) * ca.clamp_min(0).sqrt() > SVD_TOL      # one-hot z: singular value √2·‖Wc‖
        eye = torch.eye(basis.shape[1], dtype=torch.float64)
        proj = torch.where(erase[:, None, None], eye - cross[..., None] * a[:, None, :]
                           / ca.clamp_min(1e-30)[:, None, None], eye)

        spread = hr - hr.mean(2, keepdim=True)                       # across templates
        intra = torch.einsum("bnvkr,bnvks->brs", spread, spread) / (n * v * k)
        centroids = hr.mean(2) if self.use_centroids else hr.flatten(1, 2)  # [B, m, 2, r]
        cc = centroids - centroids.mean(1, keepdim=True)             # over examples, per completion
        inter = torch.einsum("bmkr,bmks->brs", cc, cc) / (cc.shape[1] * k)
        xcov = cc[:, :, 0].mT @ cc[:, :, 1] / cc.shape[1]
        xcov = (xcov + xcov.mT) / 2
        A = (self.var_weight * inter - (1 - self.neg_cov_weight) * intra
             - self.neg_cov_weight * xcov)
        A = proj @ A @ proj.mT
        values, vectors = torch.linalg.eigh((A + A.mT) / 2)
        out = []
        for i in range(B):
            r = clone(self)
            r.coef_ = (vectors[i, :, -1] @ basis[i]).float()
            r.eigenvalue_ = float(values[i, -1])
            r.mean_ = mean[i].float()
            r.erase_dir_ = (cross[i] @ basis[i]).float() if erase[i] else torch.zeros(d)
            r.erase_coef_ = (a[i] @ basis[i] / ca[i]).float() if erase[i] else torch.zeros(d)
            r._calibrate(xp[i], xn[i], y)
            out.append(r)
        return out

    def erase(self, x: torch.Tensor) -> torch.Tensor:
        """The fitted LEACE eraser on states ``[..., d]``."""
        return x - ((x - self.mean_) @ self.erase_coef_)[..., None] * self.erase_dir_

    def _scores(self, xp, xn):
        return self.erase(xp) @ self.coef_, self.erase(xn) @ self.coef_
