"""On a CUDA machine: load_model's automatic device and dtype, and every method keeping its
tensors on the GPU in the model's dtype. Skipped where there is no CUDA device."""

import numpy as np
import pytest
import torch

from nbtoolkit import load_model, tiny_model
from nbtoolkit.instruction_shift import input_output_attribution
from nbtoolkit.ccs.activations import forward_states
from nbtoolkit.core import loading
from nbtoolkit.das import iia
from nbtoolkit.das.rotations import RotatedSubspace
from nbtoolkit.selfie import hidden_states
from nbtoolkit.selfie import direction
from nbtoolkit.tracing import causal_trace
from test_dtype import PROMPT, SUBJECT, only_dtype

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this machine; tests/test_gpu.py runs where "
                                       "torch.cuda.is_available()")


@pytest.fixture(scope="module")
def gpu_lm(tmp_path_factory):
    """A tiny llama saved to disk and loaded back with the defaults (device and dtype "auto")."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    original = tiny_model("llama", seed=1)
    original.model.save_pretrained(folder)
    original.tokenizer.save_pretrained(folder)
    return load_model(str(folder))


def test_auto_picks_the_gpu_and_its_dtype(gpu_lm):
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert gpu_lm.device.type == "cuda" and gpu_lm.model.dtype == expected
    assert not loading.larger_than_gpu(gpu_lm.model.config, "causal-lm", expected, gpu_lm.device)


def test_methods_stay_on_the_gpu(gpu_lm):
    dtype = gpu_lm.model.dtype
    with only_dtype(gpu_lm, dtype):
        trace = causal_trace(gpu_lm, PROMPT, SUBJECT, samples=3, noise=0.5, window=2, positions="key")
        vector = direction(gpu_lm, ["I love this"], ["I hate this"], "layer.1")
        states = hidden_states(gpu_lm, PROMPT, [1])
        scores = input_output_attribution(gpu_lm, "Say hi.", " hi there").scores
        pooled, _ = forward_states(gpu_lm, ["Is the sky blue?"], ["yes"], [1])
        rotation = RotatedSubspace(gpu_lm.d_model, gpu_lm.d_model)
        ids = torch.tensor([list(b"ab1"), list(b"cd2")])
        labels = torch.full((2, 3), -100)
        labels[:, -1] = gpu_lm.model(input_ids=ids.flip(0).to("cuda")).logits[:, -1].argmax(-1).cpu()
        data = {"input_ids": ids, "source_input_ids": ids.flip(0), "labels": labels}
        assert iia(gpu_lm, rotation, "layer.2", data, at=-1) == 1.0
    assert np.isfinite(trace.scores).sum() == 2 * gpu_lm.n_layers
    assert vector.device.type == "cuda" and states[1].device.type == "cuda"
    assert states[1].dtype == dtype and scores.dtype == dtype and np.isfinite(pooled).all()
    assert rotation.rotation.device.type == "cuda"


def test_embedded_model_on_the_gpu():
    try:
        lm = load_model("smollm2-135m-instruct")
    except ValueError as error:
        pytest.skip(f"the embedded model is not available: {error}")
    assert lm.device.type == "cuda"
    assert lm.next_token_probs("The capital of France is").argmax(-1).item() == lm.token_id(" Paris")
