"""Modules that moved in 0.2 (when the folders became the architecture), importable under their
old names with a ``DeprecationWarning``: ``from nbtoolkit.plots.tracing import plot_trace`` still
works and says where the module lives now. Only the names in :data:`MOVED` are served."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "nbtoolkit.sites": "nbtoolkit.core.anatomy",
    "nbtoolkit.patching": "nbtoolkit.core.hooks",
    "nbtoolkit.interventions": "nbtoolkit.core.interventions",
    "nbtoolkit.lm": "nbtoolkit.core.lm",
    "nbtoolkit.models": "nbtoolkit.core.loading",
    "nbtoolkit.partial": "nbtoolkit.core.blocks",
    "nbtoolkit.kv_cache": "nbtoolkit.core.kv_cache",
    "nbtoolkit.rotations": "nbtoolkit.das.rotations",
    "nbtoolkit.activations": "nbtoolkit.ccs.activations",
    "nbtoolkit.contrast": "nbtoolkit.data.contrast",
    "nbtoolkit.instruction_checks": "nbtoolkit.data.instructions",
    "nbtoolkit.causal_model": "nbtoolkit.tasks.causal_model",
    "nbtoolkit.widgets": "nbtoolkit.viz.widgets",
    "nbtoolkit.plots": "nbtoolkit.viz",
    "nbtoolkit.plots.basic": "nbtoolkit.viz.figures",
    "nbtoolkit.plots.tracing": "nbtoolkit.viz.tracing",
    "nbtoolkit.plots.das": "nbtoolkit.viz.das",
    "nbtoolkit.plots.probes": "nbtoolkit.viz.probes",
    "nbtoolkit.plots.selfie": "nbtoolkit.viz.selfie",
    "nbtoolkit.plots.instruction_shift": "nbtoolkit.viz.instruction_shift",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an old module name with the module at its new place."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; import it from there",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        # the import system stamped the old name's spec on the module: give it back its own
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Serve the old names (once per process)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
