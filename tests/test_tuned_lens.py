"""The tuned lens: translators are h + W h + b, training lowers KL(final ‖ lens) below the logit
lens's, the last layer is the model's output, files round-trip and the tuned-lens project's layout
loads (its pickle is refused)."""

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from nbtoolkit import tiny_model
from nbtoolkit.lens import TunedLens, lens_kl, lens_texts, logit_lens

TEXTS = lens_texts("train")[:40]


@pytest.fixture(scope="module")
def fitted():
    lm = tiny_model("llama")
    return lm, TunedLens(steps=25, tokens_per_step=64).fit(lm, TEXTS)


def test_training_lowers_kl_below_the_logit_lens(fitted):
    lm, tuned = fitted
    assert tuned.layers_ == [-1, 0, 1] and tuned.weight_.shape == (3, 64, 64)
    assert tuned.history_.kl.iloc[-1] < tuned.history_.kl.iloc[0]
    kl = lens_kl(lm, TEXTS[:10], tuned=tuned)
    assert kl.layer.tolist() == [-1, 0, 1, 2] and (kl.tokens > 100).all()
    assert (kl.tuned_lens[:3] < kl.logit_lens[:3]).all(), kl
    assert kl.tuned_lens.iloc[-1] == kl.logit_lens.iloc[-1] == 0


def test_translation_is_h_plus_wh_plus_b_and_the_last_layer_is_the_model(fitted):
    lm, tuned = fitted
    h = torch.randn(2, 5, 64)
    want = h + h @ tuned.weight_[1].T + tuned.bias_[1]
    torch.testing.assert_close(tuned.translate(0, h), want)
    assert tuned.translate(2, h) is h
    result = tuned(lm, ["Hello there", "Hi"])
    lens = logit_lens(lm, ["Hello there", "Hi"])
    torch.testing.assert_close(result.logprobs[:, -1], lens.logprobs[:, -1], equal_nan=True)
    assert (result.logprobs[:, 0] - lens.logprobs[:, 0]).abs().nan_to_num().max() > 1e-3
    with pytest.raises(ValueError, match="components=True"):
        tuned(lm, "Hi", components=True)


def test_an_untrained_lens_is_the_logit_lens():
    lm = tiny_model("llama")
    tuned = TunedLens(steps=1, lr=1e-12, weight_decay=0).fit(lm, TEXTS[:2])
    torch.testing.assert_close(tuned(lm, "Hello").logprobs, logit_lens(lm, "Hello").logprobs,
                               atol=1e-6, rtol=0)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        TunedLens().translate(0, torch.zeros(1, 64))


def test_some_layers(fitted):
    lm, _ = fitted
    tuned = TunedLens(layers=[0], steps=2, tokens_per_step=16).fit(lm, TEXTS)
    assert tuned.layers_ == [0] and tuned(lm, "Hi").labels == ["layer.0", "layer.2"]
    with pytest.raises(ValueError, match="layer 1 has no translator"):
        tuned.translate(1, torch.zeros(1, 64))
    kl = lens_kl(lm, TEXTS[:3], tuned=tuned, layers=[-1, 0])
    assert kl.layer.tolist() == [-1, 0, 2] and np.isnan(kl.tuned_lens[0])
    with pytest.raises(ValueError, match="layer 2 is the last"):
        TunedLens(layers=[0, 2]).fit(lm, TEXTS)


def test_save_and_load_round_trip(fitted, tmp_path):
    lm, tuned = fitted
    tuned.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tuned_lens.json", "tuned_lens.safetensors"]
    loaded = TunedLens.load(tmp_path)
    assert torch.equal(loaded.weight_, tuned.weight_) and loaded.layers_ == tuned.layers_
    assert loaded.steps == 25 and loaded.lr == 1.0 and loaded.momentum == 0.9
    assert torch.equal(loaded(lm, "Hello").logprobs, tuned(lm, "Hello").logprobs)


def test_the_model_must_match(fitted):
    _, tuned = fitted
    with pytest.raises(ValueError, match="trained on 'tiny-llama' \\(3 layers, d_model 64\\)"):
        tuned(tiny_model("llama", n_layers=2), "Hi")
    with pytest.warns(UserWarning, match="unembedding .* differs"):
        tuned(tiny_model("llama", seed=1), "Hi")


def test_the_tuned_lens_projects_layout(fitted, tmp_path):
    """config.json + params.safetensors (converted from params.pt): translator i reads Hugging
    Face's hidden_states[i], our layer i − 1; the pickle alone is refused."""
    from safetensors.torch import save_file

    lm, tuned = fitted
    (tmp_path / "config.json").write_text(json.dumps({
        "base_model_name_or_path": "tiny", "d_model": 64, "num_hidden_layers": 3, "bias": True,
        "unembed_hash": None, "lens_type": "linear_tuned_lens"}))
    (tmp_path / "params.pt").write_bytes(b"not read")
    with pytest.raises(ValueError, match="params.pt is a pickle, which nbtoolkit does not load"):
        TunedLens.from_tuned_lens_project(tmp_path)
    save_file({f"{i}.{k}": getattr(tuned, f"{k}_")[i].contiguous() for i in range(3)
               for k in ("weight", "bias")}, tmp_path / "params.safetensors")
    project = TunedLens.from_tuned_lens_project(tmp_path)
    h = torch.randn(4, 64)
    torch.testing.assert_close(project.translate(-1, h), tuned.translate(-1, h))
    torch.testing.assert_close(project.translate(1, h), tuned.translate(1, h))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        project(lm, "Hi")  # no hash recorded: nothing to warn about


@pytest.mark.slow
def test_smollm2_tuned_lens_beats_the_logit_lens(default_lm):
    tuned = TunedLens(layers=[8, 20], steps=6, tokens_per_step=16).fit(default_lm)
    kl = lens_kl(default_lm, lens_texts("test")[:8], tuned=tuned)
    assert (kl.tuned_lens[:2] < kl.logit_lens[:2]).all(), kl
