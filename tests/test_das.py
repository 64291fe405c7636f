"""DAS training and IIA on networks whose answer is planted by hand."""

import math

import numpy as np
import pytest
import torch

from conftest import hook_count
from nbtoolkit.das import (as_columns, task_accuracy, iia, neuron_baseline, temperature_schedule,
                           train_das)
from nbtoolkit.das.rotations import BoundlessRotatedSubspace, RotatedSubspace


class Planted(torch.nn.Module):
    """Inputs (a, b); hidden ``enc`` = [a, b, 0, 0] @ Qᵀ (a lives along Q[:, 0], b along
    Q[:, 1]); output logits [0, 20·(a − b)]: class 1 iff a > b."""

    def __init__(self, Q: torch.Tensor):
        super().__init__()
        self.enc = torch.nn.Linear(2, 4, bias=False)
        self.dec = torch.nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.enc.weight.copy_(Q[:, :2])
            read = Q[:, 0] - Q[:, 1]                      # reads a − b back out
            self.dec.weight.copy_(torch.stack([torch.zeros(4), 20 * read]))

    def forward(self, x):
        return self.dec(self.enc(x))


def planted(seed=0, aligned=False):
    Q = torch.eye(4) if aligned else torch.linalg.qr(
        torch.randn(4, 4, generator=torch.Generator().manual_seed(seed)))[0]
    return Planted(Q)


def pairs(n, seed):
    """Counterfactuals for the variable A = a: label = a_source > b_base."""
    g = torch.Generator().manual_seed(seed)
    base, source = torch.rand(n, 2, generator=g) * 2 - 1, torch.rand(n, 2, generator=g) * 2 - 1
    return {"inputs": base, "source_inputs": source, "labels": (source[:, 0] > base[:, 1]).long()}


def test_training_raises_iia_to_the_planted_alignment():
    net = planted(seed=1)
    train, test = pairs(2048, 0), pairs(1024, 1)
    rot = RotatedSubspace(4, 1, seed=3)
    before = iia(net, rot, "enc", test)
    result = train_das(net, rot, "enc", train, epochs=8, batch_size=64, lr=3e-2, eval_data=test,
                       progress=False)
    assert before < 0.85
    assert result.iia > 0.97 and result.iia == iia(net, rot, "enc", test)
    # the learned direction is the planted one: R[:, 0] ∥ Q[:, 0]
    direction = rot.rotation.detach()[:, 0]
    assert abs(direction @ net.enc.weight[:, 0]).item() > 0.97
    assert list(result.history.columns[:3]) == ["step", "loss", "lr"]
    assert len(result.history) == 8 * math.ceil(2048 / 64)
    assert result.history.loss.tail(20).mean() < result.history.loss.head(20).mean()


def test_full_interchange_iia_equals_accuracy_on_the_sources():
    net = planted(seed=2)
    test = pairs(512, 5)
    rot = RotatedSubspace(4, 4)  # k = d: the whole hidden vector comes from the source
    expected = (net(test["source_inputs"]).argmax(-1) == test["labels"]).float().mean().item()
    assert iia(net, rot, "enc", test) == pytest.approx(expected)


def test_neuron_baseline_finds_a_neuron_aligned_variable_and_fails_a_rotated_one():
    test = pairs(512, 7)
    aligned = neuron_baseline(planted(aligned=True), "enc", test, d=4, k=1, progress=False)
    assert aligned.dims[0] == [0] and aligned.iia[0] == 1.0
    assert len(aligned) == 4  # all 4 single-neuron sets tried
    rotated = neuron_baseline(planted(seed=1), "enc", test, d=4, k=1, progress=False)
    assert rotated.iia[0] < 0.9


def test_boundless_temperature_falls_and_iia_rises():
    net = planted(seed=1)
    train, test = pairs(2048, 0), pairs(512, 1)
    bd = BoundlessRotatedSubspace(4, init=0.25, seed=3)   # one rotated dim to start with
    result = train_das(net, bd, "enc", train, epochs=6, batch_size=64, lr=3e-2, boundary_lr=1e-2,
                       temperature=(2.0, 0.05), eval_data=test, progress=False)
    taus = result.history.temperature.to_numpy()
    assert taus[0] == pytest.approx(2.0) and taus[-1] == pytest.approx(0.05, abs=1e-3)
    assert (np.diff(taus) <= 1e-9).all()
    assert result.iia > 0.9
    assert float(bd.temperature) == pytest.approx(0.05)


def test_temperature_schedule_is_linear():
    assert temperature_schedule(50, 0.1, 3).tolist() == [50, 25.05, 0.1]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        temperature_schedule(50, 0.1, 0)


def test_model_is_left_as_found_and_no_hooks_remain():
    net = planted(seed=1)
    net.train()
    net.dec.weight.requires_grad_(False)
    train_das(net, RotatedSubspace(4, 1), "enc", pairs(128, 0), epochs=1, batch_size=64,
              progress=False)
    assert net.training and net.enc.weight.requires_grad and not net.dec.weight.requires_grad
    assert net.enc.weight.grad is None
    assert hook_count(net) == 0


def test_evaluation_every_few_steps_and_monitor_updates():
    class Monitor:
        metrics = ["loss", "iia"]

        def __init__(self):
            self.calls = []

        def update(self, step, **values):
            self.calls.append((step, sorted(values)))

    net, monitor = planted(seed=1), Monitor()
    result = train_das(net, RotatedSubspace(4, 1), "enc", pairs(640, 0), epochs=2, batch_size=64,
                       eval_data=pairs(64, 1), eval_every=5, monitor=monitor, progress=False)
    # 2 epochs × 10 batches; scored after steps 5, 10, 15 and at the end
    assert result.history.dropna(subset=["iia"]).step.tolist() == [4, 9, 14, 19]
    assert [step for step, _ in monitor.calls] == list(range(1, 21)) + [20]
    assert monitor.calls[4] == (5, ["iia", "loss"]) and monitor.calls[5] == (6, ["loss"])
    assert hook_count(net) == 0
    with pytest.raises(ValueError, match="nothing to train"):
        train_das(net, RotatedSubspace(4, 1), "enc", pairs(64, 0), epochs=0, progress=False)


def test_text_model_training_at_the_last_position(tiny_llama):
    lm = tiny_llama
    enc = lambda texts: torch.tensor([list(t.encode()) for t in texts])
    base, source = enc(["ab1", "cd2", "ef1", "gh2"]), enc(["zz2", "yy1", "xx2", "ww1"])
    labels = torch.full((4, 3), -100)
    labels[:, -1] = torch.tensor([50, 49, 50, 49])  # pyvene layout: only the last position counts
    data = {"input_ids": base, "source_input_ids": source, "labels": labels}
    assert as_columns(data)["labels"].tolist() == [50, 49, 50, 49]
    rot = RotatedSubspace(lm.d_model, lm.d_model)  # full interchange at the last position
    got = iia(lm, rot, "layer.2", data, at=-1)
    # with a full interchange at the last position of the last block, the base run ends like the source run
    src_pred = lm.model(input_ids=source).logits[:, -1].argmax(-1)
    assert got == (src_pred == labels[:, -1]).float().mean().item()
    result = train_das(lm, RotatedSubspace(lm.d_model, 4), "layer.1", data, at=-1, epochs=2,
                       batch_size=2, progress=False)
    assert len(result.history) == 4 and np.isfinite(result.history.loss).all()
    assert hook_count(lm.model) == 0


def test_bad_data_is_refused():
    net = planted()
    with pytest.raises(ValueError, match="source_inputs or source_input_ids"):
        train_das(net, RotatedSubspace(4, 1), "enc", {"inputs": torch.zeros(2, 2),
                                                       "labels": torch.zeros(2)}, progress=False)
    with pytest.raises(ValueError, match="variable= needs intervention_ids"):
        iia(net, RotatedSubspace(4, 1), "enc", pairs(4, 0), variable=0)
    with pytest.raises(ValueError, match="has 3 rows but the inputs have 4"):
        as_columns({"inputs": torch.zeros(4, 2), "labels": torch.zeros(3)})
    with pytest.raises(TypeError, match="dict of arrays or a datasets.Dataset"):
        as_columns([1, 2])
    assert task_accuracy(net, {"inputs": torch.tensor([[1.0, 0.0]]), "labels": torch.tensor([1])}) == 1.0
