"""Attribution patching against exact patching, on tiny models in float64:

* first order: patching ``base + ε·(source − base)`` changes the metric by ``ε·estimate + O(ε²)``
  (halving ε quarters the error) for every site kind, on a left-padded batch (GPT-2: its norms
  compute in float64, where LLaMA's RMSNorm rounds to float32 and hides ε² under noise);
* the QK fix equals its definition: each head's output recomputed with one head's query (or one
  key position) patched, by a literal forward, times the gradient at the heads' outputs;
* GradDrop equals its definition: the gradient with block ℓ's attention and MLP outputs detached;
* the QK fix recovers a query patch that saturated attention hides from plain AtP.
"""

import numpy as np
import pytest
import torch

from conftest import hook_count
from test_circuits_heads import BASE, SOURCE, metric
from nbtoolkit import Set, capture, patch, tiny_model
from nbtoolkit.circuits import attribution_patching, head_patching
from nbtoolkit.circuits.attribution import SITE_KINDS
from nbtoolkit.core.anatomy import weight
from nbtoolkit.core.sweeps import encode_pairs


@pytest.fixture(scope="module")
def lm():
    """GPT-2's LayerNorm computes in the model's dtype (LLaMA's RMSNorm rounds to float32)."""
    model = tiny_model("gpt2", seed=1)
    model.model.double()
    return model


def activations(lm, inputs, site):
    with torch.no_grad(), capture(lm, site) as acts:
        lm.model(**inputs)
    return acts[site]


def exact(lm, pairs, site, value, heads=None):
    """The metric per pair with ``site`` set to ``value`` (every position)."""
    with torch.no_grad(), patch(lm, {site: Set(value, heads=heads)}):
        return metric(lm.model(**pairs.base).logits[:, -1]).numpy()


@pytest.mark.parametrize("kind", list(SITE_KINDS))
def test_estimate_is_exact_to_first_order(lm, kind):
    result = attribution_patching(lm, BASE, SOURCE, metric, kind=kind)
    estimate = result.per_pair - result.base_scores.reshape(-1, *[1] * (result.per_pair.ndim - 1))
    pairs = encode_pairs(lm, BASE, SOURCE)
    layer = 1
    cell = (slice(None), layer) + ((int(np.abs(estimate[:, layer]).sum(0).argmax()),)
                                  if estimate.ndim == 3 else ())
    head = cell[2:] and [cell[2]] or None
    site = f"layer.{layer}{'.' + SITE_KINDS[kind] if SITE_KINDS[kind] else ''}"
    base, source = activations(lm, pairs.base, site), activations(lm, pairs.source, site)
    errors = []
    for eps in (1e-2, 5e-3):
        moved = exact(lm, pairs, site, base + eps * (source - base), head) - result.base_scores
        errors.append(moved - eps * estimate[cell])
        # first order: the estimate carries the change up to a small remainder
        assert np.abs(errors[-1]).max() < 0.05 * np.abs(eps * estimate[cell]).max()
    ratio = np.abs(errors[0]).sum() / np.abs(errors[1]).sum()
    assert 3.0 < ratio < 5.0, f"error ratio {ratio} for halved ε: not O(ε²)"


def test_positions_split_the_estimate(lm):
    named = attribution_patching(lm, BASE, SOURCE, metric, kind="mlp",
                                 positions={"name": [15, 7], "end": [-1, -1]})
    assert named.axes == ("layer", "position") and named.scores.shape == (lm.n_layers, 2)
    each = attribution_patching(lm, BASE[:1], SOURCE[:1], metric, kind="hidden", positions="each")
    whole = attribution_patching(lm, BASE[:1], SOURCE[:1], metric, kind="hidden")
    # first-order terms add up: the positions' estimates sum to the whole layer's
    np.testing.assert_allclose(each.effects().sum(-1), whole.effects(), atol=1e-10)


def _grad_at(lm, pairs, site, detach=()):
    """∂Σmetric/∂(site) in the base run, with the sites ``detach`` cut from the backward."""
    cut = {s: (lambda act, ctx: act.detach()) for s in detach}
    with patch(lm, cut), capture(lm, [site], grad=True) as acts:
        logits = lm.model(**pairs.base).logits[:, -1]
    grad = torch.autograd.grad(metric(logits).sum(), acts[site], allow_unused=True)[0]
    return torch.zeros_like(acts[site]) if grad is None else grad  # no parameter's .grad moves


@pytest.mark.parametrize("kind", ["q", "k"])
def test_qk_fix_equals_its_definition(lm, kind):
    result = attribution_patching(lm, BASE, SOURCE, metric, kind=kind, qk_fix=True)
    pairs = encode_pairs(lm, BASE, SOURCE)
    layer, unit = 2, 1  # unit: a query head, or a key/value head
    site, out = f"layer.{layer}.attn.{kind}", f"layer.{layer}.attn.heads"
    source = activations(lm, pairs.source, site)
    base_z = activations(lm, pairs.base, out)
    grad = _grad_at(lm, pairs, out)
    with torch.no_grad(), patch(lm, {site: Set(source, heads=[unit])}), capture(lm, out) as z:
        lm.model(**pairs.base)
    per_kv = lm.n_heads // source.shape[2]
    heads = [unit] if kind == "q" else list(range(unit * per_kv, (unit + 1) * per_kv))
    if kind == "q":  # all queries at once: each position's output sees its own query only
        want = ((z[out] - base_z) * grad)[:, :, heads].sum((1, 2, 3))
    else:  # each key position patched alone, its effect on every later output summed
        want = 0
        base_k = activations(lm, pairs.base, site)
        for column in range(pairs.width):
            value = base_k.clone()
            value[:, column, unit] = source[:, column, unit]
            with torch.no_grad(), patch(lm, {site: Set(value)}), capture(lm, out) as z1:
                lm.model(**pairs.base)
            want = want + ((z1[out] - base_z) * grad)[:, :, heads].sum((1, 2, 3))
    np.testing.assert_allclose(result.per_pair[:, layer, unit] - result.base_scores,
                               want.numpy(), rtol=1e-8, atol=1e-12)


def test_graddrop_equals_its_definition(lm):
    result = attribution_patching(lm, BASE, SOURCE, metric, kind="v", grad_drop=True)
    pairs = encode_pairs(lm, BASE, SOURCE)
    sites = [f"layer.{i}.attn.v" for i in range(lm.n_layers)]
    delta = [activations(lm, pairs.source, s) - activations(lm, pairs.base, s) for s in sites]
    total = 0
    for dropped in range(lm.n_layers):
        cut = [f"layer.{dropped}.attn", f"layer.{dropped}.mlp"]
        term = np.stack([(d * _grad_at(lm, pairs, s, cut)).sum((1, 3)).numpy()
                         for s, d in zip(sites, delta)], 1)  # [n, L, kv heads]
        total = total + np.abs(term)
    np.testing.assert_allclose(result.graddrop, total / (lm.n_layers - 1), rtol=1e-8, atol=1e-12)


def test_qk_fix_recovers_a_query_patch_hidden_by_saturated_attention():
    lm = tiny_model("llama", seed=2)
    lm.model.double()
    with torch.no_grad():  # a sharp layer: its softmax saturates
        weight(lm.model, 2, "query").weight.mul_(12)
        weight(lm.model, 2, "key").weight.mul_(12)
    exact_q = head_patching(lm, BASE, SOURCE, metric, kind="q", layers=[2]).effects()[2]
    plain = attribution_patching(lm, BASE, SOURCE, metric, kind="q").effects()[2]
    fixed = attribution_patching(lm, BASE, SOURCE, metric, kind="q", qk_fix=True).effects()[2]
    assert np.abs(fixed - exact_q).max() < 0.5 * np.abs(plain - exact_q).max()


def test_no_gradient_or_hook_is_left_behind(lm):
    before = hook_count(lm.model)
    attribution_patching(lm, BASE, SOURCE, metric, kind=("out", "mlp"), grad_drop=True)
    assert hook_count(lm.model) == before
    assert all(p.grad is None for p in lm.model.parameters())
    assert all(p.requires_grad for p in lm.model.parameters())


def test_frozen_weights_give_the_same_estimates(lm):
    unfrozen = attribution_patching(lm, BASE, SOURCE, metric, kind="out").scores
    lm.model.requires_grad_(False)
    try:
        frozen = attribution_patching(lm, BASE, SOURCE, metric, kind="out").scores
    finally:
        lm.model.requires_grad_(True)
    np.testing.assert_allclose(frozen, unfrozen, rtol=1e-10)
