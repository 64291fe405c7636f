"""The KV cache under either of its names. transformers 5.24 renamed the forward's
``past_key_values`` argument and output field to ``cache`` (the old name warns, and goes in 5.40);
older versions know only ``past_key_values``. These helpers pass and read it under the name the
installed version uses."""

from __future__ import annotations

import functools
import inspect

import torch


def cache_kwarg(module: torch.nn.Module, cache) -> dict:
    """``{name: cache}`` to pass to ``module``'s forward: ``cache`` if it takes that argument."""
    return {_cache_name(type(module).forward): cache}


@functools.lru_cache(maxsize=None)
def _cache_name(forward) -> str:
    """The cache argument's name in a model class's forward (read once per class)."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def cache_of(output):
    """The KV cache a forward with ``use_cache=True`` returned (``None`` if it returned none)."""
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


def cache_in(kwargs: dict):
    """The KV cache among a forward's keyword arguments (``None`` if there is none)."""
    cache = kwargs.get("cache")
    return cache if cache is not None else kwargs.get("past_key_values")
