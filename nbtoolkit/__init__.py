"""nbtoolkit: capture and change activations at named sites of any Hugging Face causal LM.

The core is imported here; each method is a submodule, loaded on first use:
``nb.tracing``, ``nb.interchange``, ``nb.das``, ``nb.rotations``, ``nb.probes``, ``nb.activations``,
``nb.attribution``, ``nb.explain``, ``nb.selfie``, ``nb.steering``, ``nb.widgets``, ``nb.plots`` ...
"""

import importlib

from .interventions import Add, Intervention, Noise, Overlay, PatchContext, Set, Zero
from .lm import LM
from .models import DEFAULT_MODEL, EMBEDDED, load_model, tiny_model
from .patching import capture, patch
from .sites import resolve_site, site_names

__all__ = ["Add", "DEFAULT_MODEL", "EMBEDDED", "Intervention", "LM", "Noise", "Overlay",
           "PatchContext", "Set", "Zero", "capture", "load_model", "patch", "resolve_site",
           "site_names", "tiny_model"]
__version__ = "0.1.0"

_SUBMODULES = {"activations", "attribution", "causal_model", "ccs", "contrast", "das", "data",
               "explain", "instruction_checks", "interchange", "plots", "probes", "results",
               "rotations", "selfie", "steering", "tasks", "tracing", "widgets"}


def __getattr__(name: str):
    """Import method submodules lazily, so ``import nbtoolkit`` stays light."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nbtoolkit' has no attribute {name!r}")
