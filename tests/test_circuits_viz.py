"""Circuit figures and the head explorer, checked on their data: the heatmap holds each head's
effect, the scatter each site's (exact, estimate), a chosen head's pattern is the one shown."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from nbtoolkit import tiny_model
from nbtoolkit.circuits import HeadPatchingResult
from nbtoolkit.lens import attention_patterns
from nbtoolkit.viz.circuits import (AttributionExplorer, HeadExplorer, atp_scatter, head_grid,
                                    pattern_figure, pattern_source)


def result(seed=0, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    per_pair = rng.normal(size=(2, *shape))
    return HeadPatchingResult(per_pair, np.array([0.5, 1.5]), np.array([-1.0, -1.0]),
                              ("layer", "head"), method="head patching (out)")


def test_head_grid_shows_each_effect():
    r = result()
    r.per_pair[:, 2, 3] = np.nan  # a head without a path
    fig = head_grid(r)
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown.filled(np.nan), r.scores - 1.0)
    assert shown.mask[2, 3]
    plt.close(fig)


def test_atp_scatter_plots_exact_against_estimate():
    exact, estimate = result(0), result(1)
    fig = atp_scatter(estimate, exact, annotate=2)
    points = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], exact.effects().ravel())
    np.testing.assert_allclose(points[:, 1], estimate.effects().ravel())
    assert len(fig.axes[0].texts) == 2
    with pytest.raises(ValueError, match="estimate has 6 sites but exact has 12"):
        atp_scatter(result(1, (3, 2)), exact)
    plt.close(fig)


def test_explorer_opens_the_chosen_heads_pattern():
    r = result()
    asked = []

    def patterns(layer, head):
        asked.append((layer, head))
        return np.full((3, 3), 0.1 * (layer + head)), ["a", "b", "c"]

    explorer = HeadExplorer(r, patterns)
    effects = r.scores - r.base_score
    lowest = np.unravel_index(np.argmin(effects), effects.shape)
    highest = np.unravel_index(np.argmax(effects), effects.shape)
    assert explorer.buttons[lowest].style.button_color != explorer.buttons[highest].style.button_color
    explorer.buttons[2, 1].click()
    assert asked == [(2, 1)] and explorer.selected == (2, 1)
    np.testing.assert_allclose(explorer.figure.axes[0].images[0].get_array(), np.full((3, 3), 0.3))
    assert "2.1" in explorer.caption.value
    with pytest.raises(ValueError, match="axes \\('layer', 'head', 'position'\\)"):
        HeadExplorer(HeadPatchingResult(np.zeros((1, 2, 2, 3)), np.zeros(1), np.zeros(1),
                                        ("layer", "head", "position")), patterns)


def test_pattern_source_reads_the_models_attention():
    lm = tiny_model("gpt2")
    source = pattern_source(lm, "Hello there")
    pattern, tokens = source(1, 2)
    np.testing.assert_allclose(pattern, attention_patterns(lm, ["Hello there"], [1])[1][0, 2])
    assert len(tokens) == pattern.shape[0] and np.allclose(pattern.sum(-1), 1, atol=1e-5)
    assert np.allclose(np.triu(pattern, 1), 0)  # causal
    plt.close(pattern_figure(pattern, tokens))
    assert lm.model.config._attn_implementation != "eager"  # put back


def test_attribution_explorer_shows_the_chosen_kinds_scatter_and_agreement():
    compared = {"out": (result(1), result(0)), "q": (result(3, (2, 4)), result(2, (2, 4)))}
    explorer = AttributionExplorer(compared, k=3)
    assert explorer.kind == "out"
    explorer.menu.value = "q"
    assert explorer.kind == "q"
    points = explorer.figure.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 1], compared["q"][0].effects().ravel())
    assert explorer.caption.value.startswith("q: 8 sites, Pearson")
    with pytest.raises(ValueError, match="compared is empty"):
        AttributionExplorer({})
    plt.close("all")
