"""The logit lens against hand-written read-outs: the last layer is the model's logits on every
decoder family, a middle layer is the family's final norm and LM head applied by hand (Gemma-2's
soft-cap and OPT-350m's projection out included), a left-padded batch gives what each prompt gives
alone, and the top tokens, targets and ranks are those of the log-probs."""

import math
import warnings

import numpy as np
import pytest
import torch

from nbtoolkit import tiny_model
from nbtoolkit.lens import logit_lens
from test_families import opt_350m_layout

PROMPTS = ["The capital of Spain is", "Hi"]


def model_logprobs(lm, prompts):
    batch = lm.encode(prompts)
    with torch.no_grad():
        return lm.model(**batch).logits.float().log_softmax(-1), batch["attention_mask"].sum(-1)


def test_last_layer_is_the_models_logits_and_a_batch_is_each_prompt_alone(tiny):
    result = logit_lens(tiny, PROMPTS)
    logprobs, lengths = model_logprobs(tiny, PROMPTS)
    assert result.logprobs.shape == (2, tiny.n_layers + 1, int(lengths.max()), logprobs.shape[-1])
    assert result.layers == list(range(-1, tiny.n_layers))
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(result.logprobs[row, -1, :n], logprobs[row, -n:], atol=1e-5, rtol=0)
        alone = logit_lens(tiny, PROMPTS[row])
        torch.testing.assert_close(alone.logprobs, result.logprobs[row, :, :n], atol=1e-5, rtol=0)
        assert torch.isnan(result.logprobs[row, :, n:]).all()
        assert (result.top_ids[row, :, n:] == -1).all() and (result.positions[row, n:] == -1).all()
    # the layers differ: a lens that read one site everywhere would pass the checks above
    assert (result.logprobs[0, 0] - result.logprobs[0, -1]).abs().nan_to_num().max() > 1e-3


def _by_hand(lm, layer, norm, head, softcap=None, project_out=None):
    """log_softmax(head(project_out(norm(h)))) of hidden_states[layer + 1], by hand."""
    batch = lm.encode("The capital of Spain is")
    with torch.no_grad():
        h = lm.model(**batch, output_hidden_states=True).hidden_states[layer + 1]
        x = norm(h) if norm is not None else h
        x = project_out(x) if project_out is not None else x
        logits = head(x)
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
    return logits[0].float().log_softmax(-1)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "phi"])
def test_a_middle_layer_is_the_final_norm_and_head_applied_by_hand(family):
    lm = tiny_model(family)
    m = lm.model
    norm = {"llama": lambda: m.model.norm, "gpt2": lambda: m.transformer.ln_f,
            "gemma2": lambda: m.model.norm, "phi": lambda: m.model.final_layernorm}[family]()
    softcap = m.config.final_logit_softcapping if family == "gemma2" else None
    assert family != "gemma2" or softcap == 30.0
    for layer in (-1, 0, 1):
        want = _by_hand(lm, layer, norm, m.lm_head, softcap)
        got = logit_lens(lm, "The capital of Spain is", layers=[layer]).logprobs[0]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_opt_350m_is_read_through_its_projection_out():
    lm = opt_350m_layout()
    decoder = lm.model.model.decoder
    assert decoder.final_layer_norm is None and decoder.project_out is not None
    result = logit_lens(lm, PROMPTS)
    logprobs, lengths = model_logprobs(lm, PROMPTS)
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(result.logprobs[row, -1, :n], logprobs[row, -n:], atol=1e-5, rtol=0)
    want = _by_hand(lm, 0, None, lm.model.lm_head, project_out=decoder.project_out)
    torch.testing.assert_close(logit_lens(lm, "The capital of Spain is", layers=[0]).logprobs[0],
                               want, atol=1e-5, rtol=0)


def test_components_read_each_term_alone(tiny_llama):
    from nbtoolkit import capture

    result = logit_lens(tiny_llama, "Hello there", layers=[-1, 1], components=True)
    assert result.labels == ["embed", "layer.1.attn", "layer.1.mlp", "layer.1"]
    assert result.kinds == ["resid", "attn", "mlp", "resid"]
    m = tiny_llama.model
    with torch.no_grad(), capture(tiny_llama, ["layer.0.in", "layer.1.attn", "layer.1.mlp"]) as acts:
        m(**tiny_llama.encode("Hello there"))
    for i, site in enumerate(["layer.0.in", "layer.1.attn", "layer.1.mlp"]):
        want = m.lm_head(m.model.norm(acts[site][0])).float().log_softmax(-1)
        torch.testing.assert_close(result.logprobs[i], want, atol=1e-5, rtol=0)


def test_top_tokens_targets_and_ranks_are_those_of_the_logprobs(tiny_llama):
    result = logit_lens(tiny_llama, PROMPTS, target=" ", top_k=3)
    space = tiny_llama.tokenizer(" ", add_special_tokens=False)["input_ids"][0]
    lp = result.logprobs
    valid = ~torch.isnan(lp[..., 0])
    assert (result.target_ids[valid[:, 0]] == space).all()
    torch.testing.assert_close(result.target_logprobs[valid], lp[..., space][valid])
    ranks = (lp > lp[..., space:space + 1]).sum(-1)
    assert torch.equal(result.target_ranks[valid], ranks[valid])
    top = lp.nan_to_num(-math.inf).topk(3, dim=-1)
    assert torch.equal(result.top_ids[valid], top.indices[valid])
    assert result.top_tokens[0, 0, 0, 0] == tiny_llama.tokenizer.decode([int(top.indices[0, 0, 0, 0])])
    # the default target is the model's own prediction: rank 0 at the last layer
    default = logit_lens(tiny_llama, PROMPTS)
    assert (default.target_ranks[:, -1][valid[:, -1]] == 0).all()
    assert (default.target_ranks[:, 0][valid[:, 0]] > 0).any()
    frame = default.to_frame()
    assert len(frame) == int(valid[:, 0].sum()) * default.logprobs.shape[1]
    assert set(frame.columns) >= {"layer", "position", "token", "top_token", "target_rank"}


def test_positions_and_kept_logprobs(tiny_llama):
    full = logit_lens(tiny_llama, PROMPTS)
    last = logit_lens(tiny_llama, PROMPTS, positions=-1, keep_logprobs=False)
    assert last.logprobs is None and last.top_ids.shape[2] == 1
    assert last.positions.tolist() == [[full.positions[0].max()], [1]]
    assert torch.equal(last.top_ids[0, :, 0], full.top_ids[0, :, -1])
    assert torch.equal(last.top_ids[1, :, 0], full.top_ids[1, :, 1])
    some = logit_lens(tiny_llama, "Hello", positions=[0, -1])
    assert some.positions.tolist() == [[0, 4]]
    torch.testing.assert_close(some.logprobs[:, 1], full_lens_of(tiny_llama, "Hello")[:, 4])


def full_lens_of(lm, prompt):
    return logit_lens(lm, prompt).logprobs


def test_a_text_target_of_several_tokens_uses_its_first_with_a_warning(tiny_llama):
    with pytest.warns(UserWarning, match=r"target 'ab' is 2 tokens \['a', 'b'\]; using its first, 'a'"):
        result = logit_lens(tiny_llama, "Hi", target="ab")
    assert (result.target_ids == tiny_llama.tokenizer("a", add_special_tokens=False)["input_ids"][0]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logit_lens(tiny_llama, ["Hi", "Yo"], target=["a", 98])


def test_bfloat16_lens_is_the_models_logits():
    lm = tiny_model("llama")
    lm.model.to(torch.bfloat16)
    result = logit_lens(lm, "The capital of Spain is")
    logprobs, _ = model_logprobs(lm, ["The capital of Spain is"])
    torch.testing.assert_close(result.logprobs[-1], logprobs[0], atol=1e-5, rtol=0)
    assert np.isfinite(result.top_logprobs.numpy()).all()


@pytest.mark.slow
def test_smollm2_last_layer_is_its_logits_and_predicts_paris(default_lm):
    prompts = ["The capital of France is", "The Eiffel Tower is in the city of"]
    result = logit_lens(default_lm, prompts, positions=-1, keep_logprobs=True, target=" Paris")
    logprobs, _ = model_logprobs(default_lm, prompts)
    torch.testing.assert_close(result.logprobs[:, -1, 0], logprobs[:, -1], atol=1e-4, rtol=0)
    assert result.top_tokens[0, -1, 0, 0] == " Paris" and (result.target_ranks[:, -1, 0] == 0).all()
    assert (result.target_ranks[:, 5, 0] > 100).all()  # early layers do not know it yet
