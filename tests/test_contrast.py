"""Contrast-pair loaders: local JSON datasets, templates, balanced subsampling, clear errors."""

import json

import numpy as np
import pytest

from nbtoolkit.data import contrast, data_path
from nbtoolkit.data.contrast import ContrastSet, balanced_subsample, load_contrast


def test_local_datasets_are_listed():
    names = contrast.local_datasets()
    assert {"capitals", "arithmetic", "animals", "comparisons", "sentiment"} <= set(names)
    assert {"imdb", "amazon_polarity", "boolq"} <= set(contrast.available_datasets())


def test_pairs_follow_the_schema():
    spec = json.loads(data_path("contrast", "capitals.json").read_text())
    sets = load_contrast("capitals")
    assert len(sets) == len(spec["templates"])
    first = sets[1]
    assert first.template == spec["templates"][1] and first.template_id == 1
    assert len(first) == len(spec["examples"])
    i = 5
    example = spec["examples"][first.row_ids[i]]
    prompt = spec["templates"][1].format(**example)
    assert first.pairs[i] == (prompt + " " + spec["choices"][1], prompt + " " + spec["choices"][0])
    assert first.labels[i] == example["label"]


def test_same_examples_for_every_template_and_balanced_subsample():
    sets = load_contrast("arithmetic", templates=[0, 2], n=50, seed=3)
    assert [s.template_id for s in sets] == [0, 2]
    np.testing.assert_array_equal(sets[0].row_ids, sets[1].row_ids)
    assert len(sets[0]) == 50 and sets[0].labels.sum() == 25
    again = load_contrast("arithmetic", templates=0, n=50, seed=3)[0]
    np.testing.assert_array_equal(again.row_ids, sets[0].row_ids)
    other = load_contrast("arithmetic", templates=0, n=50, seed=4)[0]
    assert not np.array_equal(other.row_ids, sets[0].row_ids)
    assert sets[0].fingerprint() != sets[1].fingerprint()
    assert sets[0].fingerprint() == again.fingerprint()


def test_balanced_subsample_by_hand():
    labels = np.array([0] * 10 + [1] * 4)
    idx = balanced_subsample(labels, 6, seed=0)
    assert len(set(idx)) == 6 and labels[idx].sum() == 3
    idx = balanced_subsample(labels, 12, seed=0)  # only 4 ones: the rest are zeros
    assert labels[idx].sum() == 4 and len(idx) == 12
    assert sorted(balanced_subsample(labels, None)) == list(range(14))


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown contrast dataset 'capitol'.*'capitals'.*Available"):
        load_contrast("capitol")
    with pytest.raises(TypeError):
        load_contrast(3)


def test_bad_templates():
    with pytest.raises(ValueError, match="templates 0..3"):
        load_contrast("animals", templates=[7])
    with pytest.raises(TypeError, match="by index"):
        load_contrast("animals", templates=["first"])


def test_custom_folder(tmp_path):
    spec = {"name": "toy", "choices": ["no", "yes"], "templates": ["Is {x} odd?"],
            "examples": [{"x": i, "label": i % 2} for i in range(10)]}
    (tmp_path / "toy.json").write_text(json.dumps(spec))
    (s,) = load_contrast("toy", folder=tmp_path, n=4)
    assert isinstance(s, ContrastSet) and len(s) == 4
    assert all(p[0].endswith(" yes") and p[1].endswith(" no") for p in s.pairs)
    (tmp_path / "broken.json").write_text(json.dumps({"choices": ["a", "b"]}))
    with pytest.raises(ValueError, match="missing key 'templates'"):
        load_contrast("broken", folder=tmp_path)


def test_hub_dataset_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="could not load 'imdb' from the Hugging Face hub"):
        load_contrast("imdb", n=10)


def test_hub_templates_format():
    for name, info in contrast.HF_DATASETS.items():
        assert len(info["templates"]) >= 3
        row = {k: "x" for k in [*info["fields"], "choice1", "choice2"]}  # binarized: both choices
        for t in info["templates"]:
            assert t.format(**row) and not t.endswith(" ")
