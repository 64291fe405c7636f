"""CausalModel and the task datasets against hand-computed outputs and counterfactuals."""

import numpy as np
import pytest

from nbtoolkit.tasks.causal_model import CausalModel
from nbtoolkit.tasks import hierarchical_equality as he
from nbtoolkit.tasks import price_tagging as pt
from nbtoolkit.tasks import sums


def test_run_and_counterfactual_by_hand():
    model = he.causal_model()
    base = dict(W=[1], X=[1], Y=[2], Z=[3])      # WX true, YZ false -> O false
    source = dict(W=[1], X=[0], Y=[4], Z=[4])    # WX false, YZ true
    values = model.run(base)
    assert values["WX"] and not values["YZ"] and not values["O"]
    assert model.counterfactual(base, source, "WX")          # (False == False)
    assert model.counterfactual(base, source, "YZ")          # (True == True)
    assert not model.counterfactual(base, source, ["WX", "YZ"])  # (False == True)
    assert model.counterfactual(base, [source, base], ["WX", "YZ"])  # WX false, YZ false
    assert model.variables.index("O") > model.variables.index("WX")


def test_vectorised_mechanisms_give_one_value_per_row():
    model = sums.causal_model()
    base = {"a": np.array([1, 2]), "b": np.array([3, 4]), "c": np.array([5, 6])}
    source = {"a": np.array([0, 9]), "b": np.array([0, 9]), "c": np.array([7, 7])}
    assert model.output_of(base).tolist() == [9, 12]
    assert model.counterfactual(base, source, "S").tolist() == [0 + 0 + 5, 9 + 9 + 6]


def test_bad_graphs_and_bad_queries_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        CausalModel({"A": ["B"], "B": ["A"]}, {"A": abs, "B": abs}, output="A")
    with pytest.raises(ValueError, match=r"\['O'\] have parents but no mechanism"):
        CausalModel({"O": ["x"]}, {}, output="O")
    with pytest.raises(ValueError, match="output 'Q' is not a variable"):
        CausalModel({"O": ["x"]}, {"O": abs}, output="Q")
    model = sums.causal_model()
    with pytest.raises(ValueError, match=r"missing input values for \['c'\]"):
        model.run({"a": 1, "b": 2})
    with pytest.raises(ValueError, match=r"unknown variables \['Q'\]"):
        model.counterfactual({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}, "Q")


def test_hierarchical_equality_dataset_labels_match_the_inputs():
    data = he.counterfactual_dataset(400, seed=1)
    v, s = data["inputs"].reshape(-1, 4, 4).numpy(), data["source_inputs"].reshape(-1, 4, 4).numpy()
    eq = lambda x, a, b: np.all(x[:, a] == x[:, b], -1)
    ids = data["intervention_ids"].numpy()
    wx = np.where(ids == 0, eq(s, 0, 1), eq(v, 0, 1))
    yz = np.where(ids == 1, eq(s, 2, 3), eq(v, 2, 3))
    assert (data["labels"].numpy() == (wx == yz)).all()
    assert set(ids) == {0, 1} and abs(data["labels"].float().mean() - 0.5) < 0.1
    factual = he.factual_dataset(200, seed=2)
    f = factual["inputs"].reshape(-1, 4, 4).numpy()
    assert (factual["labels"].numpy() == (eq(f, 0, 1) == eq(f, 2, 3))).all()
    with pytest.raises(ValueError, match="unknown variables"):
        he.counterfactual_dataset(10, variables="WZ")


def test_sums_dataset_labels_are_source_ab_plus_base_c():
    data = sums.counterfactual_dataset(100, "S", seed=0)
    digits = lambda x: x.reshape(-1, 3, 10).argmax(-1).numpy()
    b, s = digits(data["inputs"]), digits(data["source_inputs"])
    assert (data["labels"].numpy() == s[:, 0] + s[:, 1] + b[:, 2]).all()
    t = sums.counterfactual_dataset(100, "T", seed=0)
    b, s = digits(t["inputs"]), digits(t["source_inputs"])
    assert (t["labels"].numpy() == b[:, 0] + s[:, 1] + s[:, 2]).all()


def test_price_tagging_prompt_and_tokens():
    assert pt.prompt(253, 810, 5) == ("Please say yes only if it costs between 2.53 and 8.10 "
                                      "dollars, otherwise no. Input: 0.05 dollars. Response:")
    tok = pt.tokenizer()
    assert len(tok(pt.prompt(253, 810, 5))["input_ids"]) == 32
    assert "### Response:\n" in pt.prompt(1, 2, 3, template="alpaca")
    with pytest.raises(ValueError, match="unknown template"):
        pt.prompt(1, 2, 3, template="chat")


def test_price_sampling_follows_the_paper():
    prices = pt.sample_prices(5000, np.random.default_rng(0))
    width = prices["Y"] - prices["X"]
    assert width.min() >= 250 and width.max() <= 750
    assert prices["X"].min() >= 5 and prices["Y"].max() <= 995
    assert prices["Z"].min() >= 1 and prices["Z"].max() <= 999


@pytest.mark.parametrize("hypothesis", list(pt.HYPOTHESES))
def test_price_tagging_counterfactual_labels_by_hand(hypothesis):
    tok = pt.tokenizer()
    data = pt.counterfactual_dataset(tok, 200, hypothesis, seed=3)
    yes, no = pt.answer_ids(tok)[1], pt.answer_ids(tok)[0]
    X, Y, Z = (np.array(data[k]) for k in "XYZ")
    SX, SY, SZ = (np.array(data[f"source_{k}"]) for k in "XYZ")
    ids = np.array(data["intervention_ids"])
    if hypothesis == "left":
        want = (SZ >= SX) & (Z <= Y)
    elif hypothesis == "right":
        want = (Z >= X) & (SZ <= SY)
    elif hypothesis == "left_right":
        want = np.where(ids == 0, (SZ >= SX) & (Z <= Y), (Z >= X) & (SZ <= SY))
    elif hypothesis == "midpoint":
        want = np.abs(2 * Z - (SX + SY)) <= Y - X
    else:
        want = (SX <= Z) & (Z <= SY)
    labels = np.array(data["labels"])
    assert (labels[:, :-1] == -100).all()
    assert (labels[:, -1] == np.where(want, yes, no)).all()
    assert want.mean() == 0.5  # balanced
    assert np.array(data["input_ids"]).shape == (200, 32)


def test_midpoint_and_bracket_models_agree_with_the_boundaries_factually():
    prices = pt.sample_prices(3000, np.random.default_rng(1))
    truth = pt.causal_model("left").output_of(prices)
    assert (pt.causal_model("midpoint").output_of(prices) == truth).all()
    assert (pt.causal_model("bracket").output_of(prices) == truth).all()
    with pytest.raises(ValueError, match="unknown hypothesis"):
        pt.causal_model("top")


def test_staged_sums_network_reads_c_after_the_ab_site():
    import torch

    from nbtoolkit import capture
    from nbtoolkit.das import iia
    from nbtoolkit.das.rotations import RotatedSubspace

    net = sums.staged_mlp(hidden=8, seed=0)
    data = sums.counterfactual_dataset(64, "S", seed=0)
    base, source = data["inputs"], data["source_inputs"]
    # the site ab sees a and b only: changing c leaves it unchanged
    other_c = torch.cat([base[:, :20], base[:, 20:].roll(1, dims=1)], dim=1)
    with torch.no_grad(), capture(net, "ab") as acts:
        net(base)
        ab = acts["ab"]
        net(other_c)
    assert ab.shape == (64, 8)
    torch.testing.assert_close(acts["ab"], ab)
    # swapping the whole ab state is running the network on (a, b from the source, c from the base)
    mixed = torch.cat([source[:, :20], base[:, 20:]], dim=1)
    with torch.no_grad():
        predicted = net(mixed).argmax(-1)
    assert iia(net, RotatedSubspace(8, 8), "ab", {**data, "labels": predicted}) == 1.0
