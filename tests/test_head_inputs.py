"""Per-head query, key and value sites (``layer.{i}.attn.q/.k/.v``) on every decoder family: they
are what each head reads, told apart by what changing them does to the heads' outputs
(``layer.{i}.attn.heads``, the weighted sum of values), never by how the anatomy slices them:

* doubling one key/value head's values doubles exactly the outputs of the query heads that
  share it (the output is linear in the values, the pattern unchanged);
* a query changed at one position changes that head's output at that position only;
* a key changed at position t changes its heads' outputs at t and after, never before (causal).
"""

import pytest
import torch

from conftest import hook_count
from nbtoolkit import Set, capture, patch, tiny_model
from nbtoolkit.core.anatomy import (HEAD_INPUTS, config_value, families_of_kind,
                                    families_with_head_inputs)

PROMPT = "The capital of Spain is Madrid"
LAYER = 1


def outputs(lm, interventions=None):
    """Every head's output at ``LAYER``, ``[seq, n_heads, d_head]`` (float64 for comparisons)."""
    site = f"layer.{LAYER}.attn.heads"
    with torch.no_grad(), patch(lm, interventions or {}), capture(lm, site) as acts:
        lm.model(**lm.encode(PROMPT))
    return acts[site][0].double()


def inputs(lm):
    sites = [f"layer.{LAYER}.{kind}" for kind in HEAD_INPUTS]
    with torch.no_grad(), capture(lm, sites) as acts:
        lm.model(**lm.encode(PROMPT))
    return [acts[s] for s in sites]


def group(lm, kv_head: int) -> list[int]:
    """The query heads that read key/value head ``kv_head``."""
    per = lm.n_heads // config_value(lm.model, "n_kv_heads")
    return list(range(kv_head * per, (kv_head + 1) * per))


def changed(a, b, atol=1e-6):
    """``[seq, n_heads]``: where the head outputs differ."""
    return ((a - b).abs().amax(-1) > atol)


def test_every_decoder_family_has_head_inputs():
    assert families_with_head_inputs() == families_of_kind(["decoder"])


def test_values_scale_the_outputs_of_their_heads(tiny):
    q, k, v = inputs(tiny)
    base = outputs(tiny)
    kv = v.shape[2] - 1  # the last key/value head
    doubled = v.clone()
    doubled[:, :, kv] *= 2
    out = outputs(tiny, {f"layer.{LAYER}.attn.v": Set(doubled)})
    heads = group(tiny, kv) if v.shape[2] < q.shape[2] else [kv]
    others = [h for h in range(q.shape[2]) if h not in heads]
    torch.testing.assert_close(out[:, heads], 2 * base[:, heads], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, others], base[:, others], atol=0, rtol=0)


def test_a_query_changes_its_head_at_its_position_only(tiny):
    q, _, _ = inputs(tiny)
    base = outputs(tiny)
    head, position = 2, 5
    out = outputs(tiny, {f"layer.{LAYER}.attn.q": Set(torch.randn_like(q) * 3, at=[position],
                                                       heads=[head])})
    expected = torch.zeros_like(changed(out, base))
    expected[position, head] = True
    assert torch.equal(changed(out, base), expected)


def test_a_key_changes_its_heads_from_its_position_on(tiny):
    q, k, _ = inputs(tiny)
    base = outputs(tiny)
    kv, position = k.shape[2] - 1, 4
    out = outputs(tiny, {f"layer.{LAYER}.attn.k": Set(torch.randn_like(k) * 3, at=[position],
                                                       heads=[kv])})
    heads = group(tiny, kv) if k.shape[2] < q.shape[2] else [kv]
    diff = changed(out, base)
    assert not diff[:position].any()
    assert diff[position:, heads].any(0).all()  # every head of the group moves somewhere after
    assert not diff[:, [h for h in range(q.shape[2]) if h not in heads]].any()


def test_self_patch_is_exact_and_hooks_are_removed(tiny):
    sites = [f"layer.{LAYER}.{kind}" for kind in HEAD_INPUTS]
    batch = tiny.encode([PROMPT, "Hi"])
    with torch.no_grad(), capture(tiny, sites) as acts:
        clean = tiny.model(**batch).logits
    before = hook_count(tiny.model)
    with torch.no_grad(), patch(tiny, {s: Set(acts[s]) for s in sites}):
        assert torch.equal(tiny.model(**batch).logits, clean)
    assert hook_count(tiny.model) == before


@pytest.mark.parametrize("family", ["gpt2", "phi3"])
def test_grad_capture_of_a_fused_part_reaches_the_input(family):
    lm = tiny_model(family)
    lm.model.requires_grad_(False)
    try:
        with capture(lm, ["layer.0.attn.k", "logits"], grad=True) as acts:
            lm.model(**lm.encode(PROMPT))
        acts["logits"][0, -1].sum().backward()
        assert acts["layer.0.attn.k"].grad is not None
        assert acts["layer.0.attn.k"].grad.abs().sum() > 0
    finally:
        lm.model.requires_grad_(True)


def test_grad_capture_of_a_per_head_site_with_trainable_weights():
    """A per-head view is not what the forward reads: capture(grad=True) hands the forward an
    alias, so the view's gradient is filled (it stayed empty before)."""
    lm = tiny_model("llama")
    with capture(lm, ["layer.1.attn.heads", "layer.1.attn.q"], grad=True) as acts:
        logits = lm.model(**lm.encode(PROMPT)).logits
    grads = torch.autograd.grad(logits[0, -1, 5], [acts["layer.1.attn.heads"],
                                                   acts["layer.1.attn.q"]])
    assert all(g.abs().sum() > 0 for g in grads)
