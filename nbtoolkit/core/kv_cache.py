"""The transformers KV cache: the only file that knows its names and internals.

transformers 5.24 renamed the forward's ``past_key_values`` argument and output field to
``cache`` (the old name warns, and goes in 5.40); older versions know only ``past_key_values``.
These helpers pass and read it under the name the installed version uses, and copy or repeat
its rows for batched continuations (causal tracing, SelfIE)."""

from __future__ import annotations

import copy
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


def repeat_rows(cache, times: int):
    """Repeat every row of a KV cache ``times`` times in place (row r becomes rows r·times …)."""
    cache.batch_repeat_interleave(times)
    return cache


def tiled(prefix, copies: int, rows: int, layers: range):
    """A KV cache whose layers ``layers`` hold ``copies`` copies of ``prefix``'s ``rows`` rows,
    block-major (row ``k·rows + s`` = prefix row s), for a forward that runs only those layers;
    the other layers are ``prefix``'s own, read for the cached length only. ``prefix`` is
    untouched (None stays None)."""
    if prefix is None:
        return None
    cache = copy.copy(prefix)
    cache.layers = list(prefix.layers)
    index = torch.arange(rows).repeat(copies)
    for layer in layers:  # new layer objects: the forward extends these, not the prefix's
        cache.layers[layer] = copy.copy(prefix.layers[layer])
        cache.layers[layer].batch_select_indices(index)
    return cache
