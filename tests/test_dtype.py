"""Every method on a bfloat16 model (CPU) against the same weights in float32.

The model runs in its own dtype throughout (a hook on every module checks each floating output:
no float32 copy of the model's activations); results agree with float32 within tolerances
stated per method: bfloat16 keeps 8 bits of mantissa (relative error 2⁻⁸ ≈ 0.4% per rounding),
which grow over the 3 layers of the tiny model to a few percent of a value's scale.
"""

import contextlib
import copy

import numpy as np
import pytest
import torch

from conftest import hook_count
from nbtoolkit import LM, tiny_model
from nbtoolkit.instruction_shift import input_output_attribution
from nbtoolkit.ccs.activations import forward_states
from nbtoolkit.das import iia, train_das
from nbtoolkit.das.rotations import RotatedSubspace
from nbtoolkit.selfie import hidden_states, interpret
from nbtoolkit.selfie import direction
from nbtoolkit.tracing import causal_trace

PROMPT, SUBJECT = "The Eiffel Tower is in the city of", "Eiffel Tower"


@pytest.fixture(scope="module")
def pair():
    """(float32, bfloat16) copies of one tiny llama."""
    full = tiny_model("llama", seed=1)
    half = copy.deepcopy(full.model).to(torch.bfloat16)
    return full, LM(half, full.tokenizer, name="tiny-llama-bf16")


@contextlib.contextmanager
def only_dtype(lm, dtype):
    """Fails if any module of ``lm`` outputs a floating tensor of another dtype."""
    seen = set()

    def record(module, args, output):
        for out in output if isinstance(output, tuple) else (output,):
            if torch.is_tensor(out) and out.is_floating_point():
                seen.add((type(module).__name__, out.dtype))

    handles = [m.register_forward_hook(record) for m in lm.model.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
    assert seen and {d for _, d in seen} == {dtype}, sorted(s for s in seen if s[1] != dtype)


def scale(x) -> float:
    return float(np.abs(np.asarray(x, dtype=np.float64)).max())


def test_causal_trace(pair):
    full, half = pair
    options = dict(samples=3, noise=0.5, window=2, positions="key")
    want = causal_trace(full, PROMPT, SUBJECT, **options)
    with only_dtype(half, torch.bfloat16):
        got = causal_trace(half, PROMPT, SUBJECT, **options)
    # the same answer token; probabilities within 1% of their largest value (0.15% seen)
    assert got.answer == want.answer and np.isfinite(want.scores).sum() == 2 * full.n_layers
    np.testing.assert_allclose(got.scores, want.scores, atol=0.01 * np.nanmax(want.scores))
    assert hook_count(half.model) == 0


def test_steering_direction(pair):
    full, half = pair
    positive, negative = ["I love this", "What a joy"], ["I hate this", "What a pain"]
    want = direction(full, positive, negative, "layer.1")
    with only_dtype(half, torch.bfloat16):
        got = direction(half, positive, negative, "layer.1")
    assert got.device == half.device
    # within 3% of the largest coordinate (0.8% seen)
    torch.testing.assert_close(got.float(), want, atol=0.03 * scale(want), rtol=0)


def test_selfie_hidden_states_and_interpretation(pair):
    full, half = pair
    want = hidden_states(full, PROMPT, [0, 2])
    with only_dtype(half, torch.bfloat16):
        got = hidden_states(half, PROMPT, [0, 2])
        table = interpret(half, PROMPT, tokens=[-1], layers=[1], max_new_tokens=3)
    for layer in (0, 2):
        assert got[layer].dtype == torch.bfloat16 and got[layer].device == half.device
        torch.testing.assert_close(got[layer].float(), want[layer],
                                   atol=0.03 * scale(want[layer]), rtol=0)  # as steering
    assert len(table) == 1


def test_attribution(pair):
    full, half = pair
    want = input_output_attribution(full, "Say hi.", " hi there")
    with only_dtype(half, torch.bfloat16):
        got = input_output_attribution(half, "Say hi.", " hi there")
    assert got.scores.dtype == torch.bfloat16
    # gradients × inputs in bf16: within 10% of the largest score (4.5% seen)
    np.testing.assert_allclose(got.scores.float().numpy(), want.scores.numpy(),
                               atol=0.10 * scale(want.scores))


def test_ccs_states(pair):
    full, half = pair
    args = (["Is the sky blue?", "Is grass red?"], ["yes", "no"], [1, 2])
    want_states, want_logp = forward_states(full, *args)
    with only_dtype(half, torch.bfloat16):
        got_states, got_logp = forward_states(half, *args)
    assert got_states.dtype == np.float32  # small results go to numpy in float32
    # states within 3% of the largest (0.7% seen); log-probs within 0.1% (0.014% seen)
    np.testing.assert_allclose(got_states, want_states, atol=0.03 * scale(want_states))
    np.testing.assert_allclose(got_logp, want_logp, rtol=1e-3)


def test_das_on_a_bf16_model(pair):
    full, half = pair
    enc = lambda texts: torch.tensor([list(t.encode()) for t in texts])
    base, source = enc(["ab1", "cd2", "ef1", "gh2"]), enc(["zz2", "yy1", "xx2", "ww1"])
    labels = torch.full((4, 3), -100)
    with torch.no_grad():
        labels[:, -1] = half.model(input_ids=source).logits[:, -1].argmax(-1)
    data = {"input_ids": base, "source_input_ids": source, "labels": labels}
    with only_dtype(half, torch.bfloat16):
        # a full interchange at the last position of the last block: the base run ends as the source's
        assert iia(half, RotatedSubspace(half.d_model, half.d_model), "layer.2", data, at=-1) == 1.0
        rotation = RotatedSubspace(half.d_model, 4)
        result = train_das(half, rotation, "layer.1", data, at=-1, epochs=1, batch_size=2,
                           progress=False)
    assert np.isfinite(result.history.loss).all()
    # the rotation (d × d, small) trains in float32 on the model's device: an orthogonal
    # parametrization in bf16 drifts from orthogonality; activations are cast for the interchange
    assert rotation.rotation.dtype == torch.float32 and rotation.rotation.device == half.device
    assert all(p.dtype == torch.bfloat16 for p in half.model.parameters())
