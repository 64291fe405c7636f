"""Path patching against the two passes of Wang et al.'s Appendix B, written literally with the
core's ``patch``/``capture``: run 1 on the base prompts with the senders patched from the source
and every other head's output frozen to the base run (MLPs recomputed, or frozen), recording the
receivers' inputs; run 2 on the base prompts with only the receivers' inputs patched."""

import numpy as np
import pytest
import torch

from conftest import hook_count
from test_circuits_heads import BASE, SOURCE, metric
from nbtoolkit import Set, capture, patch, tiny_model
from nbtoolkit.circuits import head_patching, path_patching
from nbtoolkit.core.sweeps import encode_pairs

PARTS = {"q": "attn.q", "k": "attn.k", "v": "attn.v"}


def acts_of(lm, inputs, sites):
    with torch.no_grad(), capture(lm, sites) as acts:
        lm.model(**inputs)
    return acts


def reference(lm, sender, receivers, *, sender_at=None, receiver_at=None, freeze_mlps=False):
    """``[n_pairs]``: the metric after patching ``sender`` (a list of (layer, head or None for
    the MLP)) to ``receivers`` (``"logits"`` or (layer, head, part) triples)."""
    pairs = encode_pairs(lm, BASE, SOURCE)
    z = [f"layer.{i}.attn.heads" for i in range(lm.n_layers)]
    mlp = [f"layer.{i}.mlp" for i in range(lm.n_layers)]
    base, source = acts_of(lm, pairs.base, z + mlp), acts_of(lm, pairs.source, z + mlp)
    run1 = {s: [Set(base[s])] for s in z}  # every head frozen to the base run ...
    if freeze_mlps:
        run1.update({s: [Set(base[s])] for s in mlp})
    for layer, head in sender:  # ... but the sender, patched from the source
        if head is None:
            run1.setdefault(mlp[layer], []).append(Set(source[mlp[layer]], at=sender_at))
        else:
            run1[z[layer]].append(Set(source[z[layer]], heads=[head], at=sender_at))
    sites = [] if receivers == "logits" else \
        sorted({f"layer.{l}.{PARTS[p]}" for l, _, p in receivers})
    with torch.no_grad(), patch(lm, run1), capture(lm, sites) as recorded:
        logits = lm.model(**pairs.base).logits[:, -1]
    if receivers == "logits":  # the final residual stream gives these logits
        return metric(logits).double().numpy()
    run2 = {}
    for layer, head, part in receivers:
        site = f"layer.{layer}.{PARTS[part]}"
        run2.setdefault(site, []).append(Set(recorded[site], heads=[head], at=receiver_at))
    with torch.no_grad(), patch(lm, run2):
        return metric(lm.model(**pairs.base).logits[:, -1]).double().numpy()


RECEIVERS = [(2, 1, "q"), (2, 0, "k"), (1, 1, "v")]


@pytest.mark.parametrize("receivers", ["logits", RECEIVERS])
def test_every_head_to_receivers_equals_the_two_passes(tiny, receivers):
    before = hook_count(tiny.model)
    result = path_patching(tiny, BASE, SOURCE, "heads", receivers, metric, max_rows=10)
    assert hook_count(tiny.model) == before
    assert result.scores.shape == (tiny.n_layers, tiny.n_heads)
    top = tiny.n_layers if receivers == "logits" else 2
    for layer in range(tiny.n_layers):
        for head in range(tiny.n_heads):
            if layer >= top:  # no path from here to the receivers
                assert np.isnan(result.per_pair[:, layer, head]).all()
                continue
            want = reference(tiny, [(layer, head)], receivers)
            np.testing.assert_allclose(result.per_pair[:, layer, head], want, atol=1e-6, rtol=0)
    assert np.nanmax(np.abs(result.per_pair - result.base_scores[:, None, None])) > 5e-5


def test_senders_above_some_receivers_in_a_chunk_of_their_own():
    """A chunk whose senders all start above one receiver's block never runs that block: the
    receiver keeps its base value there (max_rows=2: one sender per chunk)."""
    lm = tiny_model("llama")
    receivers = [(0, 0, "q"), (2, 1, "q")]
    result = path_patching(lm, BASE, SOURCE, "heads", receivers, metric, max_rows=2)
    for head in range(lm.n_heads):
        np.testing.assert_allclose(result.per_pair[:, 1, head],
                                   reference(lm, [(1, head)], receivers), atol=1e-6, rtol=0)


def test_groups_mlps_positions_and_frozen_mlps():
    lm = tiny_model("qwen3")
    senders = [[(0, 1), (1, 2)], "layer.0.mlp", "layer.1.attn", (1, 3)]
    expanded = [[(0, 1), (1, 2)], [(0, None)], [(1, h) for h in range(lm.n_heads)], [(1, 3)]]
    at = {"name": [15, 7]}
    for freeze in (False, True):
        result = path_patching(lm, BASE, SOURCE, senders, RECEIVERS, metric,
                               sender_positions=at, receiver_positions="last",
                               freeze_mlps=freeze)
        assert result.axes == ("sender",) and result.labels["sender"] == \
            ["0.1+1.2", "layer.0.mlp", "layer.1.attn", "1.3"]
        for k, sender in enumerate(expanded):
            want = reference(lm, sender, RECEIVERS, sender_at=[[p] for p in at["name"]],
                             receiver_at=-1, freeze_mlps=freeze)
            np.testing.assert_allclose(result.per_pair[:, k], want, atol=1e-6, rtol=0)


def test_every_mlp_to_the_logits():
    lm = tiny_model("gemma3")
    result = path_patching(lm, BASE, SOURCE, "mlps", "logits", metric, freeze_mlps=True)
    assert result.scores.shape == (lm.n_layers,)
    for layer in range(lm.n_layers):
        want = reference(lm, [(layer, None)], "logits", freeze_mlps=True)
        np.testing.assert_allclose(result.per_pair[:, layer], want, atol=1e-6, rtol=0)


def test_direct_effect_of_the_last_layer_equals_its_head_patching():
    """Nothing lies between a last-layer head and the logits but the final norm: freezing the
    other heads changes nothing, so path patching to the logits is head patching there."""
    lm = tiny_model("llama")
    last = lm.n_layers - 1
    paths = path_patching(lm, BASE, SOURCE, "heads", "logits", metric)
    heads = head_patching(lm, BASE, SOURCE, metric, layers=[last])
    np.testing.assert_allclose(paths.per_pair[:, last], heads.per_pair[:, last], atol=1e-6)


def test_a_sweep_limited_to_some_layers_leaves_the_others_nan():
    lm = tiny_model("llama")
    full = path_patching(lm, BASE, SOURCE, "heads", "logits", metric)
    upper = path_patching(lm, BASE, SOURCE, "heads", "logits", metric, layers=[1, 2])
    assert np.isnan(upper.per_pair[:, 0]).all()
    np.testing.assert_allclose(upper.per_pair[:, 1:], full.per_pair[:, 1:], atol=1e-6, rtol=0)
