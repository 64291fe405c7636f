"""DAS training step vs a plain forward + backward of the same model and batch (goal ≤ 1.3×).

The DAS step: frozen model, source activations captured beforehand (they do not depend on the
rotation), base forward with the rotated interchange patched in, cross-entropy, backward into
the rotation, Adam step. The reference: the same model and batch with trainable weights,
forward, cross-entropy, backward (no optimiser step). Timings are interleaved and the median of
``repeats`` is reported.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from nbtoolkit import tiny_model
from nbtoolkit.das import _Frozen, capture_sources, intervened_logits, predict_logits
from nbtoolkit.rotations import BoundlessRotatedSubspace, RotatedSubspace
from nbtoolkit.tasks import hierarchical_equality as he


def _time(fn, repeats):
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _compare(name, model, site, base, source, labels, intervention, at, repeats, note):
    module = model.model if hasattr(model, "model") else model

    def plain():
        for p in module.parameters():
            p.grad = None
        loss = F.cross_entropy(predict_logits(model, base), labels)
        loss.backward()

    optimizer = torch.optim.Adam(intervention.parameters(), lr=1e-3)
    with _Frozen(model):
        sources = capture_sources(model, site, source, at=at)

    def das_step():
        with _Frozen(model):
            logits = intervened_logits(model, intervention, site, {"base": base}, sources, at)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    ours, ref = [], []
    for _ in range(repeats):  # interleave so load changes hit both
        ours += _time(das_step, 1)
        ref += _time(plain, 1)
    o, r = statistics.median(ours), statistics.median(ref)
    return dict(benchmark=name, ours_s=o, reference_s=r, ratio=o / r, goal="<= 1.3", note=note)


def run(repeats: int = 15) -> list[dict]:
    torch.manual_seed(0)
    rows = []
    lm = tiny_model("llama")
    ids = torch.randint(0, 250, (32, 48))
    src = torch.randint(0, 250, (32, 48))
    labels = torch.randint(0, 250, (32,))
    rows.append(_compare("DAS step, tiny llama (3×64), batch 32×48, layer.1 @ last pos",
                         lm, "layer.1", ids, src, labels, RotatedSubspace(64, 16), -1, repeats,
                         "reference: plain forward+backward of the same model and batch"))
    rows.append(_compare("Boundless DAS step, tiny llama, batch 32×48, layer.1 @ last pos",
                         lm, "layer.1", ids, src, labels, BoundlessRotatedSubspace(64), -1, repeats,
                         "reference: plain forward+backward of the same model and batch"))
    net = he.mlp()
    data = he.counterfactual_dataset(6400, seed=0)
    rows.append(_compare("DAS step, MLP 16×3, batch 6400, layers.0", net, "layers.0",
                         data["inputs"], data["source_inputs"], data["labels"],
                         RotatedSubspace(16, 8), None, repeats,
                         "pyvene's batch size; reference: plain forward+backward"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
