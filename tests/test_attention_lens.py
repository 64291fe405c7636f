"""Attention patterns and induction heads: GPT-2's patterns against softmax(QKᵀ/√d) computed by
hand in a left-padded batch, every family's batch against each prompt alone, the user's attention
implementation put back exactly (also after an error), the induction and previous-token scores
on planted patterns, and the ablation check against an ablation done on the weights."""

import copy

import numpy as np
import pytest
import torch

from nbtoolkit import tiny_model
from nbtoolkit.core.modes import eager_attention
from nbtoolkit.lens import (attention_patterns, induction_ablation, induction_score,
                            induction_scores, previous_token_score, repeated_tokens)
from nbtoolkit.lens.attention import attention_weights

PROMPTS = ["The capital of Spain is", "Hi there"]


def implementations(model):
    return [(type(m).__name__, m.config._attn_implementation) for m in model.modules()
            if hasattr(m, "config")]


def test_gpt2_patterns_are_softmax_qk_by_hand():
    lm = tiny_model("gpt2")
    result = attention_patterns(lm, PROMPTS, layers=[1])
    m = lm.model
    for b, prompt in enumerate(PROMPTS):
        ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = m(input_ids=ids, output_hidden_states=True).hidden_states[1][0]  # entering block 1
            block = m.transformer.h[1]
            q, k, _ = block.attn.c_attn(block.ln_1(h)).split(lm.d_model, dim=-1)
            heads, n = m.config.n_head, ids.shape[1]
            q, k = (x.view(n, heads, -1).transpose(0, 1) for x in (q, k))
            scores = q @ k.transpose(-1, -2) / (lm.d_model // heads) ** 0.5
            scores = scores.masked_fill(torch.ones(n, n).triu(1).bool(), -torch.inf)
            want = scores.softmax(-1)
        torch.testing.assert_close(result[1][b, :, :n, :n], want, atol=1e-6, rtol=0)
    assert torch.isnan(result[1][1, :, 8:]).all()


def test_a_padded_batch_is_each_prompt_alone_and_the_implementation_is_put_back(tiny):
    before = implementations(tiny.model)
    batch = tiny.encode(PROMPTS)
    with torch.no_grad():
        outputs = tiny.model(**batch).logits
    result = attention_patterns(tiny, PROMPTS)
    assert implementations(tiny.model) == before
    for b, prompt in enumerate(PROMPTS):
        alone = attention_patterns(tiny, prompt)
        n = len(alone.tokens[0])
        torch.testing.assert_close(result.weights[:, b, :, :n, :n], alone.weights[:, 0],
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(alone.weights[:, 0].sum(-1), torch.ones(tiny.n_layers, 4, n))
        assert alone.weights[:, 0].triu(1).abs().max() == 0  # causal
    with torch.no_grad():
        torch.testing.assert_close(tiny.model(**batch).logits, outputs, atol=0, rtol=0)


def test_the_implementation_comes_back_after_an_error():
    lm = tiny_model("llama")
    lm.model.set_attn_implementation("sdpa")
    with pytest.raises(IndexError):
        with eager_attention(lm.model):
            assert lm.model.config._attn_implementation == "eager"
            lm.model(input_ids=torch.tensor([[10 ** 6]]))  # an id outside the vocabulary
    assert lm.model.config._attn_implementation == "sdpa"
    with torch.no_grad():  # sdpa returns no weights: it really is sdpa again
        assert not lm.model(input_ids=torch.tensor([[5, 6]]), output_attentions=True).attentions


def test_rows_and_frame():
    lm = tiny_model("llama")
    result = attention_patterns(lm, "abc", layers=[0, 2])
    assert result.layers == [0, 2] and result.weights.shape == (2, 1, 4, 3, 3)
    frame = result.to_frame()
    assert len(frame) == 2 * 4 * 6 and frame.key.le(frame["query"]).all()
    row = frame[(frame.layer == 2) & (frame["head"] == 1) & (frame["query"] == 2) & (frame.key == 0)]
    assert row.weight.item() == pytest.approx(float(result[2][0, 1, 2, 0]))
    assert row.query_token.item() == "c" and row.key_token.item() == "a"
    with pytest.raises(ValueError, match="layer 1 was not read"):
        result[1]


def test_between_reads_each_prompts_own_positions_in_a_padded_batch():
    lm = tiny_model("llama")
    batch = attention_patterns(lm, ["abcde", "ab"], layers=[1])
    alone = attention_patterns(lm, "ab", layers=[1])
    got = batch.between(1, 2, query=[-1, -1], key=[1, 0])
    assert got[0] == batch[1][0, 2, 4, 1]
    torch.testing.assert_close(got[1], alone[1][0, 2, 1, 0])
    with pytest.raises(ValueError, match="one position per prompt \\(2\\), got 1 and 2"):
        batch.between(1, 0, query=[0], key=[0, 0])


# ---------------------------------------------------------------- induction

def planted(seq_len=5, prefix=1):
    """Patterns of 3 heads on [prefix + 2 · seq_len] tokens: an induction head, a previous-token
    head and a head that attends to the first token only."""
    length = prefix + 2 * seq_len
    weights = torch.zeros(1, 3, length, length)
    for q in range(length):
        weights[0, 2, q, 0] = 1
        weights[0, 1, q, max(q - 1, 0)] = 1
        weights[0, 0, q, q - seq_len + 1 if q >= prefix + seq_len else 0] = 1
    return weights


def test_scores_on_planted_patterns():
    weights = planted()
    assert induction_score(weights, 5).tolist() == [1.0, 0.0, 0.0]
    assert previous_token_score(weights).tolist() == pytest.approx([0.1, 1.0, 0.1])  # 1 → 0 only
    no_bos = planted(prefix=0)
    assert induction_score(no_bos, 5).tolist() == [1.0, 0.0, 0.0]


def test_repeated_tokens():
    lm = tiny_model("llama")
    ids = repeated_tokens(lm, seq_len=6, batch=3, seed=1)
    assert ids.shape == (3, 13) and (ids[:, 0] == lm.tokenizer.bos_token_id).all()
    assert torch.equal(ids[:, 1:7], ids[:, 7:])
    assert not set(ids[:, 1:].reshape(-1).tolist()) & set(lm.tokenizer.all_special_ids)
    assert torch.equal(ids, repeated_tokens(lm, seq_len=6, batch=3, seed=1))
    assert not torch.equal(ids, repeated_tokens(lm, seq_len=6, batch=3, seed=2))


def test_induction_scores_read_the_attention_of_repeated_tokens():
    lm = tiny_model("gpt2")
    scores = induction_scores(lm, seq_len=6, batch=2, seed=3)
    weights = attention_weights(lm.model, {"input_ids": repeated_tokens(lm, 6, 2, 3)}, [0, 1, 2])
    np.testing.assert_allclose(scores.induction, induction_score(weights, 6).numpy())
    np.testing.assert_allclose(scores.previous, previous_token_score(weights).numpy())
    top = scores.top(2)
    assert scores.induction[top[0]] == scores.induction.max() and len(top) == 2
    assert len(scores.to_frame()) == 3 * 4


def test_zero_ablation_equals_zeroed_projection_columns():
    """Zeroing head 1 of block 0 and head 3 of block 2 in the ablation check = zeroing those
    heads' columns of o_proj in a copy of the model."""
    lm = tiny_model("llama")
    result = induction_ablation(lm, [(0, 1), (2, 3)], how="zero", controls=2, seq_len=6, batch=2)
    reference = copy.deepcopy(lm)
    d_head = lm.d_model // 4
    with torch.no_grad():
        for layer, head in [(0, 1), (2, 3)]:
            reference.model.model.layers[layer].self_attn.o_proj.weight[:, head * d_head:(head + 1) * d_head] = 0
    ablated = induction_ablation(reference, [(1, 0)], how="zero", controls=0, seq_len=6, batch=2)
    assert result.loss == pytest.approx(ablated.clean_loss, abs=1e-6)
    assert result.loss != pytest.approx(result.clean_loss, abs=1e-4)
    assert len(result.control_heads) == 2 and all(len(h) == 2 for h in result.control_heads)
    assert not {(0, 1), (2, 3)} & {h for heads in result.control_heads for h in heads}
    frame = result.to_frame()
    assert frame.ablated.tolist() == ["none", "top heads", "random 0", "random 1"]
    assert frame.increase.iloc[1] == pytest.approx(result.increase)


def test_mean_ablation_sets_the_mean_output():
    """Mean ablation of head 2 of block 1, by hand: the o_proj input slice replaced by its mean."""
    lm = tiny_model("llama")
    ids = repeated_tokens(lm, 6, 2, 0)
    proj = lm.model.model.layers[1].self_attn.o_proj
    d_head = lm.d_model // 4
    seen = {}
    handle = proj.register_forward_pre_hook(lambda m, args: seen.setdefault("z", args[0]))
    with torch.no_grad():
        lm.model(input_ids=ids)
    handle.remove()
    mean = seen["z"][..., 2 * d_head:3 * d_head].mean((0, 1))

    def replace(module, args):
        z = args[0].clone()
        z[..., 2 * d_head:3 * d_head] = mean
        return (z,)
    handle = proj.register_forward_pre_hook(replace)
    try:
        with torch.no_grad():
            logits = lm.model(input_ids=ids).logits
    finally:
        handle.remove()
    loss = -logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    result = induction_ablation(lm, [(1, 2)], how="mean", controls=0, seq_len=6, batch=2)
    assert result.loss == pytest.approx(float(loss[:, -5:].mean()), abs=1e-6)
    assert result.first_half_losses[1] == pytest.approx(float(loss[:, 1:6].mean()), abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_embedded_models_have_induction_heads_that_matter(name):
    from nbtoolkit import load_model

    lm = load_model(name)
    scores = induction_scores(lm, seq_len=30, batch=2)
    top = scores.top(5)
    assert scores.induction[top[0]] > 0.5
    check = induction_ablation(lm, top, controls=3, seq_len=30, batch=2)
    assert check.increase > 1.0
    assert check.increase > 2 * np.median(check.control_increases)
