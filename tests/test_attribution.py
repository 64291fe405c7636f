"""Attribution (Wu et al. 2310.00492): the three scoring steps by hand, gradients vs finite differences."""

import math

import numpy as np
import pytest
import torch

import nbtoolkit as nb
from nbtoolkit.instruction_shift import (importance_density, input_output_attribution,
                                         instruction_mask, instruction_score, quantize_attribution)
from nbtoolkit.viz.instruction_shift import attribution_html, density_html


@pytest.fixture(scope="module")
def tiny():
    lm = nb.tiny_model("llama", seed=1)
    lm.model.double()
    return lm


# ------------------------------------------------------------------ the three steps, by hand

def test_quantize_hand_computed():
    scores = [[1.0, -2.0], [0.5, 4.0], [0.26, 1.0]]
    # column 0: relu [1, .5, .26] / 1 -> ceil(10, 5, 2.6); column 1: [0, 4, 1] / 4 -> ceil(0, 10, 2.5)
    expected = [[10, 0], [5, 10], [3, 3]]
    assert quantize_attribution(scores).tolist() == expected
    assert quantize_attribution(torch.tensor(scores)).tolist() == expected
    # levels=4: column 0 -> ceil(4, 2, 1.04) = 4, 2, 2
    assert quantize_attribution(scores, levels=4)[:, 0].tolist() == [4, 2, 2]


def test_quantize_non_positive_column_is_zero():
    out = quantize_attribution([[-1.0, 2.0], [-3.0, 1.0]])
    assert out.tolist() == [[0, 10], [0, 5]]


def test_density_hand_computed():
    levels = [[10, 8, 0], [9, 7, 10], [3, 3, 3], [8, 8, 8]]
    # b=7 zeroes every level <= 7 (the 7 in row 1 included); S = L1 / L4 per row
    s0 = 18 / (10 ** 4 + 8 ** 4) ** 0.25
    s1 = 19 / (9 ** 4 + 10 ** 4) ** 0.25
    s3 = 24 / (3 * 8 ** 4) ** 0.25
    expected = np.array([s0, s1, 0.0, s3]) / s3
    np.testing.assert_allclose(importance_density(levels), expected, rtol=1e-12)
    # b=2 keeps the 3s: row 2 = 9 / (3 * 81) ** .25, row 1 keeps its 7
    s1b = 26 / (9 ** 4 + 7 ** 4 + 10 ** 4) ** 0.25
    got = importance_density(levels, b=2)
    s2b = 9 / (3 * 3 ** 4) ** 0.25
    top = max(s0, s1b, s2b, s3)
    np.testing.assert_allclose(got, np.array([s0, s1b, s2b, s3]) / top, rtol=1e-12)


def test_density_all_below_threshold_is_zero():
    assert importance_density([[1, 2], [7, 7]]).tolist() == [0.0, 0.0]


def test_instruction_score_hand_computed():
    density = np.array([1.0, 0.5, 0.2, 0.0])
    assert instruction_score(density, np.array([True, True, False, False])) == pytest.approx(1.5 / 2)
    assert instruction_score(density, np.array([False, False, True, False])) == \
        pytest.approx(0.2 / math.log2(3))


def test_instruction_mask_by_character_offsets():
    prompt = "Say hi. Answer in caps."
    offsets = [(0, 3), (3, 6), (6, 7), (7, 14), (14, 17), (17, 22), (22, 23)]
    # tokens "Say", " hi", ".", " Answer", " in", " caps", "."
    assert instruction_mask(prompt, offsets, ["Answer in caps"]).tolist() == \
        [False, False, False, True, True, True, False]
    assert instruction_mask(prompt, offsets, ["Say hi", "caps"]).tolist() == \
        [True, True, False, False, False, True, False]


def test_step_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        quantize_attribution([1.0, 2.0])
    with pytest.raises(ValueError, match="levels"):
        quantize_attribution([[1.0]], levels=0)
    with pytest.raises(ValueError, match="NaN"):
        quantize_attribution([[float("nan")]])
    with pytest.raises(ValueError, match="p must"):
        importance_density([[1]], p=1)
    with pytest.raises(ValueError, match="non-negative"):
        importance_density([[-1]])
    with pytest.raises(ValueError, match="shape"):
        instruction_score(np.ones(3), np.ones(2, dtype=bool))
    with pytest.raises(TypeError, match="boolean"):
        instruction_score(np.ones(2), np.array([1, 0]))
    with pytest.raises(ValueError, match="not in the prompt"):
        instruction_mask("Say hi.", [(0, 3)], ["Shout"])
    with pytest.raises(TypeError, match="list of strings"):
        instruction_mask("Say hi.", [(0, 3)], "Say")


# ------------------------------------------------------------------ the gradient itself

def _prob(lm, ids, embeds, pos):
    return lm.model(inputs_embeds=embeds).logits[0, pos - 1].softmax(-1)[ids[pos]]


@pytest.mark.parametrize("method", ["batched", "copies"])
def test_attribution_matches_finite_differences(tiny, method):
    prompt, response = "Say hi.", "ok go"
    attr = input_output_attribution(tiny, prompt, response, batch_size=4, method=method)
    ids = tiny.tokenizer(prompt + " " + response)["input_ids"]
    n, m = len(attr.prompt_tokens), len(attr.response_tokens)
    assert attr.shape == (n, m) == (7, 6)  # byte tokens; the response starts with the space
    assert "".join(attr.prompt_tokens) == prompt
    embeds = tiny.model.get_input_embeddings()(torch.tensor([ids])).detach()
    h = 1e-3  # central differences: error O(h^2); attention softmax runs in float32
    fd = torch.zeros(n, m, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):
            step = torch.zeros_like(embeds)
            step[0, i] = embeds[0, i]  # d/de p(E + e * E_i) = sum_d dp/dE_i,d * E_i,d
            for j in range(m):
                pos = n + j
                fd[i, j] = (_prob(tiny, ids, embeds + h * step, pos)
                            - _prob(tiny, ids, embeds - h * step, pos)) / (2 * h)
    assert fd.abs().max() > 1e-6
    torch.testing.assert_close(attr.scores, fd, rtol=2e-3, atol=2e-3 * float(fd.abs().max()))


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_methods_batch_sizes_and_truncation_agree(family):
    lm = nb.tiny_model(family, seed=5)
    lm.model.double()
    a = input_output_attribution(lm, "  Name a fruit. ", " apple pie ", batch_size=3)
    b = input_output_attribution(lm, "Name a fruit.", "apple pie", batch_size=16)
    c = input_output_attribution(lm, "Name a fruit.", "apple pie", max_response_tokens=4)
    d = input_output_attribution(lm, "Name a fruit.", "apple pie", method="copies", batch_size=3)
    assert b.scores.abs().max() > 0
    for other in (a, d):
        torch.testing.assert_close(other.scores, b.scores, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(c.scores, b.scores[:, :4], rtol=1e-7, atol=1e-12)
    assert c.response_tokens == b.response_tokens[:4]


def test_attribution_skips_bos_and_locates_instruction():
    from tokenizers import processors

    lm = nb.tiny_model("llama", seed=2)
    lm.model.double()
    plain = input_output_attribution(lm, "Be brief. Hi", "yo")
    tok = lm.tokenizer
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    assert tok("a")["input_ids"][0] == tok.bos_token_id
    with_bos = input_output_attribution(lm, "Be brief. Hi", "yo")
    assert with_bos.prompt_tokens == plain.prompt_tokens  # BOS is not a prompt token
    assert not torch.allclose(with_bos.scores, plain.scores)  # ... but it is in the forward
    mask = with_bos.instruction_mask(["Be brief"])
    assert mask.tolist() == [True] * 8 + [False] * 4  # "Be brief" = 8 bytes; ". Hi" = 4
    assert with_bos.instruction_score(["Be brief"]) == pytest.approx(
        instruction_score(with_bos.density(), mask))


def test_attribution_leaves_model_as_found(tiny):
    model = tiny.model
    model.train()
    model.model.layers[0].eval()
    model.model.layers[1].mlp.up_proj.weight.requires_grad_(False)
    before = {name: m.training for name, m in model.named_modules()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        with torch.no_grad():  # works inside no_grad too
            attr = input_output_attribution(tiny, "Say hi.", "ok go")
        assert {name: m.training for name, m in model.named_modules()} == before
        assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
        assert all(p.grad is None for p in model.parameters())
        model.eval()
        torch.testing.assert_close(attr.scores, input_output_attribution(tiny, "Say hi.", "ok go").scores)
    finally:
        model.eval()
        model.model.layers[1].mlp.up_proj.weight.requires_grad_(True)


def test_attribution_bad_inputs(tiny):
    with pytest.raises(ValueError, match="non-empty"):
        input_output_attribution(tiny, "Say hi.", "   ")
    with pytest.raises(TypeError, match="strings"):
        input_output_attribution(tiny, "Say hi.", 3)
    with pytest.raises(ValueError, match="batch_size"):
        input_output_attribution(tiny, "Say hi.", "ok", batch_size=0)
    with pytest.raises(ValueError, match="method"):
        input_output_attribution(tiny, "Say hi.", "ok", method="loop")
    with pytest.raises(ValueError, match="max_response_tokens"):
        input_output_attribution(tiny, "Say hi.", "ok", max_response_tokens=0)


def test_html_view(tiny):
    attr = input_output_attribution(tiny, "<b> & go", "ok")
    page = density_html(attr, ["go"])
    assert "&lt;" in page and "&amp;" in page and ">&<" not in page  # tokens are escaped
    assert page.count("<span") == len(attr.prompt_tokens) == 8
    assert page.count("underline") == 2  # the byte tokens "g" and "o"
    with pytest.raises(ValueError, match="one per token"):
        attribution_html(["a", "b"], [1.0])


def test_to_frame(tiny):
    attr = input_output_attribution(tiny, "Say hi.", "ok then")
    frame = attr.to_frame()
    n_prompt, n_response = attr.shape
    assert len(frame) == n_prompt * n_response
    assert list(frame.columns) == ["prompt_index", "prompt_token", "response_index",
                                   "response_token", "score"]
    row = frame.iloc[n_response + 1]  # prompt token 1, response token 1
    assert (row.prompt_index, row.response_index) == (1, 1)
    assert row.prompt_token == attr.prompt_tokens[1] and row.response_token == attr.response_tokens[1]
    assert row.score == float(attr.scores[1, 1])
