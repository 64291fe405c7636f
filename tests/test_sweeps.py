"""The sweep plumbing every circuit method shares (nbtoolkit.core.sweeps): pairs to left-padded
batches, positions to columns, metrics checked and read in blocks, results averaged."""

import numpy as np
import pytest
import torch

from nbtoolkit import tiny_model
from nbtoolkit.core.sweeps import (SweepResult, check_metric, encode_pairs, metric_values,
                                   position_groups)


@pytest.fixture(scope="module")
def lm():
    return tiny_model("llama", n_layers=2)


def test_pairs_are_left_padded_and_ids_equal_strings(lm):
    pairs = encode_pairs(lm, ["abc", "hello"], ["xyz", "world"])
    assert pairs.lengths == [3, 5] and pairs.pads == [2, 0] and pairs.width == 5
    assert pairs.base["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1] * 5]
    assert pairs.base["position_ids"][0].tolist() == [0, 0, 0, 1, 2]
    ids = [lm.tokenizer(t)["input_ids"] for t in ("abc", "hello")]
    again = encode_pairs(lm, ids, torch.tensor([lm.tokenizer("xyz")["input_ids"] + [0, 0]])[:, :3]
                         .tolist() + [lm.tokenizer("world")["input_ids"]])
    assert torch.equal(again.base["input_ids"], pairs.base["input_ids"])
    assert torch.equal(again.source["input_ids"], pairs.source["input_ids"])
    one = encode_pairs(lm, "abc", "xyz")
    assert one.n == 1 and one.tokens == [["a", "b", "c"]]


def test_positions_become_each_pairs_columns(lm):
    pairs = encode_pairs(lm, ["abc", "hello"], ["xyz", "world"])
    groups, axis = position_groups(pairs, "last")
    assert not axis and groups[0].columns.tolist() == [[4], [4]]
    groups, axis = position_groups(pairs, [0, -2])
    assert groups[0].columns.tolist() == [[2, 3], [0, 3]]
    groups, axis = position_groups(pairs, {"first": 0, "mid": [1, 2]})
    assert axis and [g.label for g in groups] == ["first", "mid"]
    assert groups[1].columns.tolist() == [[3], [2]]
    assert position_groups(pairs, "all")[0][0].columns is None


def test_metric_checks_and_blocks():
    logits = torch.randn(6, 10)
    metric = lambda l: l[:, 1] - l[:, 2]  # noqa: E731
    assert torch.equal(check_metric(metric, logits), metric(logits))
    blocks = metric_values(metric, logits, 2)
    assert blocks.shape == (3, 2) and torch.equal(blocks[1], metric(logits[2:4]))


def test_result_means_spread_and_frame():
    per_pair = np.arange(12.0).reshape(2, 3, 2)
    r = SweepResult(per_pair, np.array([1.0, 3.0]), np.array([0.0, 0.0]), ("layer", "position"),
                    {"position": ["S2", "end"]}, method="demo")
    np.testing.assert_allclose(r.scores, per_pair.mean(0))
    np.testing.assert_allclose(r.std, per_pair.std(0))
    assert r.base_score == 2.0 and r.source_score == 0.0
    np.testing.assert_allclose(r.normalized(), (r.scores - 2.0) / -2.0)
    frame = r.to_frame()
    assert list(frame["position_label"][:2]) == ["S2", "end"]
    assert frame.loc[5, "score"] == r.scores[2, 1] and frame.loc[5, "effect"] == r.scores[2, 1] - 2
    assert r.top(1).iloc[0]["layer"] == 2
