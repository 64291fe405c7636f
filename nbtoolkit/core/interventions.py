"""Interventions: what ``patch`` does to an activation at the selected positions.

An intervention is any callable ``(activation, ctx) -> activation``. The classes here select
positions with ``at`` (and heads with ``heads`` on per-head sites) and change only those:

    at=None            every position
    at=3 / [3, 5]      the same positions in every batch row
    at=slice(2, 6)     a range
    at=[[3], [4]]      one list per batch row (all lists the same length)

Positions >= 0 are absolute token positions: during generation with a KV cache, a decoding step
sees only the new token, so ``at=[3]`` touches the prompt pass only. Negative positions count
from the end of each forward's input, so ``at=-1`` is the newest token in every pass.

A ``value`` (Set, Overlay, Add) is one of: a vector ``[d]``; a full activation
``[batch or 1, seq, d]`` from which the selected positions are taken (an interchange when it was
captured from a source run); or exactly the selected slice ``[batch or 1, n_positions, d]``
(a value whose position axis has one entry per selected position is read as a slice).
On per-head sites ``d`` is ``n_heads, d_head`` (or ``len(heads), d_head``).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import torch

OVERLAY_MODES = ("normalized", "addition")
_MAX_CACHED = 256  # position indexes kept per intervention (one per forward shape and offset)


@dataclass
class PatchContext:
    """What an intervention knows about the forward it is in.

    ``offset``: absolute position of the first token of this forward (0 on the prompt pass,
    the cache length on a decoding step). ``is_prompt``: this is the prompt (prefill) pass.
    """

    site: str
    offset: int = 0
    is_prompt: bool = True


@dataclass
class Index:
    """Selected cells, on the activation's device: ``rows[n]``, ``cols[n]`` (local to this
    forward), ``positions[n]`` (absolute: ``cols + offset``) and ``slot[n]`` (which of the
    ``n_positions`` selected positions each cell is); ``last``, the largest selected position
    (checked against a value's length without reading the tensors back from the device)."""

    rows: torch.Tensor
    cols: torch.Tensor
    positions: torch.Tensor
    slot: torch.Tensor
    n_positions: int
    offset: int
    batch: int
    last: int


def select_positions(at, batch: int, seq: int, offset: int, site: str,
                     device: torch.device | str = "cpu") -> Index | None:
    """Resolve ``at`` against an activation of ``[batch, seq, ...]``; None if nothing is selected."""
    if at is None:
        at = slice(None)
    if torch.is_tensor(at) and at.dtype in (torch.int64, torch.int32) and at.dim() <= 2:
        at = at.tolist()
    if isinstance(at, slice):
        shared = list(range(offset + seq))[at]
    elif isinstance(at, int):
        shared = [at]
    elif isinstance(at, (list, tuple)) and at and all(isinstance(p, (list, tuple)) for p in at):
        if len(at) != batch:
            raise ValueError(f"site {site!r}: `at` has {len(at)} per-row lists but the batch has "
                             f"{batch} rows")
        if len({len(p) for p in at}) != 1:
            raise ValueError(f"site {site!r}: per-row `at` lists must have the same length, got "
                             f"lengths {[len(p) for p in at]}")
        per_row = [_local(list(p), seq, offset, site) for p in at]
        cells = [(row, slot, col) for row, (slots, cols) in enumerate(per_row)
                 for slot, col in zip(slots, cols)]
        if not cells:
            return None
        last = offset + max(col for _, _, col in cells)
        rows, slots, cols = torch.tensor(cells, device=device).T
        return Index(rows, cols, cols + offset, slots, len(at[0]), offset, batch, last)
    elif isinstance(at, (list, tuple)) and all(isinstance(p, int) for p in at):
        shared = list(at)
    else:
        raise TypeError(f"site {site!r}: `at` must be an int, a list of ints, a slice, one list "
                        f"per batch row or None, got {at!r}")
    # the same positions in every row: resolve once, repeat with tensor ops (no per-row loop)
    slots, cols = _local(shared, seq, offset, site)
    if not cols:
        return None
    last = offset + max(cols)
    rows = torch.arange(batch, device=device).repeat_interleave(len(cols))
    slots, cols = torch.tensor([slots, cols], device=device).repeat(1, batch)
    return Index(rows, cols, cols + offset, slots, len(shared), offset, batch, last)


def _local(positions: list[int], seq: int, offset: int, site: str) -> tuple[list[int], list[int]]:
    """(slot, local column) of the positions that fall inside this forward."""
    slots, cols = [], []
    for slot, p in enumerate(positions):
        local = seq + p if p < 0 else p - offset
        if p < 0 and local < 0 or p >= 0 and offset == 0 and local >= seq:
            raise ValueError(f"site {site!r}: position {p} is out of range for a sequence of "
                             f"{seq} tokens (valid: {-seq}..{seq - 1})")
        if 0 <= local < seq:
            slots.append(slot), cols.append(local)
    return slots, cols


def take_value(value: torch.Tensor, index: Index, like: torch.Tensor, site: str) -> torch.Tensor:
    """The entries of ``value`` for the selected cells, shaped like ``like`` ``[n, *feature]``."""
    if not torch.is_tensor(value):
        raise TypeError(f"site {site!r}: value must be a torch.Tensor, got {type(value).__name__}")
    feature = tuple(like.shape[1:])
    if value.dtype != like.dtype:
        raise ValueError(f"site {site!r}: value dtype {value.dtype} does not match the "
                         f"activation's {like.dtype}; cast it with .to({like.dtype})")
    if value.device != like.device:
        raise ValueError(f"site {site!r}: value is on {value.device} but the activation is on "
                         f"{like.device}; move it with .to('{like.device}')")
    lead = value.dim() - len(feature)
    if tuple(value.shape[lead:]) != feature or lead not in (0, 2):
        raise ValueError(f"site {site!r}: value of shape {tuple(value.shape)} does not fit; expected "
                         f"{list(feature)}, [batch, seq, *{list(feature)}] or "
                         f"[batch, {index.n_positions}, *{list(feature)}]")
    if lead == 0:
        return value.expand(len(index.rows), *feature)
    if value.shape[0] not in (1, index.batch):
        raise ValueError(f"site {site!r}: value has batch {value.shape[0]} but the activation has "
                         f"{index.batch} rows (a batch of 1 is broadcast)")
    if value.shape[1] == index.n_positions:
        cols = index.slot
    elif index.last >= value.shape[1]:
        raise ValueError(f"site {site!r}: value covers {value.shape[1]} positions but position "
                         f"{index.last} was selected")
    else:
        cols = index.positions
    return value[index.rows, cols] if value.shape[0] > 1 else value[0, cols]


class Intervention:
    """Base class: select ``at`` (and ``heads``), change the selection with :meth:`edit`."""

    def __init__(self, at=None, heads=None):
        self.at = at
        self.heads = [heads] if isinstance(heads, int) else heads

    def index(self, act: torch.Tensor, ctx: PatchContext) -> Index | None:
        """:func:`select_positions` of ``at`` for ``act`` ``[batch, seq, ...]``, built once per
        (batch, seq, offset, device) while ``at`` stays the same object (assign a new ``at``
        rather than editing it in place)."""
        at, cache = getattr(self, "_indexes", (None, None))
        if cache is None or at is not self.at or len(cache) >= _MAX_CACHED:
            self._indexes = at, cache = self.at, {}
        key = (act.shape[0], act.shape[1], ctx.offset, act.device)
        if key not in cache:
            cache[key] = select_positions(self.at, *key[:3], ctx.site, act.device)
        return cache[key]

    def edit(self, h: torch.Tensor, index: Index, ctx: PatchContext) -> torch.Tensor:
        """New values for the selected cells ``h`` ``[n, *feature]``."""
        raise NotImplementedError

    def __call__(self, act: torch.Tensor, ctx: PatchContext) -> torch.Tensor:
        index = self.index(act, ctx)
        if index is None:
            return act
        rows, cols = index.rows, index.cols
        h = act[rows, cols]
        if self.heads is not None:
            if act.dim() != 4:
                raise ValueError(f"site {ctx.site!r} has no heads; use a '.attn.heads' site to "
                                 f"select heads")
            if max(self.heads) >= act.shape[2] or min(self.heads) < -act.shape[2]:
                raise ValueError(f"site {ctx.site!r}: heads {self.heads} out of range; the model "
                                 f"has {act.shape[2]} heads")
            h = h[:, self.heads]
        new = self.edit(h, index, ctx).to(act.dtype)
        out = act.clone()
        if self.heads is None:
            out[rows, cols] = new
        else:
            out[rows[:, None], cols[:, None], torch.tensor(self.heads, device=act.device)] = new
        return out

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if not torch.is_tensor(v) and not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _value_like(value, index, h, ctx, heads):
    """``take_value`` for a value given for all heads or for the selected ``heads`` only."""
    if heads is not None and torch.is_tensor(value) and value.dim() >= 2 and \
            value.shape[-2] != len(heads) and h.dim() == 3:
        value = value[..., heads, :]
    return take_value(value, index, h, ctx.site)


class Set(Intervention):
    """Replace the selection with ``value`` (an interchange when captured from a source run)."""

    def __init__(self, value: torch.Tensor, at=None, heads=None):
        super().__init__(at, heads)
        self.value = value

    def edit(self, h, index, ctx):
        return _value_like(self.value, index, h, ctx, self.heads)


class Add(Intervention):
    """Add ``scale * vector`` to the selection (steering)."""

    def __init__(self, vector: torch.Tensor, at=None, scale: float = 1.0, heads=None):
        super().__init__(at, heads)
        self.vector, self.scale = vector, scale

    def edit(self, h, index, ctx):
        return h + self.scale * _value_like(self.vector, index, h, ctx, self.heads)


class Overlay(Intervention):
    """SelfIE's overlay: ``"normalized"`` gives s·v + (1−s)·h, ``"addition"`` gives h + s·v."""

    def __init__(self, value: torch.Tensor, at=None, strength: float = 1.0,
                 mode: str = "normalized", heads=None):
        check_overlay(mode, strength)
        super().__init__(at, heads)
        self.value, self.strength, self.mode = value, strength, mode

    def edit(self, h, index, ctx):
        v = _value_like(self.value, index, h, ctx, self.heads)
        s = self.strength
        return s * v + (1 - s) * h if self.mode == "normalized" else h + s * v


def check_overlay(mode: str, strength: float) -> None:
    """``ValueError`` unless ``mode`` is an overlay mode and ``strength`` fits it (finite; in
    [0, 1] for ``"normalized"``, whose s·v + (1 − s)·h is an interpolation)."""
    if mode not in OVERLAY_MODES:
        raise ValueError(f"overlay mode must be 'normalized' or 'addition', got {mode!r}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or \
            not math.isfinite(strength):
        raise ValueError(f"overlay strength must be a finite number, got {strength!r}")
    if mode == "normalized" and not 0 <= strength <= 1:
        raise ValueError(f"overlay strength {strength} is outside [0, 1], which 'normalized' mode "
                         f"needs (s·v + (1 − s)·h); use mode='addition' for h + s·v")


class Zero(Intervention):
    """Set the selection to zero (ablation)."""

    def edit(self, h, index, ctx):
        return torch.zeros_like(h)


class Noise(Intervention):
    """Add Gaussian noise of standard deviation ``std``; the same draw in every forward (seeded)."""

    def __init__(self, std: float, at=None, seed: int = 0, heads=None):
        super().__init__(at, heads)
        self.std, self.seed = std, seed

    def edit(self, h, index, ctx):
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(h.shape, generator=generator, dtype=torch.float32)
        return h + self.std * noise.to(h.device, h.dtype)
