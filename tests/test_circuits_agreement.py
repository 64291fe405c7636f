"""agreement / false_negative_rate against hand-computed answers on planted effects."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from nbtoolkit.circuits.agreement import agreement, false_negative_rate


def test_false_negatives_count_the_exact_top_k_the_estimate_ranks_lower():
    exact = np.array([[-5.0, 0.1, 4.0], [0.2, -3.0, 0.0]])  # top 3 by |effect|: sites 0, 2, 4
    estimate = np.array([[-4.0, 2.0, 0.01], [0.3, -2.5, 0.0]])  # its top 3: 0, 1, 4 (misses 2)
    assert false_negative_rate(estimate, exact, 3) == pytest.approx(1 / 3)
    assert false_negative_rate(exact, exact, 3) == 0.0
    assert false_negative_rate(-exact, exact, 3) == 0.0  # ranked by |effect|: the sign is no matter


def test_agreement_is_pearson_and_spearman_over_the_sites_both_have():
    rng = np.random.default_rng(0)
    exact = rng.normal(size=(5, 4))
    estimate = exact + rng.normal(scale=0.5, size=exact.shape)
    exact[0, 0] = np.nan  # a site the exact sweep skipped
    found = agreement(estimate, exact, k=3)
    kept = np.isfinite(exact.ravel())
    assert found["n_sites"] == 19
    assert found["pearson"] == pytest.approx(pearsonr(estimate.ravel()[kept], exact.ravel()[kept])[0])
    assert found["spearman"] == pytest.approx(spearmanr(estimate.ravel()[kept], exact.ravel()[kept])[0])


def test_no_spread_gives_no_correlation_and_k_above_the_sites_is_capped():
    found = agreement(np.zeros(4), np.arange(4.0), k=10)
    assert np.isnan(found["pearson"]) and np.isnan(found["spearman"])
    assert found["false_negatives"] == 0.0  # every site is in both top-4s


@pytest.mark.parametrize("k", [0, -1, 2.5, True, None])
def test_a_bad_k_is_named(k):
    with pytest.raises(ValueError, match=f"k must be a positive int, got {k!r}"):
        false_negative_rate(np.ones(3), np.ones(3), k)


def test_sites_that_do_not_match_are_named():
    with pytest.raises(ValueError, match="estimate has 6 sites but exact has 4"):
        agreement(np.ones((2, 3)), np.ones((2, 2)))
