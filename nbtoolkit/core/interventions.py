"""Interventions: what ``patch`` does to an activation at the selected positions.

An intervention is any callable ``(activation, ctx) -> activation``. The classes here select
positions with ``at`` (and heads with ``heads`` on per-head sites) and change only those:

    at=None            the whole activation (every column, left padding included)
    at=3 / [3, 5]      the same token positions in every prompt of the batch
    at=slice(2, 6)     a range of each prompt's token positions
    at=[[3], [4]]      one list per batch row (all lists the same length)

Positions are token positions of each prompt: in a left-padded batch (the forward's
``attention_mask`` says which columns are padding), position k of row r is column pad_r + k, so a
prompt gets the same positions alone and in a batch. Positions >= 0 are absolute: during
generation with a KV cache, a decoding step sees only the new token, so ``at=[3]`` touches the
prompt pass only. Negative positions count from the end of each forward's input, so ``at=-1``
is every prompt's last token in the prompt pass and the newest token in every later pass.

A ``value`` (Set, Overlay, Add) is one of: a vector ``[d]``; exactly the selected positions
``[batch or 1, n_positions, d]`` (a value whose position axis has one entry per selected
position is read this way); or a full activation ``[batch or 1, seq, d]`` of the same length as
the forward, read at the same column (an interchange: capture the source with the same
shape and padding as the base). A full activation of another length is refused: positions do
not align across prompts of different lengths, so select the source's positions yourself
(``source[:, [-1]]``). On per-head sites ``d`` is ``n_heads, d_head`` (or ``len(heads), d_head``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import math

import torch

OVERLAY_MODES = ("normalized", "addition")
_MAX_CACHED = 256  # position indexes kept per intervention (one per forward shape and offset)


@dataclass
class PatchContext:
    """What an intervention knows about the forward it is in.

    ``offset``: absolute position of the first token of this forward (0 on the prompt pass,
    the cache length on a decoding step). ``is_prompt``: this is the prompt (prefill) pass.
    ``pads``: left padding columns per batch row, read from the forward's attention mask
    ``[batch, offset + seq]`` (``None``: no row is padded, or no mask was passed).
    """

    site: str
    offset: int = 0
    is_prompt: bool = True
    pads: tuple[int, ...] | None = None


@dataclass
class Index:
    """Selected cells, on the activation's device: ``rows[n]``, ``cols[n]`` (local to this
    forward), ``columns[n]`` (absolute: ``cols + offset``) and ``slot[n]`` (which of the
    ``n_positions`` selected positions each cell is); ``length``, the sequence's length so far
    (``offset + seq``, the length a full activation value must have); ``n_heads``, a per-head
    site's head count (else ``None``)."""

    rows: torch.Tensor
    cols: torch.Tensor
    columns: torch.Tensor
    slot: torch.Tensor
    n_positions: int
    offset: int
    batch: int
    length: int
    n_heads: int | None = None


def select_positions(at, batch: int, seq: int, offset: int, site: str,
                     device: torch.device | str = "cpu",
                     pads: tuple[int, ...] | None = None) -> Index | None:
    """Resolve ``at`` against an activation of ``[batch, seq, ...]`` whose rows start with
    ``pads[r]`` padding columns; None if nothing is selected."""
    if torch.is_tensor(at) and at.dtype in (torch.int64, torch.int32) and at.dim() <= 2:
        at = at.tolist()
    if at is None:
        at, pads = slice(None), None  # the whole activation, padding included
    per_row = None
    if isinstance(at, slice):
        _check_slice(at, site)
    elif _is_position(at):
        at = [at]
    elif isinstance(at, (list, tuple)) and at and all(isinstance(p, (list, tuple)) for p in at):
        if len(at) != batch:
            raise ValueError(f"site {site!r}: `at` has {len(at)} per-row lists but the batch has "
                             f"{batch} rows")
        if len({len(p) for p in at}) != 1:
            raise ValueError(f"site {site!r}: per-row `at` lists must have the same length, got "
                             f"lengths {[len(p) for p in at]}")
        per_row = [_positions(p, site) for p in at]
    elif isinstance(at, (list, tuple)):
        at = _positions(at, site)
    else:
        raise TypeError(f"site {site!r}: `at` must be an int, a list of ints, a slice, one list "
                        f"per batch row or None, got {at!r}")
    if per_row is None and pads is None:
        # the same columns in every row: resolve once, repeat with tensor ops (no per-row loop)
        positions = _token_positions(at, offset + seq, site)
        slots, cols = _local(positions, 0, seq, offset, site)
        if not cols:
            return None
        rows = torch.arange(batch, device=device).repeat_interleave(len(cols))
        slots, cols = torch.tensor([slots, cols], device=device).repeat(1, batch)
        n = len(positions)
        return Index(rows, cols, cols + offset, slots, n, offset, batch, offset + seq)
    cells, n = [], 0
    for row in range(batch):
        pad = pads[row] if pads else 0
        wanted = per_row[row] if per_row else at
        positions = _token_positions(wanted, offset + seq - pad, site, row if pads else None)
        n = max(n, len(positions))
        slots, cols = _local(positions, pad, seq, offset, site, row if pads else None)
        cells += [(row, slot, col) for slot, col in zip(slots, cols)]
    if not cells:
        return None
    rows, slots, cols = torch.tensor(cells, device=device).T
    return Index(rows, cols, cols + offset, slots, n, offset, batch, offset + seq)


def _is_position(p) -> bool:
    return isinstance(p, int) and not isinstance(p, bool)


def _positions(at, site: str) -> list[int]:
    if not all(_is_position(p) for p in at):
        raise TypeError(f"site {site!r}: positions must be ints, got {list(at)!r}")
    return list(at)


def _check_slice(at: slice, site: str) -> None:
    if not all(v is None or _is_position(v) for v in (at.start, at.stop, at.step)) or at.step == 0:
        raise TypeError(f"site {site!r}: a slice of positions takes ints (and a step other than "
                        f"0), got {at!r}")


def _token_positions(at, tokens: int, site: str, row: int | None = None) -> list[int]:
    """A slice resolved against a prompt of ``tokens`` tokens (a list of positions as given):
    ``ValueError`` if a slice selects nothing there."""
    if not isinstance(at, slice):
        return at
    positions = list(range(tokens))[at]
    if not positions:
        where = f"row {row}, which has" if row is not None else "a sequence of"
        raise ValueError(f"site {site!r}: slice {at} selects no position of {where} {tokens} "
                         f"tokens (valid positions: 0..{tokens - 1})")
    return positions


def _local(positions: list[int], pad: int, seq: int, offset: int, site: str,
           row: int | None = None) -> tuple[list[int], list[int]]:
    """(slot, local column) of the token positions that fall inside this forward, in a row
    whose tokens start after ``pad`` padding columns."""
    slots, cols = [], []
    tokens = offset + seq - pad
    for slot, p in enumerate(positions):
        local = seq + p if p < 0 else pad + p - offset
        if p < 0 and local < max(pad - offset, 0) or p >= 0 and offset == 0 and local >= seq:
            where = f"row {row}, a prompt of" if row is not None else "a sequence of"
            raise ValueError(f"site {site!r}: position {p} is out of range for {where} {tokens} "
                             f"tokens (valid: {-tokens}..{tokens - 1})")
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
    elif value.shape[1] == index.length:
        cols = index.columns
    else:
        raise ValueError(f"site {site!r}: value covers {value.shape[1]} positions, but this "
                         f"forward's sequence has {index.length} and {index.n_positions} "
                         f"positions are selected. Pass a full activation of the same length "
                         f"(captured with the same padding) or the selected positions only "
                         f"[batch, {index.n_positions}, ...], e.g. source[:, [-1]] for the "
                         f"source's last token")
    return value[index.rows, cols] if value.shape[0] > 1 else value[0, cols]


class Intervention:
    """Base class: select ``at`` (and ``heads``), change the selection with :meth:`edit`."""

    def __init__(self, at=None, heads=None):
        if isinstance(at, bool):
            raise TypeError(f"`at` must be an int, a list of ints, a slice, one list per batch "
                            f"row or None, got {at!r}")
        empty_tensor = torch.is_tensor(at) and at.numel() == 0
        if empty_tensor or isinstance(at, (list, tuple)) and \
                all(isinstance(r, (list, tuple)) and not r for r in at):
            raise ValueError(f"`at` {at!r} selects no position, so the patch would change nothing; "
                             f"give positions, or at=None for every position")
        self.at = at
        self.heads = _check_heads(heads)

    def index(self, act: torch.Tensor, ctx: PatchContext) -> Index | None:
        """:func:`select_positions` of ``at`` for ``act`` ``[batch, seq, ...]``, built once per
        (batch, seq, offset, padding, device) while ``at`` stays the same object (assign a new
        ``at`` rather than editing it in place)."""
        at, cache = getattr(self, "_indexes", (None, None))
        if cache is None or at is not self.at or len(cache) >= _MAX_CACHED:
            self._indexes = at, cache = self.at, {}
        key = (act.shape[0], act.shape[1], ctx.offset, ctx.pads, act.device)
        if key not in cache:
            cache[key] = select_positions(self.at, *key[:3], ctx.site, act.device, ctx.pads)
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
            index = replace(index, n_heads=act.shape[2])
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
    """``take_value`` for a value given for all heads or for the selected ``heads`` only; any
    other head count is refused."""
    if heads is not None and torch.is_tensor(value) and value.dim() >= 2 and h.dim() == 3 and \
            value.shape[-2] != len(heads):
        if value.shape[-2] != index.n_heads:
            raise ValueError(f"site {ctx.site!r}: value of shape {tuple(value.shape)} has "
                             f"{value.shape[-2]} heads; give all {index.n_heads} heads or the "
                             f"{len(heads)} selected ({heads}), [..., heads, d_head]")
        value = value[..., heads, :]
    return take_value(value, index, h, ctx.site)


def _check_heads(heads) -> list[int] | None:
    if heads is None:
        return None
    listed = [heads] if _is_position(heads) else heads
    if not isinstance(listed, (list, tuple)) or not listed or \
            not all(_is_position(h) for h in listed):
        raise (ValueError if listed in ([], ()) else TypeError)(
            f"heads must be an int or a non-empty list of ints (None: every head), got {heads!r}")
    return list(listed)


def check_number(name: str, x, minimum: float | None = None) -> None:
    """``ValueError`` unless ``x`` is a finite real number (``>= minimum`` if given)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or \
            minimum is not None and x < minimum:
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {x!r}")


def check_value(name: str, value) -> torch.Tensor:
    """``value`` if it is a tensor of finite floats; ``TypeError``/``ValueError`` otherwise."""
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.device.type != "meta" and not bool(torch.isfinite(value).all()):
        bad = (~torch.isfinite(value)).sum().item()
        raise ValueError(f"{name} has {bad} NaN or infinite entries of {value.numel()}")
    return value


class Set(Intervention):
    """Replace the selection with ``value`` (an interchange when captured from a source run)."""

    def __init__(self, value: torch.Tensor, at=None, heads=None):
        super().__init__(at, heads)
        self.value = check_value("Set's value", value)

    def edit(self, h, index, ctx):
        return _value_like(self.value, index, h, ctx, self.heads)


class Add(Intervention):
    """Add ``scale * vector`` to the selection (steering)."""

    def __init__(self, vector: torch.Tensor, at=None, scale: float = 1.0, heads=None):
        super().__init__(at, heads)
        check_number("Add's scale", scale)
        self.vector, self.scale = check_value("Add's vector", vector), scale

    def edit(self, h, index, ctx):
        return h + self.scale * _value_like(self.vector, index, h, ctx, self.heads)


class Overlay(Intervention):
    """SelfIE's overlay: ``"normalized"`` gives s·v + (1−s)·h, ``"addition"`` gives h + s·v."""

    def __init__(self, value: torch.Tensor, at=None, strength: float = 1.0,
                 mode: str = "normalized", heads=None):
        check_overlay(mode, strength)
        super().__init__(at, heads)
        self.value, self.strength, self.mode = check_value("Overlay's value", value), strength, mode

    def edit(self, h, index, ctx):
        v = _value_like(self.value, index, h, ctx, self.heads)
        s = self.strength
        return s * v + (1 - s) * h if self.mode == "normalized" else h + s * v


def check_overlay(mode: str, strength: float) -> None:
    """``ValueError`` unless ``mode`` is an overlay mode and ``strength`` fits it (finite; in
    [0, 1] for ``"normalized"``, whose s·v + (1 − s)·h is an interpolation)."""
    if mode not in OVERLAY_MODES:
        raise ValueError(f"overlay mode must be 'normalized' or 'addition', got {mode!r}")
    check_number("overlay strength", strength)
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
        check_number("Noise's std", std, minimum=0)
        if not _is_position(seed):
            raise TypeError(f"Noise's seed must be an int, got {seed!r}")
        self.std, self.seed = std, seed

    def edit(self, h, index, ctx):
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(h.shape, generator=generator, dtype=torch.float32)
        return h + self.std * noise.to(h.device, h.dtype)
