"""The batched interchange sweep against one patched forward per (position, layer) cell."""

import numpy as np
import pytest
import torch

from nbtoolkit import Set, capture, patch
from nbtoolkit.interchange import interchange_sweep, prob_difference


@pytest.mark.parametrize("kind", ["hidden", "mlp", "attn"])
def test_sweep_equals_one_forward_per_cell(tiny, kind):
    base, source = "in Spain", "in Italy"
    metric = prob_difference(tiny, "R", "M")
    result = interchange_sweep(tiny, base, source, metric, kind=kind)
    site_of = {"hidden": "layer.{}", "mlp": "layer.{}.mlp", "attn": "layer.{}.attn"}[kind]
    n = len(tiny.tokens(base))
    expected = np.zeros((n, tiny.n_layers))
    for layer in range(tiny.n_layers):
        site = site_of.format(layer)
        with capture(tiny, site) as acts:
            tiny.model(**tiny.encode(source))
        for position in range(n):
            with patch(tiny, {site: Set(acts[site], at=[position])}):
                expected[position, layer] = metric(tiny.next_token_probs(base)).item()
    np.testing.assert_allclose(result.scores, expected, atol=1e-6)
    assert result.scores.std() > 0
    frame = result.to_frame()
    assert len(frame) == n * tiny.n_layers and set(frame.columns) >= {"position", "layer", "score"}


def test_sweep_refuses_prompts_of_different_length(tiny_llama):
    with pytest.raises(ValueError, match="same number of tokens"):
        interchange_sweep(tiny_llama, "ab", "abc", prob_difference(tiny_llama, "a", "b"))
    with pytest.raises(ValueError, match="kind must be one of"):
        interchange_sweep(tiny_llama, "ab", "ac", prob_difference(tiny_llama, "a", "b"), kind="mpl")
