"""Direct logit attribution: the contributions sum to the model's logit difference on every decoder
family (biases and norm weights perturbed, so that every kind of row is exercised), Gemma-2's sum
is the difference before its soft-cap, one head's contribution equals its slice of the output
projection through the frozen final norm computed by hand, and OPT-350m is refused."""

import math

import numpy as np
import pytest
import torch

from conftest import DECODERS
from nbtoolkit import tiny_model
from nbtoolkit.lens import direct_logit_attribution, frozen_norm

PROMPT = "The capital of Spain is"


def perturbed(family, seed=0):
    """A tiny model whose biases and norm weights are not their initial 0 and 1."""
    lm = tiny_model(family)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return lm


@pytest.mark.parametrize("family", DECODERS)
def test_contributions_sum_to_the_logit_difference(family):
    lm = perturbed(family)
    result = direct_logit_attribution(lm, PROMPT, "M", "P")
    diff = result.logit_diff
    if family == "gemma2":  # the sum is the difference before the final soft-cap
        assert result.softcap == 30.0
        with torch.no_grad():
            logits = lm.model(**lm.encode(PROMPT)).logits[0, -1]
        m, p = (lm.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in "MP")
        diff = 30.0 * (math.atanh(logits[m] / 30.0) - math.atanh(logits[p] / 30.0))
    else:
        assert result.softcap is None
    assert abs(result.total - diff) < 1e-4 * max(1.0, abs(diff)), (family, result.total, diff)
    assert abs(diff) > 1e-2  # a difference worth explaining
    n_heads = lm.model.config.num_attention_heads
    assert (np.array(result.kinds) == "head").sum() == lm.n_layers * n_heads
    assert result.head_matrix().shape == (lm.n_layers, n_heads)
    frame = result.to_frame()
    assert list(frame.columns) == ["component", "kind", "layer", "head", "contribution"]
    assert result.top(3).contribution.abs().is_monotonic_decreasing


def test_one_head_by_hand_llama():
    """Head 2 of block 1: its slice of o_proj applied to its output, times the final RMSNorm's
    gain over the RMS of the last stream, dotted with W_U[M] − W_U[P]."""
    from nbtoolkit import capture

    lm = perturbed("llama")
    m, layer, head = lm.model, 1, 2
    d_head = m.config.head_dim
    batch = lm.encode(PROMPT)
    with torch.no_grad(), capture(lm, ["layer.1.attn.heads", "layer.2"]) as acts:
        m(**batch)
    z = acts["layer.1.attn.heads"][0, -1, head]
    weight = m.model.layers[layer].self_attn.o_proj.weight[:, head * d_head:(head + 1) * d_head]
    resid, norm = acts["layer.2"][0, -1], m.model.norm
    scale = norm.weight / torch.sqrt(resid.pow(2).mean() + norm.variance_epsilon)
    a, p = (lm.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in "MP")
    with torch.no_grad():
        want = float((weight @ z * scale) @ (m.lm_head.weight[a] - m.lm_head.weight[p]))
    result = direct_logit_attribution(lm, PROMPT, "M", "P")
    got = result.values[result.labels.index("layer.1.attn.heads[2]")]
    assert abs(got - want) < 1e-5 and abs(want) > 1e-4


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3"])
def test_frozen_norm_is_the_norm_at_its_scale(family):
    lm = perturbed(family)
    from nbtoolkit.core.anatomy import readout
    parts = readout(lm.model)
    x = torch.randn(3, lm.d_model, generator=torch.Generator().manual_seed(1)) * 5
    frozen = frozen_norm(parts.final_norm, x, parts.centred)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x) + frozen.bias, parts.final_norm(x), atol=1e-5, rtol=1e-5)
        y = torch.randn(3, lm.d_model, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(frozen(x + y), frozen(x) + frozen(y), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(frozen(y) + frozen.bias, parts.final_norm(y), atol=1e-3)


def test_without_distractor_the_rows_sum_to_the_answers_logit():
    lm = perturbed("phi")  # an unembedding bias and a LayerNorm bias
    result = direct_logit_attribution(lm, PROMPT, "M")
    with torch.no_grad():
        logit = lm.model(**lm.encode(PROMPT)).logits[0, -1, lm.tokenizer("M")["input_ids"][0]]
    assert abs(result.total - float(logit)) < 1e-4
    assert {"unembed_bias", "final_norm_bias", "attn_bias"} <= set(result.kinds)


def test_opt_350m_is_refused():
    from test_families import opt_350m_layout

    with pytest.raises(ValueError, match="has no final norm"):
        direct_logit_attribution(opt_350m_layout(), PROMPT, "M", "P")


@pytest.mark.slow
def test_smollm2_fact(default_lm):
    result = direct_logit_attribution(default_lm, "The capital of France is", " Paris", " London")
    assert abs(result.total - result.logit_diff) < 1e-3 * abs(result.logit_diff)
    assert result.logit_diff > 1
    top = result.top(5)
    assert top.contribution.sum() > 0
