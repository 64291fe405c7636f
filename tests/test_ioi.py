"""The IOI and docstring tasks: prompts and corruptions align token by token in both embedded
models' tokenizers, every word is one token, the named positions are the names' tokens, the
corruptions change what they say and nothing else."""

import pytest
from transformers import AutoTokenizer

from nbtoolkit.core.loading import _embedded_cache
from nbtoolkit.core.sweeps import encode_pairs
from nbtoolkit.tasks import docstring, ioi

EMBEDDED = ["smollm2-135m-instruct", "gemma-3-270m"]


@pytest.fixture(scope="module", params=EMBEDDED)
def tokenizer(request):
    folder = _embedded_cache(request.param)
    if folder is None:
        pytest.skip(f"{request.param}'s GGUF package is not installed")
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("pool", ["NAMES", "PLACES", "OBJECTS"])
def test_every_ioi_word_is_one_token(tokenizer, pool):
    long = [w for w in getattr(ioi, pool)
            if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) != 1]
    assert not long, f"not one token with a leading space: {long}"


@pytest.mark.parametrize("pool", ["WORDS", "FILLER", "FUNCTIONS"])
def test_every_docstring_word_is_one_token(tokenizer, pool):
    long = [w for w in getattr(docstring, pool)
            if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) != 1]
    assert not long, f"not one token with a leading space: {long}"


CASES = [(ioi.ioi_prompts, c) for c in ioi.CORRUPTIONS] + \
    [(docstring.docstring_prompts, c) for c in docstring.CORRUPTIONS]


@pytest.mark.parametrize("make, corruption", CASES, ids=[c for _, c in CASES])
def test_pairs_align_token_by_token(tokenizer, make, corruption):
    data = make(30, corruption=corruption, seed=3)
    for base, source in zip(data.prompts, data.corrupted):
        assert len(tokenizer(base)["input_ids"]) == len(tokenizer(source)["input_ids"])


def test_named_positions_are_the_names(default_lm):
    data = ioi.ioi_prompts(12, seed=1)
    positions = data.positions(default_lm)
    for i, prompt in enumerate(data.prompts):
        tokens = default_lm.tokens(prompt)
        io, s = data.info[i]["io"], data.info[i]["s"]
        assert tokens[positions["IO"][i]].strip() == io
        assert tokens[positions["S1"][i]].strip() == s
        assert tokens[positions["S2"][i]].strip() == s
        assert positions["S1"][i] != positions["S2"][i]
        first = min(positions["IO"][i], positions["S1"][i])
        assert (positions["IO"][i] == first) == (data.info[i]["order"] == "ABBA")
    encode_pairs(default_lm, data.prompts, data.corrupted)  # one length per pair


def test_corruptions_say_what_they_promise():
    base = ioi.ioi_prompts(30, corruption="abc", seed=2)
    flip = ioi.ioi_prompts(30, corruption="flip", seed=2)
    swap = ioi.ioi_prompts(30, corruption="swap", seed=2)
    assert base.prompts == flip.prompts == swap.prompts  # one seed, one set of base prompts
    assert [i["order"] for i in base.info[:4]] == ["ABBA", "BABA", "ABBA", "BABA"]
    for i, info in enumerate(base.info):
        io, s = info["io"], info["s"]
        prompt = base.prompts[i]
        assert prompt.count(s) == 2 and prompt.count(io) == 1 and base.correct[i] == " " + io
        assert io not in base.corrupted[i] and s not in base.corrupted[i]  # three new names
        assert flip.corrupted[i].count(io) == 2 and flip.corrupted[i].count(s) == 1
        assert swap.corrupted[i].count(s) == 2 and swap.corrupted[i] != prompt
        assert swap.corrupted[i].index(io) != prompt.index(io)  # the first clause swapped
    doc = docstring.docstring_prompts(5, corruption="random_doc")
    for prompt, corrupted, answer in zip(doc.prompts, doc.corrupted, doc.correct):
        assert prompt.endswith("    :param") and answer.strip() in prompt.split("\n")[0]
        assert prompt.split("\n")[0] == corrupted.split("\n")[0]  # the signature unchanged
        assert prompt != corrupted
