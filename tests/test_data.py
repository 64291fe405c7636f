"""The facts loader and the known-facts filter."""

import json

import pytest
import torch

from nbtoolkit.data import FACT_FIELDS, filter_known, load_facts


def test_load_facts_has_romes_layout():
    facts = load_facts()
    assert len(facts) >= 300 and len({f["relation_id"] for f in facts}) >= 10
    assert all(set(FACT_FIELDS) <= set(f) for f in facts)
    assert all(f["subject"] in f["prompt"] for f in facts)
    assert facts[0]["prompt"] == "The capital of France is" and facts[0]["attribute"] == "Paris"


def test_load_facts_bad_path_and_bad_records(tmp_path):
    with pytest.raises(ValueError, match="no facts file at"):
        load_facts(tmp_path / "missing.json")
    path = tmp_path / "facts.json"
    path.write_text(json.dumps([{"subject": "France", "prompt": "The capital of France is"}]))
    with pytest.raises(ValueError, match=r"record 0 lacks the fields \['attribute'\]"):
        load_facts(path)


class FakeLM:
    """Predicts a fixed next token per prompt (vocabulary = the listed strings)."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.vocab = sorted(set(answers.values()))
        self.tokenizer = self
        self.calls = []

    def decode(self, ids):
        return self.vocab[ids[0]]

    def next_token_probs(self, prompts):
        self.calls.append(len(prompts))
        probs = torch.zeros(len(prompts), len(self.vocab))
        for row, prompt in enumerate(prompts):
            probs[row, self.vocab.index(self.answers[prompt])] = 1.0
        return probs


def test_filter_known_keeps_facts_whose_next_token_begins_the_attribute():
    facts = [dict(prompt="a", attribute="Paris"), dict(prompt="b", attribute="Berlin"),
             dict(prompt="c", attribute="Rome"), dict(prompt="d", attribute="Oslo"),
             dict(prompt="e", attribute="Tokyo")]
    lm = FakeLM({"a": " Par", "b": " Rome", "c": " Rome", "d": " ", "e": "Tokyo"})
    kept = filter_known(lm, facts, batch_size=2)
    assert [f["prompt"] for f in kept] == ["a", "c", "e"]
    assert lm.calls == [2, 2, 1]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        filter_known(lm, facts, batch_size=0)


@pytest.mark.slow
def test_filter_known_on_the_default_model(default_lm):
    facts = load_facts()[:12]  # capitals
    kept = filter_known(default_lm, facts, batch_size=6)
    assert facts[0] in kept  # "The capital of France is" -> " Paris"
    probs = default_lm.next_token_probs([f["prompt"] for f in kept])
    for fact, row in zip(kept, probs):
        assert fact["attribute"].startswith(default_lm.tokenizer.decode([int(row.argmax())]).strip())
