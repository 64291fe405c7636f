"""capture() and patch(): the one place in nbtoolkit that registers hooks.

    with capture(lm, ["layer.3", "layer.3.mlp"]) as acts:
        lm.model(**batch)
    acts["layer.3"]                     # [batch, seq, d_model]

    with patch(lm, {"layer.3": Set(acts["layer.3"], at=[4])}):
        lm.model(**other_batch)         # layer 3's output at position 4 replaced

Hooks are registered on enter and removed in ``finally``: on exit and on exceptions, only the
ones this context added. Contexts nest. Patch hooks always run before capture hooks on the same
module, so a capture sees the patched value; among patches, the most recently entered runs first.

Generation: a HF ``generate`` call runs a prompt (prefill) pass and then one pass per new token
over that token only. ``patch(..., prompt_only=True)`` changes the prompt pass only; the default
changes every pass (positions are absolute: see ``nbtoolkit.core.interventions``).

Positions are counted in the forward of the stack a site belongs to, from that stack's own
attention mask (left padding) and KV cache (offset): the body of a one-stack model, or the encoder
or decoder stack of an encoder-decoder (:func:`~nbtoolkit.core.anatomy.stacks`). So the top model,
its body (``lm.model.model(...)``), a T5 stack called alone and ``generate`` count them alike.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import weakref
from contextlib import contextmanager
from typing import Callable, Iterable, Mapping

import torch

from .anatomy import Site, hf_model, resolve_site, stacks
from .interventions import PatchContext
from .kv_cache import cache_in



def resolve_sites(lm, sites: Iterable[str]) -> list[Site]:
    """Resolve every site name first, so a bad name fails before any hook exists."""
    model = hf_model(lm)
    return [resolve_site(model, name) for name in sites]


class _PassTracker:
    """Reads, before each forward of a stack (:func:`~nbtoolkit.core.anatomy.stacks`), the
    absolute position of its first token and the left padding of each row (from the attention
    mask). The sites inside a stack run while its forward is the last one entered."""

    def __init__(self, prompt_only: bool = False):
        self.offset, self.prompt_only, self.pads, self.width = 0, prompt_only, None, 0

    def __call__(self, module, args, kwargs):
        kwargs = _named_arguments(module, args, kwargs)
        if self.prompt_only and kwargs.get("use_cache") is False:
            # without a KV cache every step re-runs the whole sequence: no pass is "the prompt's"
            raise ValueError("patch(..., prompt_only=True) needs the KV cache; do not pass "
                             "use_cache=False to generate")
        position = kwargs.get("cache_position")
        past = cache_in(kwargs)
        if position is not None and position.numel():
            self.offset = int(position.reshape(-1)[0])
        elif past is None:
            self.offset = 0
        elif hasattr(past, "get_seq_length"):
            self.offset = int(past.get_seq_length())
        else:
            self.offset = int(past[0][0].shape[-2])
        mask = kwargs.get("attention_mask")
        self.pads = left_padding(mask)
        self.width = mask.shape[-1] if self.pads else 0


def _named_arguments(module, args: tuple, kwargs: dict) -> dict:
    """A forward's keyword arguments and its positional ones by name (an attention mask may be
    passed positionally)."""
    if not args:
        return kwargs
    forward = module.forward
    function = getattr(forward, "__func__", forward)
    names = _positional_names(function)
    if function is not forward:  # a bound method: the first name is self's
        names = names[1:]
    return {**dict(zip(names, args)), **kwargs}


_POSITIONAL_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _positional_names(function) -> tuple[str, ...]:
    """The names of ``function``'s positional parameters, looked up once per function
    (``inspect.signature`` costs ~40 µs); a callable without weak references every time."""
    with contextlib.suppress(KeyError, TypeError):  # TypeError: no weak reference to it
        return _POSITIONAL_NAMES[function]
    parameters = inspect.signature(function).parameters.values()
    names = tuple(p.name for p in itertools.takewhile(
        lambda p: p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD), parameters))
    with contextlib.suppress(TypeError):
        _POSITIONAL_NAMES[function] = names
    return names


def left_padding(mask: torch.Tensor | None) -> tuple[int, ...] | None:
    """Padding columns at the start of each row of an attention mask ``[batch, seq]``; ``None``
    when no row starts with padding (or there is no mask)."""
    if not torch.is_tensor(mask) or mask.dim() != 2 or bool(mask[:, 0].all()):
        return None
    return tuple((mask.cumsum(-1) == 0).sum(-1).tolist())


def _register(site: Site, fn: Callable[[torch.Tensor], torch.Tensor | None], prepend: bool):
    """Hook ``fn(activation) -> new activation or None`` onto a site; returns the handle."""
    if site.rows_of is not None:
        return _register_rows(site, fn, prepend)
    if site.read == "output":
        def hook(module, args, output):
            out = output if torch.is_tensor(output) else _first(output, site)
            act = _heads_of(out, site)
            new = fn(act)
            if new is None or new is act:
                return None
            new = _merge_heads(out, new, site)
            return new if torch.is_tensor(output) else (new, *output[1:])
        return site.module.register_forward_hook(hook, prepend=prepend)

    def pre_hook(module, args, kwargs):
        from_args = len(args) > 0
        x = args[0] if from_args else kwargs["hidden_states"]
        act = x.unflatten(-1, (site.n_heads, -1)) if site.n_heads else x
        new = fn(act)
        if new is None or new is act:
            return None
        new = new.flatten(-2) if site.n_heads else new
        if from_args:
            return (new, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": new}
    return site.module.register_forward_pre_hook(pre_hook, with_kwargs=True, prepend=prepend)


def _heads_of(out: torch.Tensor, site: Site) -> torch.Tensor:
    """A per-head output site's view of its module's output ``[batch, seq, width]``:
    ``[batch, seq, n_heads, d_head]`` (one part of a fused query/key/value output)."""
    if site.n_heads is None:
        return out
    if site.fused is None:
        return out.unflatten(-1, (site.n_heads, -1))
    layout, part, heads, kv_heads = site.fused
    if layout == "per_head":  # [..., head, q | k | v]
        return out.unflatten(-1, (heads, 3, -1))[..., part, :]
    d_head = out.shape[-1] // (heads + 2 * kv_heads)  # [q (heads) | k (kv) | v (kv)]
    start = 0 if part == 0 else (heads + (part - 1) * kv_heads) * d_head
    return out[..., start:start + site.n_heads * d_head].unflatten(-1, (site.n_heads, d_head))


def _merge_heads(out: torch.Tensor, new: torch.Tensor, site: Site) -> torch.Tensor:
    """The module output with :func:`_heads_of`'s view replaced by ``new`` (a new tensor, so
    gradients reach ``new``)."""
    if site.n_heads is None:
        return new
    if site.fused is None:
        return new.flatten(-2)
    layout, part, heads, kv_heads = site.fused
    if layout == "per_head":
        parts = out.unflatten(-1, (heads, 3, -1)).unbind(-2)
        return torch.stack([new if i == part else p for i, p in enumerate(parts)], -2).flatten(-3)
    d_head = out.shape[-1] // (heads + 2 * kv_heads)
    sizes = [heads * d_head, kv_heads * d_head, kv_heads * d_head]
    parts = list(out.split(sizes, -1))
    parts[part] = new.flatten(-2)
    return torch.cat(parts, -1)


def _register_rows(site: Site, fn, prepend: bool):
    """A site whose module runs on flattened rows ``[batch·seq, d]`` (OPT's MLP): ``fn`` sees
    ``[batch, seq, d]``, the shape of ``site.rows_of``'s input, recorded by a pre-hook."""
    shape = []

    def record(module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        shape[:] = x.shape[:2]

    def on_rows(act):
        new = fn(act.view(*shape, -1))
        return None if new is None else new.reshape(act.shape)

    flat = Site(site.name, site.module, site.read, site.n_heads)
    handles = [site.rows_of.register_forward_pre_hook(record, with_kwargs=True),
               _register(flat, on_rows, prepend)]
    return _Handles(handles)


class _Handles:
    """Several hook handles removed as one."""

    def __init__(self, handles):
        self.handles = handles

    def remove(self):
        for handle in self.handles:
            handle.remove()


def _first(output, site: Site) -> torch.Tensor:
    if isinstance(output, tuple) and output and torch.is_tensor(output[0]):
        return output[0]
    raise TypeError(f"site {site.name!r}: module returns {type(output).__name__}, not a tensor "
                    f"or a tuple starting with one")


class Activations(dict):
    """``site -> activation`` from the last forward inside a :func:`capture` block."""

    def __getitem__(self, site):
        try:
            return super().__getitem__(site)
        except KeyError:
            raise KeyError(f"no activation for {site!r}: captured {list(self)}; was a forward run "
                           f"inside the `with capture(...)` block?") from None


@contextmanager
def capture(lm, sites: str | Iterable[str], *, grad: bool = False):
    """Record activations at ``sites`` during the forwards inside the block.

    ``acts[site]`` is the activation of the last forward, ``[batch, seq, d]`` (per-head sites
    ``[batch, seq, n_heads, d_head]``), detached unless ``grad=True``. With ``grad=True`` a site
    whose activation needs no gradient (frozen weights) is replaced by a leaf that does, so
    ``acts[site].grad`` is filled by a later ``backward()``.
    """
    names = [sites] if isinstance(sites, str) else list(sites)
    resolved = resolve_sites(lm, names)
    acts = Activations()
    handles = []

    def recorder(name):
        def record(act):
            if not grad:
                acts[name] = act.detach()
                return None
            if act.requires_grad:
                # an alias the forward reads from here on: a per-head view is not what the
                # forward uses, so its own .grad would stay empty
                alias = act.view_as(act)
                alias.retain_grad()
                acts[name] = alias
                return alias
            leaf = act.detach().requires_grad_(True)
            acts[name] = leaf
            return leaf
        return record

    try:
        for site in resolved:
            handles.append(_register(site, recorder(site.name), prepend=False))
        yield acts
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def patch(lm, interventions: Mapping[str, Callable], *, prompt_only: bool = False):
    """Change activations at sites during the forwards inside the block.

    ``interventions`` maps a site to an intervention (``Set``, ``Add``, ``Overlay``, ``Zero``,
    ``Noise``, a trainable rotation ...) or any callable ``(activation, ctx) -> activation``,
    or to a list of them applied in order. ``prompt_only=True`` leaves generation steps after
    the prompt pass alone.
    """
    if not isinstance(interventions, Mapping):
        raise TypeError(f"patch() takes a dict {{site: intervention}}, got "
                        f"{type(interventions).__name__}")
    resolved = resolve_sites(lm, interventions)
    chains = {}
    for site in resolved:
        chain = interventions[site.name]
        chain = list(chain) if isinstance(chain, (list, tuple)) else [chain]
        for fn in chain:
            if not callable(fn):
                raise TypeError(f"site {site.name!r}: {fn!r} is not an intervention; use Set, Add, "
                                f"Overlay, Zero, Noise or a callable (activation, ctx) -> activation")
        chains[site.name] = chain
    tracker = _PassTracker(prompt_only)
    handles = []

    def runner(name):
        def run(act):
            if prompt_only and tracker.offset > 0:
                return None
            # a guard: the stack's mask covers its sequence, cached tokens included
            fits = tracker.pads and tracker.width == tracker.offset + act.shape[1] and \
                len(tracker.pads) == act.shape[0]
            pads = tracker.pads if fits else None
            ctx = PatchContext(site=name, offset=tracker.offset, is_prompt=tracker.offset == 0,
                               pads=pads)
            for fn in chains[name]:
                new = fn(act, ctx)
                if not torch.is_tensor(new) or new.shape != act.shape or new.dtype != act.dtype:
                    raise ValueError(f"site {name!r}: intervention {fn!r} returned "
                                     f"{_describe(new)}, expected a tensor of shape "
                                     f"{tuple(act.shape)} and dtype {act.dtype}")
                act = new
            return act
        return run

    try:
        for stack in stacks(hf_model(lm)):
            handles.append(stack.register_forward_pre_hook(tracker, with_kwargs=True))
        for site in resolved:
            handles.append(_register(site, runner(site.name), prepend=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _describe(x) -> str:
    return (f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}" if torch.is_tensor(x)
            else type(x).__name__)
