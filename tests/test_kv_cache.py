"""The KV cache helpers work under the installed transformers' name for the cache."""

import torch

from nbtoolkit import tiny_model
from nbtoolkit.core.kv_cache import cache_in, cache_kwarg, cache_of


def test_a_cached_prefix_continues_like_the_whole_forward():
    lm = tiny_model("llama", seed=2)
    ids = torch.randint(0, 200, (2, 11))
    with torch.no_grad():
        full = lm.model(input_ids=ids).logits
        cache = cache_of(lm.model(input_ids=ids[:, :6], use_cache=True))
        assert cache is not None and cache.get_seq_length() == 6
        rest = lm.model(input_ids=ids[:, 6:], **cache_kwarg(lm.model, cache)).logits
    torch.testing.assert_close(rest, full[:, 6:], atol=1e-5, rtol=0)


def test_the_cache_is_found_under_either_name():
    cache = object()
    assert cache_in({"cache": cache}) is cache
    assert cache_in({"past_key_values": cache, "use_cache": True}) is cache
    assert cache_in({"use_cache": True}) is None
    assert cache_of({"logits": 0, "past_key_values": cache}) is cache
    assert cache_of({"logits": 0}) is None
