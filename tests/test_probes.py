"""Reporters (CCS, CRC, logistic, zero-shot), metrics and sweeps against hand-written references."""

import numpy as np
import pandas as pd
import pytest
import torch

from sklearn.exceptions import NotFittedError

from nbtoolkit import ccs, probes
from nbtoolkit.ccs.activations import ContrastStates
from nbtoolkit.probes import CCS, CRC, VINC, LogisticProbe, PairNormalizer, ZeroShot


def planted(n=300, d=24, seed=0, strength=2.0, noise=1.0):
    """Pairs whose truth lives on one direction u: x± = shared + answer offset ± (2y−1)·strength·u.

    The shared part has a large variance in other directions (same in both halves), and each
    half has its own constant offset (the answer token), which the per-class normalisation removes.
    """
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = rng.permutation(np.arange(n) % 2)
    sign = (2 * y - 1)[:, None]
    shared = rng.normal(size=(n, d)) * 5
    shared -= np.outer(shared @ u, u)  # the shared (same-in-both-halves) variance lies elsewhere
    x_pos = shared + 3.0 + sign * strength * u + noise * rng.normal(size=(n, d))
    x_neg = shared - 1.0 - sign * strength * u + noise * rng.normal(size=(n, d))
    return x_pos.astype(np.float32), x_neg.astype(np.float32), y, u


def split(x_pos, x_neg, y, k):
    return (x_pos[:k], x_neg[:k], y[:k]), (x_pos[k:], x_neg[k:], y[k:])


# ----------------------------------------------------------------- planted direction

@pytest.mark.parametrize("reporter", [CCS(n_tries=5, epochs=300), CRC(), VINC(), LogisticProbe()])
def test_planted_direction_is_found(reporter):
    xp, xn, y, u = planted()
    (a, b, ya), (c, d, yc) = split(xp, xn, y, 200)
    reporter.fit(a, b, ya)
    acc = reporter.score(c, d, yc)
    assert acc >= 0.95, f"{type(reporter).__name__} test accuracy {acc}"
    if not isinstance(reporter, LogisticProbe):
        cos = abs(float(reporter.coef_ @ torch.from_numpy(u).float()) / reporter.coef_.norm())
        assert cos > 0.8, f"direction cosine to the planted one: {cos}"


def test_ccs_without_labels_finds_it_up_to_sign():
    xp, xn, y, _ = planted(seed=1)
    r = CCS(n_tries=4, epochs=300).fit(xp[:200], xn[:200])
    assert r.sign_resolved_ is False and r.flipped_ is False
    acc = r.score(xp[200:], xn[200:], y[200:])
    assert max(acc, 1 - acc) >= 0.95
    assert probes.optimistic_accuracy(r.predict_proba(xp[200:], xn[200:]), y[200:]) == max(acc, 1 - acc)


def test_sign_resolved_on_training_labels():
    xp, xn, y, _ = planted(seed=2)
    r1 = CCS(n_tries=3, epochs=200).fit(xp[:200], xn[:200], y[:200])
    r0 = CCS(n_tries=3, epochs=200).fit(xp[:200], xn[:200], 1 - y[:200])
    assert r1.flipped_ != r0.flipped_  # same seed, same unsupervised optimum, opposite signs
    assert r1.train_acc_ >= 0.95 and r0.train_acc_ >= 0.95
    np.testing.assert_allclose(r1.predict_proba(xp, xn), 1 - r0.predict_proba(xp, xn), atol=1e-4)
    for kind in (CRC, VINC):
        c1 = kind().fit(xp[:200], xn[:200], y[:200])
        c0 = kind().fit(xp[:200], xn[:200], 1 - y[:200])
        torch.testing.assert_close(c1.coef_, c0.coef_)  # the labels only fit the Platt scale
        assert c1.platt_scale_ == pytest.approx(-c0.platt_scale_, rel=1e-3)
        assert c1.flipped_ != c0.flipped_


# ----------------------------------------------------------------- normalisation & formulas

def test_normalizer_uses_training_statistics_only():
    xp, xn, y, _ = planted(d=8)
    a, b = torch.from_numpy(xp[:100]), torch.from_numpy(xn[:100])
    norm = PairNormalizer("norm").fit(a, b)
    mp, mn = xp[:100].mean(0), xn[:100].mean(0)
    centred = np.concatenate([xp[:100] - mp, xn[:100] - mn])
    s = np.linalg.norm(centred, axis=1).mean() / np.sqrt(8)
    tp, tn = norm.transform(torch.from_numpy(xp[100:]), torch.from_numpy(xn[100:]))
    np.testing.assert_allclose(tp.numpy(), (xp[100:] - mp) / s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tn.numpy(), (xn[100:] - mn) / s, rtol=1e-5, atol=1e-5)
    # the test set's own means are not subtracted: shifting the test set moves the output
    shifted, _ = norm.transform(torch.from_numpy(xp[100:] + 10), torch.from_numpy(xn[100:]))
    assert not np.allclose(shifted.numpy(), tp.numpy())
    std = PairNormalizer("std").fit(a, b)
    np.testing.assert_allclose(std.scale_.numpy().ravel(), centred.std(0, ddof=1), rtol=1e-4)
    none = PairNormalizer(None).fit(a, b)
    np.testing.assert_allclose(none.transform(a, b)[0].numpy(), xp[:100] - mp, atol=1e-5)


def test_ccs_predict_proba_matches_hand_formula_with_training_means():
    xp, xn, y, _ = planted(d=8, seed=3)
    r = CCS(n_tries=2, epochs=50, scale=None).fit(xp[:150], xn[:150], y[:150])
    mp, mn = xp[:150].mean(0), xn[:150].mean(0)
    w, b = r.coef_.numpy(), r.intercept_
    sig = lambda z: 1 / (1 + np.exp(-z))
    zp, zn = (xp[150:] - mp) @ w + b, (xn[150:] - mn) @ w + b
    pp, pn = sig(zp), sig(zn)
    np.testing.assert_allclose(np.stack(r.probabilities(xp[150:], xn[150:])), [pp, pn], atol=1e-5)
    a, c = r.platt_scale_, r.platt_bias_
    np.testing.assert_allclose(r.credences(xp[150:], xn[150:]), np.stack([a * zn + c, a * zp + c], 1),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r.predict_proba(xp[150:], xn[150:]), sig(a * (zp - zn)), atol=1e-5)
    # the decision is Burns' ½(p⁺ + 1 − p⁻) > ½ (the Platt scale is positive here)
    assert a > 0
    np.testing.assert_array_equal(r.predict(xp[150:], xn[150:]), 0.5 * (pp + 1 - pn) > 0.5)
    loss = np.mean((pp - (1 - pn)) ** 2 + np.minimum(pp, pn) ** 2)
    assert r.loss(xp[150:], xn[150:]) == pytest.approx(loss, rel=1e-4)


def test_platt_scale_and_bias_minimise_the_state_bce():
    from scipy.optimize import minimize

    xp, xn, y, _ = planted(n=120, d=6, seed=14, strength=0.6, noise=1.5)
    r = CRC(scale=None).fit(xp, xn, y)
    v = r.coef_.numpy() / r.proj_std_
    sp, sn = (xp - xp.mean(0)) @ v, (xn - xn.mean(0)) @ v
    s, t = np.concatenate([sp, sn]), np.concatenate([y, 1 - y])

    def bce(ab):
        z = ab[0] * s + ab[1]
        return np.mean(np.logaddexp(0, z) - t * z)

    hand = minimize(bce, [1.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
    assert r.platt_scale_ == pytest.approx(hand[0], rel=1e-3)
    assert r.platt_bias_ == pytest.approx(hand[1], abs=1e-3)
    unlabelled = CRC(scale=None).fit(xp, xn)
    assert (unlabelled.platt_scale_, unlabelled.platt_bias_, unlabelled.sign_resolved_) == (1.0, 0.0, False)


def test_ccs_loss_by_hand():
    p = torch.tensor([0.9, 0.2, 0.5])
    q = torch.tensor([0.1, 0.6, 0.5])
    hand = np.mean([(0.9 - 0.9) ** 2 + 0.1 ** 2, (0.2 - 0.4) ** 2 + 0.2 ** 2, 0 + 0.25])
    assert float(probes.ccs_loss(p, q)) == pytest.approx(hand)


def test_ccs_keeps_the_lowest_loss_try_and_is_seeded():
    xp, xn, y, _ = planted(d=16, seed=4)
    r = CCS(n_tries=6, epochs=100, seed=7).fit(xp, xn)
    assert r.loss_ == pytest.approx(min(r.try_losses_))
    assert len(r.try_losses_) == 6
    again = CCS(n_tries=6, epochs=100, seed=7).fit(xp, xn)
    torch.testing.assert_close(r.coef_, again.coef_)


def test_fit_many_equals_separate_fits():
    a = planted(d=12, seed=5)
    b = planted(d=12, seed=6)
    xp = np.stack([a[0], b[0]])
    xn = np.stack([a[1], b[1]])
    y = a[2]
    many = CCS(n_tries=3, epochs=80).fit_many(xp, xn, y)
    for i in range(2):
        one = CCS(n_tries=3, epochs=80).fit(xp[i], xn[i], y)
        torch.testing.assert_close(many[i].coef_, one.coef_, atol=1e-5, rtol=1e-4)
    crc_many = CRC().fit_many(xp, xn, y)
    torch.testing.assert_close(crc_many[1].coef_, CRC().fit(xp[1], xn[1], y).coef_)


def test_crc_is_top_principal_component_of_normalised_differences():
    xp, xn, y, _ = planted(d=10, seed=8)
    r = CRC(scale=None).fit(xp, xn, y)
    c = (xp - xp.mean(0)) - (xn - xn.mean(0))
    vals, vecs = np.linalg.eigh(np.cov(c.T))
    top = vecs[:, -1]
    assert abs(float(np.dot(top, r.coef_.numpy()))) == pytest.approx(1.0, abs=1e-4)
    s = c @ r.coef_.numpy()
    np.testing.assert_allclose(r.predict_proba(xp, xn),
                               1 / (1 + np.exp(-r.platt_scale_ * s / s.std(ddof=1))), atol=1e-5)


def test_logistic_probe_matches_newton_reference():
    rng = np.random.default_rng(9)
    n, d, l2 = 80, 5, 0.1
    xp = rng.normal(size=(n, d)).astype(np.float32)
    xn = rng.normal(size=(n, d)).astype(np.float32)
    y = (xp[:, 0] - xn[:, 0] + rng.normal(size=n) > 0).astype(int)
    r = LogisticProbe(l2=l2).fit(xp, xn, y)
    f = (xp - xn).astype(np.float64)
    z = (f - f.mean(0)) / f.std(0, ddof=1)
    X = np.hstack([z, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.diag([l2] * d + [0.0])
    for _ in range(50):  # Newton on mean BCE + l2/2 |w|^2 (bias unpenalised)
        p = 1 / (1 + np.exp(-X @ w))
        grad = X.T @ (p - y) / n + reg @ w
        hess = X.T @ (X * (p * (1 - p))[:, None]) / n + reg
        w -= np.linalg.solve(hess, grad)
    np.testing.assert_allclose(r.coef_.numpy(), w[:d], atol=1e-4)
    assert r.intercept_ == pytest.approx(w[d], abs=1e-4)


def test_zero_shot_and_calibration():
    lp = np.array([-1.0, -2.0, -0.5, -3.0, -1.0, -0.2])
    ln = np.array([-2.0, -1.0, -0.4, -1.0, -3.0, -0.3])
    y = np.array([1, 0, 1, 0, 1, 0])
    raw = ZeroShot().fit(lp, ln)
    np.testing.assert_array_equal(raw.predict(lp, ln), (lp - ln > 0).astype(int))
    cal = ZeroShot(calibrate=True).fit(lp, ln)
    assert cal.threshold_ == pytest.approx(np.median(lp - ln))
    assert cal.predict(lp, ln).mean() == 0.5
    assert raw.kind == "zero_shot" and cal.kind == "zero_shot_cal"
    assert raw.score(lp, ln, y) == pytest.approx(np.mean((lp - ln > 0) == y))


# ----------------------------------------------------------------- metrics

def test_auroc_against_pair_counting():
    rng = np.random.default_rng(10)
    s = rng.integers(0, 5, size=40).astype(float)  # many ties
    y = rng.integers(0, 2, size=40)
    pos, neg = s[y == 1], s[y == 0]
    hand = np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg])
    assert probes.auroc(s, y) == pytest.approx(hand)
    assert np.isnan(probes.auroc(s, np.ones(40)))


def test_bootstrap_matches_a_plain_loop():
    rng = np.random.default_rng(11)
    p = rng.random(30)
    y = (p + rng.normal(scale=0.3, size=30) > 0.5).astype(int)
    ci = probes.bootstrap_ci(p, y, n_boot=250, seed=3)
    draw = np.random.default_rng(3).integers(0, 30, size=(250, 30))
    accs = [probes.accuracy(p[i], y[i]) for i in draw]
    aucs = [probes.auroc(p[i], y[i]) for i in draw]
    assert ci["acc_lower"] == pytest.approx(np.quantile(accs, 0.025))
    assert ci["acc_upper"] == pytest.approx(np.quantile(accs, 0.975))
    assert ci["auroc_lower"] == pytest.approx(np.nanquantile(aucs, 0.025))
    assert ci["auroc_upper"] == pytest.approx(np.nanquantile(aucs, 0.975))


def test_evaluate_reports_optimistic_accuracy_separately():
    p = np.array([0.9, 0.8, 0.3, 0.2])
    y = np.array([0, 0, 1, 1])  # perfectly wrong
    row = probes.evaluate(p, y, n_boot=50)
    assert row["acc"] == 0.0 and row["acc_optimistic"] == 1.0 and row["auroc"] == 0.0


# ----------------------------------------------------------------- bad input

def test_pairs_of_different_lengths_raise():
    xp, xn, y, _ = planted(n=20, d=4)
    with pytest.raises(ValueError, match="differ in shape"):
        CCS(epochs=5).fit(xp, xn[:19])
    with pytest.raises(ValueError, match="y must be"):
        CRC().fit(xp, xn, y[:10])


def test_nan_states_raise():
    xp, xn, y, _ = planted(n=20, d=4)
    xn[3, 1] = np.nan
    for r in (CCS(epochs=5), CRC(), LogisticProbe()):
        with pytest.raises(ValueError, match="NaN"):
            r.fit(xp, xn, y)


def test_single_class_logistic_raises():
    xp, xn, _, _ = planted(n=20, d=4)
    with pytest.raises(ValueError, match="both classes"):
        LogisticProbe().fit(xp, xn, np.ones(20, int))
    with pytest.raises(ValueError, match="labels y are required"):
        LogisticProbe().fit(xp, xn, None)


def test_other_bad_input():
    xp, xn, y, _ = planted(n=20, d=4)
    with pytest.raises(TypeError, match="floats"):
        CRC().fit(xp.astype(int), xn.astype(int))
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        CRC().fit(xp[0], xn[0])
    with pytest.raises(ValueError, match="0/1"):
        CRC().fit(xp, xn, y * 2)
    with pytest.raises(NotFittedError, match="CRC is not fitted"):
        CRC().predict_proba(xp, xn)
    with pytest.raises(ValueError, match="unknown reporter"):
        probes.make_reporter("svm")
    with pytest.raises(ValueError, match="scale"):
        PairNormalizer("minmax")


# ----------------------------------------------------------------- saving, sweeps, transfer

def test_save_load_round_trip(tmp_path):
    xp, xn, y, _ = planted(d=8)
    for r in (CCS(n_tries=2, epochs=30).fit(xp, xn, y), CRC().fit(xp, xn, y),
              LogisticProbe().fit(xp, xn, y), VINC().fit(xp, xn, y)):
        probes.save_reporter(r, tmp_path / r.kind)
        back = probes.load_reporter(tmp_path / r.kind)
        assert type(back) is type(r)
        np.testing.assert_array_equal(back.predict_proba(xp, xn), r.predict_proba(xp, xn))


def states_from(xp, xn, y, layers, name="toy"):
    n = len(y)
    return ContrastStates(name, 0, xp, xn, np.asarray(y), np.arange(n), np.zeros(n, np.float32),
                          np.zeros(n, np.float32), layers)


def test_every_layer_table():
    xp, xn, y, _ = planted(n=200, d=12, seed=12)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=xp.shape).astype(np.float32)
    hp = np.stack([noise, xp], 1)  # layer 0: no signal; layer 1: planted
    hn = np.stack([rng.normal(size=xn.shape).astype(np.float32), xn], 1)
    st = states_from(hp, hn, y, [0, 1])
    train, test = st.split(0.5, seed=0)
    assert len(train) == 100 and train.labels.mean() == 0.5
    assert not set(train.row_ids) & set(test.row_ids)
    options = {"ccs": dict(n_tries=3, epochs=200), "crc": {}, "vinc": {}, "lr": {}}
    table = pd.concat([ccs.eval_layers(ccs.fit_layers(kind, train, **kwargs), test, n_boot=100,
                                          n_train=len(train)) for kind, kwargs in options.items()],
                      ignore_index=True)
    assert list(table.columns) == ccs.EVAL_COLUMNS
    assert len(table) == 8 and set(table.ensembling) == {"partial"}
    good = table[table.layer == 1]
    assert (good.acc >= 0.95).all(), good
    assert (good.acc_lower <= good.acc).all() and (good.acc <= good.acc_upper).all()
    bad = table[(table.layer == 0) & (table.reporter != "lr")]
    assert (bad.acc < 0.75).all(), bad
    zs = ccs.zero_shot_eval(train, test, n_boot=0)
    assert list(zs.reporter) == ["zero_shot", "zero_shot_cal"]


def test_transfer_matrix_refits_only_unlabelled_means():
    a = planted(n=160, d=10, seed=13)
    # dataset B: same truth direction, different answer offsets
    b = (a[0] + 4.0, a[1] - 2.0, a[2], a[3])
    splits = {}
    for name, (xp, xn, y, _) in {"A": a, "B": b}.items():
        st = states_from(xp[:, None], xn[:, None], y, [5], name=name)
        splits[name] = st.split(0.5)
    table = ccs.transfer_matrix(splits, layer=5, kind="crc", metric="acc")
    assert table.shape == (2, 2)
    assert table.loc["A", "B"] >= 0.95 and table.loc["B", "A"] >= 0.95


@pytest.mark.parametrize("make", [lambda: CCS(n_tries=2, epochs=30, seed=4), lambda: CRC(scale="std"),
                                  lambda: VINC(neg_cov_weight=0.7),
                                  lambda: LogisticProbe(l2=0.1), lambda: ZeroShot(calibrate=True)])
def test_reporters_are_scikit_learn_estimators(make):
    from sklearn.base import clone

    reporter = make()
    params = reporter.get_params()
    twin = clone(reporter)
    assert type(twin) is type(reporter) and twin.get_params() == params and twin is not reporter
    assert reporter.set_params(**params) is reporter
    if not isinstance(reporter, ZeroShot):
        xp, xn, y, _ = planted(n=60, d=6, seed=2)
        fitted = reporter.fit(xp, xn, y)
        assert fitted is reporter and hasattr(reporter, "coef_")
        assert not hasattr(clone(reporter), "coef_")  # clone keeps parameters, not the fit


def test_parameters_are_checked_when_fitting_not_when_built():
    xp, xn, y, _ = planted(n=40, d=4, seed=3)
    with pytest.raises(ValueError, match="neg_cov_weight must be in"):
        VINC(neg_cov_weight=2.0).fit(xp, xn)
    bad_ccs, bad_lr = CCS(n_tries=0), LogisticProbe(l2=-1.0)  # scikit-learn: __init__ only stores
    with pytest.raises(ValueError, match="n_tries and epochs must be >= 1"):
        bad_ccs.fit(xp, xn)
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        bad_lr.fit(xp, xn, y)
