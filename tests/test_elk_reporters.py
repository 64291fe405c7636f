"""elk's additions against hand-written references: VINC's matrix and eraser, reporters on several
templates, calibrated accuracy, the monotonic-sweep ECE, ensembling modes, the cluster bootstrap."""

import numpy as np
import pytest
import torch

from nbtoolkit import probes
from nbtoolkit.probes import CCS, CRC, VINC, LogisticProbe


def planted_templates(n=240, v=4, d=20, seed=0, strength=2.0):
    """``[n, v, d]`` pairs: truth on u, and away from u the content of each example, a
    per-template offset of each completion (its answer token) and per-template noise. (VINC's
    premise: truth reads the same under every template; an offset along u would break it.)"""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = rng.permutation(np.arange(n) % 2)
    sign = (2 * y - 1)[:, None, None]
    content = rng.normal(size=(n, 1, d)) * 4
    content -= (content @ u)[..., None] * u
    offsets = rng.normal(size=(2, v, d)) * 3
    offsets -= (offsets @ u)[..., None] * u
    noise = lambda: rng.normal(size=(n, v, d))
    x_pos = content + offsets[1] + sign * strength * u + noise()
    x_neg = content + offsets[0] - sign * strength * u + noise()
    return x_pos.astype(np.float32), x_neg.astype(np.float32), y, u


def naive_vinc(x_pos, x_neg, var_weight=0.0, neg_cov_weight=0.5):
    """elk's EigenFitter (one update) + a pseudo-inverse LEACE, written out in numpy in d dims."""
    h = np.stack([x_neg, x_pos], 2).astype(np.float64)  # [n, v, 2, d]
    n, v, k, d = h.shape
    intra = np.zeros((d, d))
    for i in range(n):
        for j in range(k):
            x = h[i, :, j] - h[i, :, j].mean(0)
            intra += x.T @ x / v
    intra /= n * k
    cent = h.mean(1)  # [n, 2, d]
    cc = [cent[:, j] - cent[:, j].mean(0) for j in range(k)]
    inter = sum(c.T @ c / n for c in cc) / k
    xcov = (cc[0].T @ cc[1] + cc[1].T @ cc[0]) / (2 * n)
    A = var_weight * inter - (1 - neg_cov_weight) * intra - neg_cov_weight * xcov
    states = h.reshape(-1, d)
    z = np.tile([0.0, 1.0], n * v)
    xc = states - states.mean(0)
    c = xc.T @ (z - z.mean()) / (len(z) - 1)
    a = np.linalg.pinv(xc.T @ xc / (len(z) - 1)) @ c
    P = np.eye(d) - np.outer(c, a) / (c @ a)
    vals, vecs = np.linalg.eigh(P @ A @ P.T)
    return vecs[:, -1], P, states.mean(0), c, a


@pytest.mark.parametrize("shape", [(30, 3, 6), (5, 2, 24)])  # more states than dims, and fewer
def test_vinc_equals_the_naive_eigenproblem(shape):
    n, v, d = shape
    xp, xn, y, _ = planted_templates(n=n, v=v, d=d, seed=1)
    r = VINC().fit(xp, xn, y)
    w, P, mean, c, a = naive_vinc(xp, xn)
    assert abs(float(r.coef_.double() @ torch.from_numpy(w))) == pytest.approx(1.0, abs=1e-4)
    # the eraser: x - c aᵀ(x - μ)/(cᵀa); it leaves no pseudo-label mean difference
    x = torch.from_numpy(xp[:3, 0])
    hand = xp[:3, 0] - np.outer((xp[:3, 0] - mean) @ a / (c @ a), c)
    np.testing.assert_allclose(r.erase(x).numpy(), hand, rtol=1e-3, atol=1e-3)
    gap = r.erase(torch.from_numpy(xp)).mean((0, 1)) - r.erase(torch.from_numpy(xn)).mean((0, 1))
    assert float(gap.norm()) < 1e-3 * float(torch.from_numpy(xp - xn).mean((0, 1)).norm())


def test_vinc_weights_change_the_problem():
    xp, xn, y, _ = planted_templates(n=30, v=3, d=6, seed=2)
    r = VINC(var_weight=1.0, neg_cov_weight=0.2).fit(xp, xn, y)
    w = naive_vinc(xp, xn, var_weight=1.0, neg_cov_weight=0.2)[0]
    assert abs(float(r.coef_.double() @ torch.from_numpy(w))) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("reporter", [VINC(), CCS(n_tries=3, epochs=300), CRC(), LogisticProbe()])
def test_every_reporter_reads_planted_truth_across_templates(reporter):
    xp, xn, y, u = planted_templates()
    reporter.fit(xp[:160], xn[:160], y[:160])
    p = reporter.predict_proba(xp[160:], xn[160:])
    assert p.shape == (80, 4)
    assert reporter.score(xp[160:], xn[160:], y[160:]) >= 0.95
    for mode in probes.ENSEMBLING:
        row = reporter.evaluate(xp[160:], xn[160:], y[160:], ensembling=mode, n_boot=50)
        assert row["acc"] >= 0.95 and row["auroc"] >= 0.95, (mode, row)
    if not isinstance(reporter, LogisticProbe):
        cos = abs(float(reporter.coef_ @ torch.from_numpy(u).float()) / reporter.coef_.norm())
        assert cos > 0.8


def test_per_template_normalisation_equals_separate_normalisers():
    xp, xn, _, _ = planted_templates(n=40, v=3, d=5)
    a, b = torch.from_numpy(xp), torch.from_numpy(xn)
    norm = probes.PairNormalizer("norm").fit(a, b)
    ta, tb = norm.transform(a, b)
    for t in range(3):
        one = probes.PairNormalizer("norm").fit(a[:, t], b[:, t])
        sa, sb = one.transform(a[:, t], b[:, t])
        torch.testing.assert_close(ta[:, t], sa)
        torch.testing.assert_close(tb[:, t], sb)


def test_templates_must_match_at_test_time():
    xp, xn, y, _ = planted_templates(n=40, v=3, d=5)
    r = CRC().fit(xp, xn, y)
    with pytest.raises(ValueError, match="templates, d"):
        r.predict_proba(xp[:, :2], xn[:, :2])


# ----------------------------------------------------------------- metrics by hand

def test_calibrated_accuracy_by_hand():
    p = np.array([0.1, 0.4, 0.35, 0.8])
    y = np.array([0, 1, 0, 1])
    assert probes.calibration_threshold(p, y) == pytest.approx(0.375)  # the median of p
    assert probes.calibrated_accuracy(p, y) == 1.0 and probes.accuracy(p, y) == 0.75
    y3 = np.array([1, 1, 0, 1])  # prior 3/4: elk takes the 0.75-quantile of p
    assert probes.calibration_threshold(p, y3) == pytest.approx(np.quantile(p, 0.75))


def test_monotonic_sweep_calibration_error_by_hand():
    p = np.array([0.05, 0.1, 0.2, 0.45, 0.5, 0.6, 0.9, 0.95])
    y = np.array([0, 0, 1, 0, 1, 1, 0, 1])
    # 2 bins: frequencies 1/4 < 3/4; 3 bins (3, 3, 2): 1/3, 2/3, 1/2 is not monotone -> 2 bins
    hand = np.sqrt(0.5 * (0.25 - 0.2) ** 2 + 0.5 * (0.75 - 0.7375) ** 2)
    assert probes.calibration_error(p, y) == pytest.approx(hand)
    # separable labels: 2 bins would hold frequencies 0 and 1, so one bin: |mean y - mean p|
    q = np.array([0.1, 0.2, 0.7, 0.9])
    assert probes.calibration_error(q, np.array([0, 0, 1, 1])) == pytest.approx(abs(0.5 - 0.475))
    with pytest.raises(ValueError, match="at least 2"):
        probes.calibration_error([0.3], [1])


def test_ensembling_modes_by_hand():
    # 3 examples x 2 templates; credences [..., 0] for x⁻, [..., 1] for x⁺
    c = np.array([[[0.0, 2.0], [1.0, 0.5]],
                  [[0.2, -1.0], [3.0, 1.0]],
                  [[-1.0, 0.1], [0.0, -0.4]]])
    y = np.array([1, 0, 1])
    sig = lambda z: 1 / (1 + np.exp(-z))
    partial = probes.evaluate_credences(c, y, "partial", n_boot=0)
    margins = (c[..., 1] - c[..., 0]).ravel()              # 2, -0.5, -1.2, -2, 1.1, -0.4
    yv = np.repeat(y, 2)
    assert partial["acc"] == pytest.approx(np.mean((margins > 0) == yv))  # 4 of 6
    assert partial["auroc"] == pytest.approx(probes.auroc(margins, yv))
    assert partial["ece"] == pytest.approx(probes.calibration_error(sig(margins), yv))
    full = probes.evaluate_credences(c, y, "full", n_boot=0)
    mean = c.mean(1)
    assert full["acc"] == pytest.approx(np.mean(((mean[:, 1] - mean[:, 0]) > 0) == y))
    assert full["n"] == 3
    none = probes.evaluate_credences(c, y, "none", n_boot=0)
    assert none["acc"] == pytest.approx(np.mean((c[..., 1].ravel() > 0) == yv))
    states = np.stack([c[..., 1].ravel(), c[..., 0].ravel()], 1).ravel()
    truth = np.stack([yv, 1 - yv], 1).ravel()
    assert none["auroc"] == pytest.approx(probes.auroc(states, truth))
    with pytest.raises(ValueError, match="ensembling must be one of"):
        probes.evaluate_credences(c, y, "mean")
    with pytest.raises(ValueError, match=r"\[n, v, 2\]"):
        probes.evaluate_credences(c[..., 0], y)


def test_cluster_bootstrap_matches_a_plain_loop():
    rng = np.random.default_rng(5)
    n, v = 12, 3
    p = rng.random(n * v)
    y = np.repeat(rng.permutation(np.arange(n) % 2), v)
    clusters = np.repeat(np.arange(n), v)
    ci = probes.bootstrap_ci(p, y, clusters=clusters, cal_thresh=0.4, n_boot=200, seed=2)
    draw = np.random.default_rng(2).integers(0, n, size=(200, n))
    accs, cals = [], []
    for pick in draw:
        items = np.concatenate([np.flatnonzero(clusters == k) for k in pick])
        accs.append(probes.accuracy(p[items], y[items]))
        cals.append(np.mean((p[items] > 0.4) == y[items]))
    assert ci["acc_lower"] == pytest.approx(np.quantile(accs, 0.025))
    assert ci["acc_upper"] == pytest.approx(np.quantile(accs, 0.975))
    assert ci["cal_acc_upper"] == pytest.approx(np.quantile(cals, 0.975))
