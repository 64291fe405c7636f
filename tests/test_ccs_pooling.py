"""Stacked templates, pooled datasets and the misleading prefix, against hand-built arrays."""

import numpy as np
import pytest

from nbtoolkit.ccs import centred, pool, stack_templates
from nbtoolkit.ccs.activations import ContrastStates
from nbtoolkit.data.contrast import MISLEADING_PREFIX, load_contrast


def states(dataset, template, n=6, layers=(0, 1), d=3, seed=0, rows=None):
    rng = np.random.default_rng(seed)
    shape = (n, len(layers), d)
    return ContrastStates(dataset, template, rng.normal(size=shape), rng.normal(size=shape),
                          np.arange(n) % 2, np.arange(n) if rows is None else rows,
                          rng.normal(size=n), rng.normal(size=n), list(layers))


def test_stack_templates_adds_a_template_axis():
    a, b = states("x", 0, seed=1), states("x", 2, seed=2)
    both = stack_templates([a, b])
    assert both.hidden_pos.shape == (6, 2, 2, 3) and both.template_id is None
    assert both.meta["templates"] == [0, 2]
    np.testing.assert_array_equal(both.at(1)[0][:, 1], b.at(1)[0])
    np.testing.assert_array_equal(both.logp_neg[:, 0], a.logp_neg)
    xp, _ = both.stack([1, 0])
    assert tuple(xp.shape) == (2, 6, 2, 3)
    np.testing.assert_array_equal(xp[0].numpy(), both.hidden_pos[:, 1])
    train, test = both.split(0.5, seed=0)
    assert len(train) + len(test) == 6 and train.hidden_pos.shape[1:] == (2, 2, 3)
    with pytest.raises(ValueError, match="same examples"):
        stack_templates([a, states("x", 1, rows=np.arange(6) + 1)])


def test_pool_centres_each_dataset_on_its_own_means():
    a, b = states("a", None, seed=3), states("b", None, seed=4)
    b.hidden_pos += 100.0  # another answer word: a large offset of its own
    both = pool([a, b])
    assert both.dataset == "a+b" and len(both) == 12
    np.testing.assert_allclose(both.hidden_pos[:6], a.hidden_pos - a.hidden_pos.mean(0))
    np.testing.assert_allclose(both.hidden_pos[6:], b.hidden_pos - b.hidden_pos.mean(0))
    test = states("b", None, seed=5)
    np.testing.assert_allclose(centred(test, by=b).hidden_neg, test.hidden_neg - b.hidden_neg.mean(0))
    with pytest.raises(ValueError, match="at least two"):
        pool([a])
    with pytest.raises(ValueError, match="same layers"):
        pool([a, states("c", None, layers=(0,))])


def test_misleading_prefix_goes_before_every_prompt():
    plain = load_contrast("capitals", [0, 1], n=6)
    misled = load_contrast("capitals", [0, 1], n=6, prefix=MISLEADING_PREFIX)
    for p, m in zip(plain, misled):
        assert m.prompts == [MISLEADING_PREFIX + q for q in p.prompts]
        assert m.template == MISLEADING_PREFIX + p.template
        assert m.fingerprint() != p.fingerprint()  # the activation cache keeps them apart
        np.testing.assert_array_equal(m.labels, p.labels)
    with pytest.raises(TypeError, match="prefix must be a string"):
        load_contrast("capitals", 0, n=6, prefix=3)
