"""Head patching against a literal reference: one patched forward per cell, written with
``patch`` and ``Set(..., heads=[h], at=...)``, on every decoder family, on a left-padded batch of
pairs of different lengths."""

import numpy as np
import pytest
import torch

from conftest import hook_count
from nbtoolkit import Set, capture, patch, tiny_model
from nbtoolkit.circuits import head_patching
from nbtoolkit.circuits.heads import KINDS
from nbtoolkit.core.sweeps import encode_pairs

# byte-level tokenizer: a pair's prompts have equal lengths, the pairs do not (left padding)
BASE = ["The capital of Spain is", "Hi Bob, said Ann to"]
SOURCE = ["The capital of Italy is", "Hi Ann, said Bob to"]
POSITIONS = {"name": [15, 7], "end": [-1, -1]}  # token positions in each pair


def metric(logits):
    return logits[:, 65] - logits[:, 66]  # "A" − "B"


def reference(lm, kind, at, heads_of=None):
    """``[n_pairs, n_layers, n_heads]``: one forward per (layer, head), the source's activation
    set there with the core's own intervention."""
    pairs = encode_pairs(lm, BASE, SOURCE)
    sites = [f"layer.{i}.{KINDS[kind]}" for i in range(lm.n_layers)]
    with torch.no_grad(), capture(lm, sites) as src:
        lm.model(**pairs.source)
    n_heads = src[sites[0]].shape[2]
    out = np.zeros((pairs.n, lm.n_layers, n_heads))
    for layer, site in enumerate(sites):
        for head in range(n_heads):
            with torch.no_grad(), patch(lm, {site: Set(src[site], heads=[head], at=at)}):
                logits = lm.model(**pairs.base).logits[:, -1]
            out[:, layer, head] = metric(logits).double().numpy()
    return out


def assert_matches(result, expected):
    np.testing.assert_allclose(result.per_pair, expected, atol=1e-6, rtol=0)
    # the patches did something (50× the tolerance): not every cell equals the base run
    assert np.abs(result.per_pair - result.base_scores[:, None, None]).max() > 5e-5


@pytest.mark.parametrize("kind, positions, at", [("out", "all", None), ("k", "all", None),
                                                ("v", "last", -1)])
def test_head_patching_equals_one_forward_per_head_on_every_family(tiny, kind, positions, at):
    before = hook_count(tiny.model)
    result = head_patching(tiny, BASE, SOURCE, metric, kind=kind, positions=positions,
                           max_rows=6)  # several chunks
    assert hook_count(tiny.model) == before
    assert_matches(result, reference(tiny, kind, at))


@pytest.mark.parametrize("kind", list(KINDS))
def test_named_positions_give_one_column_each(kind):
    lm = tiny_model("llama")
    result = head_patching(lm, BASE, SOURCE, metric, kind=kind, positions=POSITIONS)
    assert result.axes == ("layer", "head", "position")
    assert result.labels["position"] == ["name", "end"]
    for g, name in enumerate(POSITIONS):
        at = [[p] for p in POSITIONS[name]]
        np.testing.assert_allclose(result.per_pair[..., g], reference(lm, kind, at), atol=1e-6,
                                   rtol=0)


def test_each_position_on_prompts_of_one_length():
    lm = tiny_model("gpt2")
    base, source = ["in Spain", "in Italy"], ["in Italy", "in Spain"]
    result = head_patching(lm, base, source, metric, positions="each", layers=[1], heads=[0, 2])
    assert result.scores.shape == (lm.n_layers, lm.n_heads, 8)
    assert np.isnan(result.scores[0]).all() and np.isnan(result.scores[1, 1]).all()
    pairs = encode_pairs(lm, base, source)
    with torch.no_grad(), capture(lm, "layer.1.attn.heads") as src:
        lm.model(**pairs.source)
    with torch.no_grad(), patch(lm, {"layer.1.attn.heads": Set(src["layer.1.attn.heads"],
                                                                heads=[2], at=[3])}):
        want = metric(lm.model(**pairs.base).logits[:, -1]).double().numpy()
    np.testing.assert_allclose(result.per_pair[:, 1, 2, 3], want, atol=1e-6, rtol=0)


def test_results_and_frame():
    lm = tiny_model("llama")
    result = head_patching(lm, BASE, SOURCE, metric)
    pairs = encode_pairs(lm, BASE, SOURCE)
    with torch.no_grad():
        base = metric(lm.model(**pairs.base).logits[:, -1])
        source = metric(lm.model(**pairs.source).logits[:, -1])
    np.testing.assert_allclose(result.base_scores, base.double().numpy(), atol=1e-6)
    np.testing.assert_allclose(result.source_scores, source.double().numpy(), atol=1e-6)
    assert result.base_score == pytest.approx(float(base.mean()), abs=1e-6)
    np.testing.assert_allclose(result.scores, result.per_pair.mean(0))
    np.testing.assert_allclose(result.std, result.per_pair.std(0))
    frame = result.to_frame()
    assert len(frame) == lm.n_layers * lm.n_heads
    row = frame[(frame["layer"] == 2) & (frame["head"] == 1)].iloc[0]
    assert row.score == pytest.approx(result.scores[2, 1])
    assert row.effect == pytest.approx(result.scores[2, 1] - result.base_score)
    top = result.top(3)
    assert abs(top.effect.iloc[0]) == pytest.approx(np.abs(result.effects()).max())
