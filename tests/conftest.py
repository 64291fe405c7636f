import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

from nbtoolkit import load_model, tiny_model  # noqa: E402
from nbtoolkit.core.anatomy import families_of_kind  # noqa: E402

DECODERS = families_of_kind(["decoder"])  # every decoder family: tiny_model builds each offline
ENCODERS = families_of_kind(["encoder"])

if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)  # `pytest -n 2` (make test): one core per worker


@pytest.fixture(scope="session", params=DECODERS)
def tiny(request):
    """A tiny random model of every decoder family."""
    return tiny_model(request.param)


@pytest.fixture(scope="session", params=ENCODERS)
def tiny_encoder(request):
    """A tiny random masked LM of every encoder family."""
    return tiny_model(request.param)


@pytest.fixture(scope="session")
def tiny_llama():
    return tiny_model("llama")


@pytest.fixture(scope="session")
def default_lm():
    """The embedded default model (real weights, offline)."""
    return load_model("smollm2-135m-instruct")


def hook_count(model) -> int:
    """All forward hooks and pre-hooks on every module of ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
