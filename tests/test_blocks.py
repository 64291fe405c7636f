"""run_blocks: a forward over a slice of blocks, given the residual stream entering it, equals
the whole forward (with and without a KV cache); the model comes back as it was."""

import pytest
import torch

from conftest import DECODERS, hook_count
from nbtoolkit import capture, tiny_model
from nbtoolkit.core.kv_cache import cache_kwarg, cache_of
from nbtoolkit.core.blocks import body, run_blocks


@pytest.mark.parametrize("family", DECODERS)
def test_slices_of_blocks_equal_the_whole_forward(family):
    lm = tiny_model(family, seed=1)
    L = lm.n_layers
    ids = torch.randint(3, 200, (2, 12))  # 12 tokens: longer than gemma3's sliding window of 8
    sites = ["embed"] + [f"layer.{l}" for l in range(L)]
    with torch.no_grad(), capture(lm, sites) as acts:
        full = lm.model(input_ids=ids).logits
    entering = lambda start: acts[sites[start]]  # residual stream entering block `start`
    for start in range(L + 1):
        with torch.no_grad(), run_blocks(lm, start):
            out = lm.model(inputs_embeds=entering(start), use_cache=False).logits
        torch.testing.assert_close(out, full, atol=1e-5, rtol=0)
    for start, end in [(0, 1), (1, L - 1), (L - 1, L)]:  # a middle slice through the body
        with torch.no_grad(), capture(lm, [f"layer.{end - 1}"]) as mid, run_blocks(lm, start, end):
            body(lm)(inputs_embeds=entering(start), use_cache=False)
        torch.testing.assert_close(mid[f"layer.{end - 1}"], acts[f"layer.{end - 1}"], atol=1e-5,
                                   rtol=0)
    # with the KV cache of positions < 9 from a whole forward: positions 9.. from block 1 on
    with torch.no_grad():
        cache = cache_of(lm.model(input_ids=ids[:, :9], use_cache=True))
        with run_blocks(lm, 1):
            out = lm.model(inputs_embeds=acts["layer.0"][:, 9:], **cache_kwarg(lm.model, cache),
                           use_cache=True).logits
    torch.testing.assert_close(out, full[:, 9:], atol=1e-5, rtol=0)


def test_model_is_put_back_and_bad_slices_refused():
    lm = tiny_model("gemma3", seed=1)
    blocks, types = list(lm.model.model.layers), list(lm.model.config.layer_types)
    with pytest.raises(RuntimeError, match="boom"), run_blocks(lm, 2, 3):
        assert list(lm.model.model.layers) == blocks[2:3]
        assert lm.model.config.layer_types == types[2:3]
        raise RuntimeError("boom")
    assert list(lm.model.model.layers) == blocks and lm.model.config.layer_types == types
    for start, end in [(lm.n_layers + 1, None), (2, 1), (-1, 2)]:
        with pytest.raises(ValueError, match="run_blocks needs 0 <= start <= end"):
            with run_blocks(lm, start, end):
                pass
    gpt2 = tiny_model("gpt2", seed=1)
    before = hook_count(gpt2.model)
    with run_blocks(gpt2, 1):
        assert hook_count(gpt2.model) > before  # the zeroed position embedding
    with pytest.raises(RuntimeError, match="boom"), run_blocks(gpt2, 1):
        raise RuntimeError("boom")
    assert hook_count(gpt2.model) == before and list(gpt2.model.transformer.h)[0] is not None
