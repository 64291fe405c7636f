"""nbtoolkit: capture and change activations at named sites of any Hugging Face causal LM."""

from .interventions import Add, Intervention, Noise, Overlay, PatchContext, Set, Zero
from .lm import LM
from .models import DEFAULT_MODEL, EMBEDDED, load_model, tiny_model
from .patching import capture, patch
from .sites import resolve_site, site_names

__all__ = ["Add", "DEFAULT_MODEL", "EMBEDDED", "Intervention", "LM", "Noise", "Overlay",
           "PatchContext", "Set", "Zero", "capture", "load_model", "patch", "resolve_site",
           "site_names", "tiny_model"]
__version__ = "0.1.0"
