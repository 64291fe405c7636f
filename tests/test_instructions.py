"""Tests for nbtoolkit.data.instructions and data/instructions/prompts.jsonl."""

import collections
import json
from pathlib import Path

import pytest

from nbtoolkit.data.instructions import (
    CHECKS,
    DEFAULT_PROMPTS_PATH,
    PARAMS,
    check_response,
    count_words,
    failed_checks,
    load_instruction_prompts,
    parse_instruct_context,
    split_sentences,
)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "data" / "instructions" / "README.md"

# (check, response that passes, response that fails) -- one row per kind at least.
CASES = [
    ({"kind": "all_caps"}, "THE OCEAN IS VAST, 100% BLUE!", "The ocean is vast."),
    ({"kind": "all_caps"}, "  HELLO 123  ", "42"),  # needs at least one letter
    ({"kind": "all_lowercase"}, "the cat sat on the mat.", "the Cat sat on the mat."),
    ({"kind": "quoted"}, '"Dream big."', "Dream big."),
    ({"kind": "quoted"}, " \u201cDream big.\u201d ", '"Dream big.'),
    ({"kind": "no_commas"}, "I sleep late and read books.", "I sleep, then I read."),
    ({"kind": "json"}, '["red", "green", "blue"]', "red, green, blue"),
    ({"kind": "json"}, '```json\n{"a": 1}\n```', "{'a': 1}"),
    ({"kind": "json_keys", "keys": ["name", "age"]}, '{"name": "Ann", "age": 30}', '{"name": "Ann"}'),
    ({"kind": "json_keys", "keys": ["name"]}, '{"name": "Ann"}', '["name"]'),
    ({"kind": "bullet_points", "n": 3}, "Tips:\n- Sleep\n- Eat well\n* Walk", "- Sleep\n- Eat well"),
    ({"kind": "bullet_points", "n": 2}, "- a\n- b", "**Bold** intro\n- a\n- b\n- c"),
    ({"kind": "numbered_list", "n": 3}, "1. Boil water\n2) Add tea\n3. Wait", "1. Boil water\n2. Add tea"),
    ({"kind": "n_paragraphs", "n": 2}, "Dogs are loyal.\n\nThey love walks.", "Dogs are loyal. They love walks."),
    ({"kind": "one_word"}, "  Paris. ", "Paris, France"),
    ({"kind": "one_word"}, "**Jupiter**", "The answer is Jupiter"),
    ({"kind": "max_words", "n": 5}, "Blue is calm and deep.", "Blue is calm, deep, and cool."),
    ({"kind": "max_words", "n": 5}, "Blue.", "   "),
    ({"kind": "min_words", "n": 4}, "Sleep helps us rest.", "Sleep helps."),
    ({"kind": "n_sentences", "n": 2}, "The sun set. Night came!", "The sun set."),
    ({"kind": "n_sentences", "n": 1}, "It costs 3.5 dollars.", "It costs 3. It is cheap."),
    ({"kind": "max_sentences", "n": 2}, "I like pizza. It is tasty.", "I like pizza. It is tasty. I eat it daily."),
    ({"kind": "starts_with", "word": "Today"}, '"Today the sun shines."', "The sun shines today."),
    ({"kind": "starts_with", "word": "Cats"}, "cats are curious.", "Catsup is a sauce."),
    ({"kind": "starts_with", "word": "A dog"}, "A dog is a pet.", "A doghouse is small."),
    ({"kind": "ends_with", "text": "See you soon"}, "Thanks for everything. See you soon!", "See you soon, my friend."),
    ({"kind": "ends_with", "text": "?"}, "Are you coming?", "You are coming."),
    ({"kind": "ends_with", "text": "luck"}, "Work hard. Good luck.", "Work hard. Good plucky luckless."),
    ({"kind": "ends_with", "text": "Goodbye!"}, "It was fun. Goodbye!", "It was fun. Goodbye."),
    ({"kind": "contains", "word": "heart"}, "Exercise keeps your Heart strong.", "Exercise helps the hearts."),
    ({"kind": "not_contains", "word": "water"}, "The sea is vast and blue.", "The sea is full of Water."),
    ({"kind": "not_contains", "word": "book"}, "A library has bookshelves.", ""),
    ({"kind": "same_words", "text": "The Cat Sat On The Mat."}, "the cat sat on the mat", "the cat sat on a mat."),
    ({"kind": "answer_in", "options": ["yes", "no"]}, "Yes, it is.", "Maybe."),
    ({"kind": "answer_in", "options": ["negative"]}, "  **NEGATIVE**. ", "The sentiment is negative."),
    ({"kind": "answer_in", "options": ["spam"]}, "Spam", "not spam"),
    ({"kind": "number"}, " 1,250. ", "1,250 apples"),
    ({"kind": "number"}, "-3.5", "three"),
    ({"kind": "equals_number", "value": 56}, "56", "54"),
    ({"kind": "equals_number", "value": 0.75}, "The answer is 0.75.", "There is no answer."),
    ({"kind": "equals_number", "value": 1250}, "1,250", "125"),
]


@pytest.mark.parametrize("check,good,bad", CASES, ids=[f"{c['kind']}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_each_check_passes_and_fails(check, good, bad):
    assert check_response(good, [check]) is True
    assert check_response(bad, [check]) is False
    assert failed_checks(bad, [check]) == [check["kind"]]


def test_every_registered_kind_is_tested():
    assert {c["kind"] for c, _, _ in CASES} == set(CHECKS)
    assert set(PARAMS) == set(CHECKS)
    assert len(CHECKS) >= 10


def test_failed_checks_lists_only_failures_in_order():
    checks = [{"kind": "one_word"}, {"kind": "all_caps"}, {"kind": "answer_in", "options": ["paris"]}]
    assert failed_checks("PARIS", checks) == []
    assert failed_checks("paris", checks) == ["all_caps"]
    assert failed_checks("LONDON IS BIG", checks) == ["one_word", "answer_in"]
    assert check_response("Paris!", checks) is False


def test_helpers_count_words_and_sentences():
    assert count_words("- Don't stop, self-driving cars 42!") == 5
    assert split_sentences("Hi there. How are you? Fine!") == ["Hi there.", "How are you?", "Fine!"]
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_unknown_kind_raises_with_name_and_valid_kinds():
    with pytest.raises(ValueError, match="shouting") as err:
        check_response("hi", [{"kind": "shouting"}])
    assert "all_caps" in str(err.value) and "one_word" in str(err.value)


def test_missing_and_unexpected_parameters_raise():
    with pytest.raises(ValueError, match="max_words.*n"):
        check_response("hi", [{"kind": "max_words"}])
    with pytest.raises(ValueError, match="options"):
        failed_checks("yes", [{"kind": "answer_in"}])
    with pytest.raises(ValueError, match="wrod"):
        check_response("hi", [{"kind": "contains", "word": "hi", "wrod": "hi"}])
    with pytest.raises(ValueError):
        check_response("hi", [])


def test_parse_instruct_context():
    spans, ctx = parse_instruct_context("Summarize this|||Use five words&&&The cat sat.")
    assert spans == ["Summarize this", "Use five words"] and ctx == "The cat sat."
    assert parse_instruct_context("Answer in all capital letters&&&") == (["Answer in all capital letters"], "")
    with pytest.raises(ValueError, match="&&&"):
        parse_instruct_context("Summarize this|||Use five words")
    with pytest.raises(ValueError, match="instruction span"):
        parse_instruct_context("&&&some context")


# ------------------------------------------------------------------ dataset
@pytest.fixture(scope="module")
def records():
    return load_instruction_prompts()


def test_dataset_loads_and_validates(records):
    assert DEFAULT_PROMPTS_PATH.is_file()
    assert len(records) >= 170
    assert len({r["id"] for r in records}) == len(records)
    assert len({r["prompt"] for r in records}) == len(records)
    assert load_instruction_prompts(DEFAULT_PROMPTS_PATH) == records


def test_every_span_and_context_is_verbatim_in_prompt(records):
    n_context = 0
    for r in records:
        spans, ctx = parse_instruct_context(r["instruct_context"])
        assert spans, r["id"]
        for span in spans:
            assert span in r["prompt"], (r["id"], span)
        if ctx:
            n_context += 1
            assert ctx in r["prompt"], (r["id"], ctx)
            assert all(ctx not in s for s in spans), r["id"]
    assert 0.15 <= n_context / len(records) <= 0.40


def test_dataset_shape(records):
    kinds = {c["kind"] for r in records for c in r["checks"]}
    assert len(kinds) >= 10 and kinds <= set(CHECKS)
    groups = collections.Counter(r["group"] for r in records)
    assert {"format", "length", "lexical", "qa", "math", "classification", "rewrite"} <= set(groups)
    words = [len(r["prompt"].split()) for r in records]
    assert max(words) <= 60
    assert sum(w <= 30 for w in words) / len(words) >= 0.8
    first_words = {r["prompt"].split()[0].lower() for r in records}
    for verb in ["write", "explain", "summarize", "translate", "classify", "describe", "list",
                 "give", "tell", "name", "rewrite", "repeat", "generate", "identify"]:
        assert verb in first_words, verb


def test_reference_responses_are_labelled_correctly(records):
    by_prompt = {r["prompt"]: r["checks"] for r in records}
    cap = by_prompt["Write a one-sentence description of the ocean. Answer in all capital letters."]
    assert check_response("THE OCEAN IS A VAST BODY OF SALT WATER.", cap)
    assert not check_response("The ocean is a vast body of salt water.", cap)
    fr = by_prompt["What is the capital of France? Answer with one word."]
    assert check_response("Paris.", fr)
    assert not check_response("The capital of France is Paris.", fr)
    assert not check_response("Lyon", fr)
    mul = by_prompt["What is 7 times 8? Answer with only the number."]
    assert check_response("56", mul) and not check_response("7 times 8 is 56.", mul)


def test_loader_rejects_bad_records_naming_the_id(tmp_path):
    good = {"id": "x-1", "group": "format", "prompt": "Say hi. Use capitals.",
            "instruct_context": "Say hi|||Use capitals&&&", "checks": [{"kind": "all_caps"}]}
    bad_cases = [
        ({"instruct_context": "Say hello|||Use capitals&&&"}, "not found verbatim"),
        ({"instruct_context": "Say hi|||Use capitals"}, "&&&"),
        ({"checks": [{"kind": "yell"}]}, "yell"),
        ({"checks": []}, "non-empty"),
    ]
    for change, msg in bad_cases:
        path = tmp_path / "p.jsonl"
        path.write_text(json.dumps({**good, **change, "id": "x-bad"}) + "\n")
        with pytest.raises(ValueError, match="x-bad") as err:
            load_instruction_prompts(path)
        assert msg in str(err.value)
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "prompt": "Other. Say hi. Use capitals."}) + "\n")
    with pytest.raises(ValueError, match="duplicate id"):
        load_instruction_prompts(path)


def test_readme_counts_match_data(records):
    text = README.read_text(encoding="utf-8")
    assert f"**{len(records)} records**" in text
    for group, n in collections.Counter(r["group"] for r in records).items():
        assert f"| `{group}` | {n} |" in text, group
    for kind, n in collections.Counter(c["kind"] for r in records for c in r["checks"]).items():
        assert f"| `{kind}` | {n} |" in text, kind
