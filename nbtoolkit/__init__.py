"""nbtoolkit: capture and change activations at named sites of any Hugging Face causal LM.

The core is imported here; each method is a submodule, loaded on first use:
``nb.tracing``, ``nb.interchange``, ``nb.das``, ``nb.probes``, ``nb.ccs``, ``nb.attribution``,
``nb.explain``, ``nb.selfie``, ``nb.steering``; figures and widgets in ``nb.viz``; data loaders in
``nb.data``; causal models and tasks in ``nb.tasks``. The README's "Architecture" section maps
every module.
"""

import importlib

from . import _moved
from .core.anatomy import resolve_site, site_name, site_names
from .core.hooks import capture, patch
from .core.interventions import Add, Intervention, Noise, Overlay, PatchContext, Set, Zero
from .core.lm import LM
from .core.loading import DEFAULT_MODEL, EMBEDDED, load_model, tiny_model

__all__ = ["Add", "DEFAULT_MODEL", "EMBEDDED", "Intervention", "LM", "Noise", "Overlay",
           "PatchContext", "Set", "Zero", "capture", "load_model", "patch", "resolve_site",
           "site_name", "site_names", "tiny_model"]
__version__ = "0.2.0"

_SUBMODULES = {"attribution", "ccs", "core", "das", "data", "explain", "interchange", "papers",
               "probes", "results", "selfie", "steering", "tasks", "tracing", "viz"}

_moved.install()


def __getattr__(name: str):
    """Import method submodules (and modules that moved, see ``_moved``) lazily, so
    ``import nbtoolkit`` stays light."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if f"{__name__}.{name}" in _moved.MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'nbtoolkit' has no attribute {name!r}")
