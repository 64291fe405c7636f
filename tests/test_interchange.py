"""The batched interchange sweep against one patched forward per (pair, layer, position) cell."""

import numpy as np
import pytest
import torch

from nbtoolkit import Set, capture, patch
from nbtoolkit.interchange import interchange_sweep, prob_difference


@pytest.mark.parametrize("kind", ["hidden", "mlp", "attn"])
def test_sweep_equals_one_forward_per_cell(tiny, kind):
    base, source = ["in Spain", "to Paris"], ["in Italy", "to Tokyo"]
    metric = prob_difference(tiny, "R", "M")
    result = interchange_sweep(tiny, base, source, metric, kind=kind)
    site_of = {"hidden": "layer.{}", "mlp": "layer.{}.mlp", "attn": "layer.{}.attn"}[kind]
    n = len(tiny.tokens(base[0]))
    expected = np.zeros((2, tiny.n_layers, n))
    for pair, (b, s) in enumerate(zip(base, source)):
        for layer in range(tiny.n_layers):
            site = site_of.format(layer)
            with capture(tiny, site) as acts:
                tiny.model(**tiny.encode(s))
            for position in range(n):
                with patch(tiny, {site: Set(acts[site], at=[position])}):
                    probs = tiny.next_token_probs(b)
                expected[pair, layer, position] = (probs[0, tiny.token_id("R")]
                                                   - probs[0, tiny.token_id("M")]).item()
    np.testing.assert_allclose(result.per_pair, expected, atol=1e-6)
    np.testing.assert_allclose(result.scores, expected.mean(0), atol=1e-6)
    np.testing.assert_allclose(result.std, expected.std(0), atol=1e-6)
    assert result.scores.std() > 0 and result.tokens == tiny.tokens(base[0])
    frame = result.to_frame()
    assert len(frame) == n * tiny.n_layers and set(frame.columns) >= {"position", "layer", "score"}
    layer, position, best = result.best()
    assert best == result.scores.max() == result.scores[layer, position]


def test_token_ids_and_a_layer_subset(tiny_llama):
    metric = prob_difference(tiny_llama, "a", "b")
    ids = [tiny_llama.tokenizer(p)["input_ids"] for p in ("abc", "abd")]
    by_ids = interchange_sweep(tiny_llama, [ids[0]], [ids[1]], metric, layers=[1])
    by_text = interchange_sweep(tiny_llama, "abc", "abd", metric)
    assert np.isnan(by_ids.scores[0]).all()
    np.testing.assert_allclose(by_ids.scores[1], by_text.scores[1], atol=1e-6)


def test_sweep_refuses_prompts_of_different_length(tiny_llama):
    metric = prob_difference(tiny_llama, "a", "b")
    with pytest.raises(ValueError, match="pair 0: base has \\d+ tokens but source has \\d+"):
        interchange_sweep(tiny_llama, "ab", "abc", metric)
    with pytest.raises(ValueError, match="positions='each' needs prompts of one length"):
        interchange_sweep(tiny_llama, ["ab", "abc"], ["ac", "abd"], metric)
    with pytest.raises(ValueError, match="kind must be one of"):
        interchange_sweep(tiny_llama, "ab", "ac", metric, kind="mpl")
    with pytest.raises(ValueError, match="returned a scalar"):
        interchange_sweep(tiny_llama, "ab", "ac", lambda logits: logits[:, 0].mean())
    assert torch.is_tensor(metric(torch.zeros(2, tiny_llama.model.config.vocab_size)))


def test_named_positions_sweep_prompts_of_different_lengths(tiny):
    base, source = ["in Spain", "off to Paris"], ["in Italy", "off to Tokyo"]
    metric = prob_difference(tiny, "R", "M")
    named = {"second": [1, 1], "third from the end": [-3, -3]}
    result = interchange_sweep(tiny, base, source, metric, kind="mlp", positions=named)
    assert result.axes == ("layer", "position") and result.labels["position"] == list(named)
    for pair, (b, s) in enumerate(zip(base, source)):  # each pair alone, unpadded
        n = len(tiny.tokens(b))
        for layer in range(tiny.n_layers):
            site = f"layer.{layer}.mlp"
            with capture(tiny, site) as acts:
                tiny.model(**tiny.encode(s))
            for g, at in enumerate(named.values()):
                with patch(tiny, {site: Set(acts[site], at=[at[pair] % n])}):
                    probs = tiny.next_token_probs(b)
                want = (probs[0, tiny.token_id("R")] - probs[0, tiny.token_id("M")]).item()
                assert result.per_pair[pair, layer, g] == pytest.approx(want, abs=1e-6)
