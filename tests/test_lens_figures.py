"""The lens figures draw their results' numbers (checked on the figures' data)."""

import numpy as np
import pandas as pd
import pytest

from nbtoolkit import tiny_model
from nbtoolkit.lens import (direct_logit_attribution, induction_ablation, induction_scores,
                            logit_lens)
from nbtoolkit.viz.lens import (lens_grid, plot_ablation, plot_dla, plot_head_dla, plot_induction,
                                plot_lens, plot_lens_kl)


@pytest.fixture(scope="module")
def lm():
    return tiny_model("llama")


def test_lens_grid_and_plot(lm):
    result = logit_lens(lm, "Hello")
    values, tokens = lens_grid(result, value="target_prob")
    np.testing.assert_allclose(values, np.exp(result.target_logprobs.numpy()))
    assert tokens.shape == (4, 5) and tokens[0, 0] == result.top_tokens[0, 0, 0]
    fig = plot_lens(result, value="target_prob")
    np.testing.assert_allclose(fig.axes[0].images[0].get_array()[::-1], values)
    with pytest.raises(ValueError, match="value must be one of"):
        lens_grid(result, value="entropy")


def test_kl_dla_induction_and_ablation_figures(lm):
    frame = pd.DataFrame({"layer": [-1, 0, 1], "logit_lens": [3.0, 2.0, 0.0],
                          "tuned_lens": [1.0, np.nan, 0.0]})
    lines = plot_lens_kl(frame).axes[0].lines
    assert list(lines[0].get_ydata()) == [3.0, 2.0, 0.0] and list(lines[1].get_xdata()) == [-1, 1]
    dla = direct_logit_attribution(lm, "Hello there", "a", "b")
    bars = plot_dla(dla, top=4).axes[0].patches
    assert sorted(b.get_width() for b in bars) == sorted(dla.top(4).contribution)
    np.testing.assert_allclose(plot_head_dla(dla).axes[0].images[0].get_array(), dla.head_matrix())
    scores = induction_scores(lm, seq_len=5, batch=1)
    fig = plot_induction(scores)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), scores.induction)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), scores.previous)
    check = induction_ablation(lm, [(0, 1)], controls=2, seq_len=5, batch=1)
    heights = [b.get_height() for b in plot_ablation(check).axes[0].patches]
    np.testing.assert_allclose(heights, [check.increase, *check.control_increases])
