"""nbtoolkit: capture and change activations at named sites of any Hugging Face causal LM.

The core is imported here; each method is a folder, loaded on first use (``nb.tracing``):

core               load_model, LM, capture, patch, the interventions, site names, tiny_model
data, tasks        the datasets and the counterfactual tasks
interchange        activation patching over (layer, position)
tracing            ROME causal tracing
lens               logit and tuned lens, attention patterns, direct logit attribution
circuits           head, path and attribution patching, circuit faithfulness
das                distributed alignment search
probes             truth probes (CCS, CRC, VINC, a logistic probe): scikit-learn estimators
ccs                eliciting latent knowledge end to end (Burns et al. 2022)
instruction_shift  gradient attribution, attention heads and FFNs in words (Wu et al. 2023)
selfie             SelfIE interpretations, SelfIE control, steering
viz                figures and widgets
exercises          the tutorials' exercise checks
tutorials          the notebooks' presets, published numbers, results files and runner
cli                command lines (python -m nbtoolkit.cli.<name>)

The architecture guide (docs/guides/architecture.md) maps every file.
"""

import importlib

from .core.anatomy import resolve_site, site_name, site_names
from .core.hooks import capture, patch
from .core.interventions import Add, Intervention, Noise, Overlay, PatchContext, Set, Zero
from .core.lm import LM
from .core.loading import DEFAULT_MODEL, EMBEDDED, load_model
from .core.tiny import tiny_model

__all__ = ["Add", "DEFAULT_MODEL", "EMBEDDED", "Intervention", "LM", "Noise", "Overlay",
           "PatchContext", "Set", "Zero", "capture", "load_model", "patch", "resolve_site",
           "site_name", "site_names", "tiny_model"]
__version__ = "0.2.0"

_SUBMODULES = {"ccs", "circuits", "cli", "core", "das", "data", "exercises", "instruction_shift",
               "interchange", "lens", "probes", "selfie", "tasks", "tracing", "tutorials", "viz"}


def __getattr__(name: str):
    """Import a folder lazily (``nb.tracing``), so ``import nbtoolkit`` stays light."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nbtoolkit' has no attribute {name!r}")
