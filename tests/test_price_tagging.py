"""Training the price tagger with das.fit: the warm-up + cosine schedule, one step against a
hand-written AdamW step (on the bare answer and on answer + reason), logging, determinism and
argument checks; the explained training text."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbtoolkit.das import as_columns, fit
from nbtoolkit.tasks import price_tagging as pt


@pytest.fixture(scope="module")
def small():
    lm = pt.tiny_model(n_layers=1, d_model=16, seed=0)
    return lm, pt.factual_dataset(lm.tokenizer, 32, seed=0)


def test_one_training_step_is_one_adamw_step_on_the_whole_batch(small):
    lm, data = small
    reference = copy.deepcopy(lm.model)
    columns = as_columns(data)
    # by hand: full batch (the mean loss ignores the order), lr factor 1 (no warm-up: the cosine
    # schedule starts at 1)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-2, betas=(0.9, 0.98),
                                  weight_decay=0.01)
    reference.train()
    logits = reference(input_ids=columns["base"]).logits[:, -1]
    F.cross_entropy(logits.float(), columns["labels"]).backward()
    optimizer.step()

    trained = copy.deepcopy(lm)
    history = fit(trained, data, epochs=1, batch_size=32, lr=1e-2, weight_decay=0.01,
                  betas=(0.9, 0.98), warmup=0.0, decay="cosine", progress=False)
    assert list(history.step) == [1]
    for (name, p), q in zip(trained.model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    assert not trained.model.training  # restored (tiny_model returns it in eval mode)


def test_fit_logs_accuracy_is_deterministic_and_checks_its_arguments(small):
    lm, data = small
    runs = [fit(copy.deepcopy(lm), data, epochs=1, batch_size=8, eval_data=data, log_every=2,
                seed=3, warmup=0.25, decay="cosine", progress=False) for _ in range(2)]
    assert list(runs[0].step) == [1, 2, 3, 4]
    assert runs[0].accuracy.notna().tolist() == [False, True, False, True]
    assert runs[0].equals(runs[1])
    with pytest.raises(ValueError, match="batch_size must be in 1..32"):
        fit(copy.deepcopy(lm), data, batch_size=64, progress=False)
    with pytest.raises(ValueError, match="decay must be 'linear' or 'cosine'"):
        fit(copy.deepcopy(lm), data, batch_size=8, decay="exp", progress=False)


def test_where_z_names_the_side_of_the_bracket_and_agrees_with_the_causal_model():
    assert pt.where_z([100, 100, 100, 100], [400, 400, 400, 400], [99, 100, 400, 401]).tolist() == \
        ["below", "inside", "inside", "above"]
    prices = pt.sample_prices(2000, np.random.default_rng(0))
    where = pt.where_z(prices["X"], prices["Y"], prices["Z"])
    assert set(where) == set(pt.SIDES)
    assert ((where == "inside") == pt.causal_model().output_of(prices)).all()


def test_explained_dataset_answers_then_gives_the_reason():
    tok = pt.tokenizer()
    facts, explained = pt.factual_dataset(tok, 60, seed=4), pt.explained_dataset(tok, 60, seed=4)
    assert explained["X"] == facts["X"] and explained["Z"] == facts["Z"]
    sides = pt.where_z(facts["X"], facts["Y"], facts["Z"])
    assert set(sides) == set(pt.SIDES)
    for ids, labels, fact, side in zip(explained["input_ids"], explained["labels"],
                                       facts["input_ids"], sides):
        assert ids[:32] == fact and len(ids) == len(labels)
        assert labels[:31] == [-100] * 31
        assert labels[31] == pt.answer_ids(tok)[side == "inside"]  # the answer, as in facts
        said = [t for t in labels[31:] if t != -100]
        assert said[-1] == tok.eos_token_id
        assert tok.decode(said[:-1]).replace(" ,", ",").replace(" .", ".") == pt.RESPONSES[side]
        # each labelled token is the next input token (a causal LM's targets), padding unlabelled
        assert all(labels[i] == ids[i + 1] for i in range(31, 31 + len(said) - 1))
        assert all(t == tok.pad_token_id and l == -100
                   for t, l in zip(ids[31 + len(said):], labels[31 + len(said):]))
    # prompts of different lengths: left-padded with a mask that covers the reply
    ragged = pt.explained_dataset(_Ragged(), 8, seed=4)
    masks = ragged["attention_mask"]
    assert len({len(i) for i in ragged["input_ids"]}) == 1 and masks[0][0] == 1
    assert all(m[:1] == [0] and m[1:] == [1] * (len(m) - 1) for m in masks[1:])
    for labels in ragged["labels"]:  # every prompt now ends at position 32: the answer is labelled there
        assert labels[:32] == [-100] * 32 and labels[32] in pt.answer_ids(tok)


class _Ragged:
    """The word-level tokenizer, but the first text of a batch gets one token more."""

    def __init__(self):
        self.inner = pt.tokenizer()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, text, **kwargs):
        out = self.inner(text, **kwargs)
        if isinstance(text, list):
            out["input_ids"][0] = [self.inner.unk_token_id] + out["input_ids"][0]
        return out


def test_fit_on_explained_text_is_the_mean_cross_entropy_over_labelled_positions(small):
    lm, _ = small
    data = pt.explained_dataset(lm.tokenizer, 16, seed=0)
    ids, labels = torch.tensor(data["input_ids"]), torch.tensor(data["labels"])
    reference = copy.deepcopy(lm.model)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.0)
    reference.train()
    logits = reference(input_ids=ids).logits
    picked = labels != -100
    assert picked.sum(1).min() >= 3  # the answer, at least one reason token, end-of-sequence
    expected = F.cross_entropy(logits[picked], labels[picked])
    expected.backward()
    optimizer.step()

    trained = copy.deepcopy(lm)
    history = fit(trained, data, epochs=1, batch_size=16, lr=1e-2, progress=False)
    assert history.loss[0] == pytest.approx(expected.item(), rel=1e-5)
    for (name, p), q in zip(trained.model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_boundary_cosine_tells_one_outside_feature_from_two_boundaries():
    prices = pt.sample_prices(600, np.random.default_rng(2))
    side = pt.where_z(prices["X"], prices["Y"], prices["Z"])
    g = np.random.default_rng(3)
    noise = 0.1 * g.standard_normal((600, 8))
    e = np.eye(8)
    two_bits = noise + np.outer(side == "below", e[0]) + np.outer(side == "above", e[1])
    one_feature = noise + np.outer(side != "inside", e[0])
    line = noise + np.outer((side == "above").astype(float) - (side == "below"), e[0])
    args = prices["X"], prices["Y"], prices["Z"]
    assert abs(pt.boundary_cosine(two_bits, *args)) < 0.1
    assert pt.boundary_cosine(one_feature, *args) > 0.95
    assert pt.boundary_cosine(line, *args) < -0.95  # "where Z sits" as one number
    with pytest.raises(ValueError, match="one row per prompt"):
        pt.boundary_cosine(two_bits[:10], *args)
    inside = side == "inside"
    with pytest.raises(ValueError, match="below, inside and above"):
        pt.boundary_cosine(two_bits[inside], *(v[inside] for v in args))
