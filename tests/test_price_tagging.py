"""Training the price tagger with das.fit: the warm-up + cosine schedule, one step against a
hand-written AdamW step, logging, determinism and argument checks."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbtoolkit.das import as_columns, fit, lr_factor
from nbtoolkit.tasks import price_tagging as pt


def test_lr_factor_warms_up_linearly_then_decays():
    assert [lr_factor(s, 4) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]  # no warm-up: linear
    # total 10 steps, 2 of warm-up: 1/2, 2/2, then 0.5·(1 + cos(π·(s − 2)/8))
    assert lr_factor(0, 10, 2, "cosine") == 0.5
    assert lr_factor(1, 10, 2, "cosine") == 1.0
    assert lr_factor(2, 10, 2, "cosine") == 1.0
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(4, 10, 2, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(10, 10, 2, "cosine") == pytest.approx(0.0)


@pytest.fixture(scope="module")
def small():
    lm = pt.tiny_model(n_layers=1, d_model=16, seed=0)
    return lm, pt.factual_dataset(lm.tokenizer, 32, seed=0)


def test_one_training_step_is_one_adamw_step_on_the_whole_batch(small):
    lm, data = small
    reference = copy.deepcopy(lm.model)
    columns = as_columns(data)
    # by hand: full batch (the mean loss ignores the order), lr factor 1 (one warm-up step of one)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-2, betas=(0.9, 0.98),
                                  weight_decay=0.01)
    reference.train()
    logits = reference(input_ids=columns["base"]).logits[:, -1]
    F.cross_entropy(logits.float(), columns["labels"]).backward()
    optimizer.step()

    trained = copy.deepcopy(lm)
    history = fit(trained, data, epochs=1, batch_size=32, lr=1e-2, weight_decay=0.01,
                  betas=(0.9, 0.98), warmup=0.05, decay="cosine", progress=False)
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
