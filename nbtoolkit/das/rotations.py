"""Trainable interchange interventions for DAS: rotate, swap a subspace with the source's, rotate back.

    rot = RotatedSubspace(d=16, k=8)                 # an nn.Module: rot(base, source, block)
    with patch(model, {"layer.3": Interchange(rot, source_acts, at=-1)}):
        logits = model(**base_batch).logits          # base run, subspace taken from the source

A subspace is stateless, as pyvene's interventions are: ``rot(base [n, d], source [n, d],
block)`` is a function of its inputs and its parameters. :class:`Interchange` is the
intervention ``patch`` runs: it selects positions (``at``) and feeds the subspace the source
activation at those positions. ``block`` (a LongTensor ``[batch]`` or an int) picks, per
example, which block of ``k`` rotated coordinates is swapped: several causal variables live in
disjoint blocks of one rotation (hierarchical equality: block 0 = WX, block 1 = YZ).

Kinds:
    RotatedSubspace(d, k)            orthogonal R (d×d); swap rotated coords [block·k, block·k + k)
    LowRankRotatedSubspace(d, k)     orthonormal W (d×k): out = b + W(Wᵀs − Wᵀb)
    BoundlessRotatedSubspace(d)      R plus learned boundaries; soft sigmoid masks with a temperature
    NeuronSubspace(d, dims)          no rotation: swap the named neurons (the neuron-aligned baseline)

Save and load: ``save_intervention(rot, folder)`` writes ``intervention.json`` (kind + config)
and ``intervention.safetensors`` (the state dict); ``load_intervention(folder)`` rebuilds it
from an allow-list of kinds and ``load_state_dict(strict=True)``. No pickle, no class named by
the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from ..core.files import atomic_write, write_json
from ..core.interventions import Index, Intervention, PatchContext, take_value
from . import orthogonal as square_orthogonal

FORMAT = 2
CONFIG_FILE = "intervention.json"
TENSOR_FILE = "intervention.safetensors"


def _orthogonal_linear(d: int, k: int, seed: int) -> nn.Linear:
    """A bias-free ``d -> k`` map whose ``weight`` ``[d, k]`` has orthonormal columns, under
    PyTorch's orthogonal parametrization (pyvene's; square ones through :mod:`.orthogonal`, the
    same map with a cheaper matrix exponential), recomputed at every access as in pyvene."""
    layer = nn.Linear(d, k, bias=False)
    generator = torch.Generator().manual_seed(seed)
    weight = torch.empty(d, k)
    nn.init.orthogonal_(weight, generator=generator)
    # nn.Linear stores [out, in]; we keep pyvene's convention x @ W with W [d, k]
    layer.weight = nn.Parameter(weight)
    if k == d:  # its right_inverse keeps `weight` itself as the base
        return square_orthogonal.orthogonal(layer)
    with torch.random.fork_rng(devices=[]):  # PyTorch's map (Householder on [d, k]) completes
        layer = orthogonal(layer)             # the base with randn: replaced by a seeded one
    set_orthogonal(layer, weight, generator)
    return layer


@torch.no_grad()
def set_orthogonal(layer: nn.Module, weight: torch.Tensor, generator: torch.Generator | None = None):
    """Make an orthogonally parametrized ``layer.weight`` equal ``weight`` ``[d, k]`` exactly.

    With the trivialization the weight is ``base @ Q(original)``; ``original = −I`` gives
    ``Q = I[:, :k]``, so the weight is ``base[:, :k]``. We store ``weight`` itself there, completed
    to a square orthogonal ``base`` by a seeded orthonormal complement: no re-orthogonalisation
    (bit-exact save/load) and no draw from the global RNG (deterministic)."""
    param = layer.parametrizations.weight
    d, k = weight.shape
    weight = weight.to(param.original.dtype)
    base = weight.clone()
    if k < d:
        noise = torch.randn(d, d - k, generator=generator or torch.Generator().manual_seed(0),
                            dtype=torch.float64)
        w = weight.double()
        noise = noise - w @ (w.T @ noise)
        complement = torch.linalg.qr(noise)[0].to(weight.dtype)
        base = torch.cat([weight, complement], dim=1)
    param[0].base = base.to(param[0].base.device)
    original = torch.zeros_like(param.original)
    original.diagonal().fill_(-1.0)
    param.original.copy_(original)


def _add_back(base: torch.Tensor, coords: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``base + coords @ Wᵀ`` in one fused op: base ``[..., d]``, coords ``[..., k]``, W ``[d, k]``."""
    flat = torch.addmm(base.reshape(-1, base.shape[-1]), coords.reshape(-1, coords.shape[-1]), W.T)
    return flat.reshape(base.shape)


def _swap_in(base: torch.Tensor, diff: torch.Tensor, W: torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """``base + ((diff @ W) * weights) @ Wᵀ``, the same subspace for every row: base and diff
    ``[..., d]``, W ``[d, k]``, weights ``[k]`` (None: all ones). Through the ``[d, d]`` matrix
    ``(W * weights) @ Wᵀ`` when that multiplies less over the rows: forward and backward then
    cost 2·d² per row (the gradient is one product, diffᵀ·grad) instead of 5·d·k."""
    if 2 * W.shape[0] >= 5 * W.shape[1]:
        coords = diff @ W
        return _add_back(base, coords if weights is None else coords * weights, W)
    d = base.shape[-1]
    P = (W if weights is None else W * weights) @ W.T
    return torch.addmm(base.reshape(-1, d), diff.reshape(-1, d), P).reshape(base.shape)


class Subspace(nn.Module):
    """An interchange of one subspace: ``forward(base, source, block)`` returns ``base`` ``[n, d]``
    with its aligned subspace taken from ``source`` ``[n, d]`` (``block``: an int, or ``[n]`` ids
    picking one block of coordinates per row). Stateless: the source comes with every call;
    :class:`Interchange` feeds it the source activation inside ``patch``."""

    kind = "abstract"

    def __init__(self, d: int):
        super().__init__()
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"d must be a positive int (the activation width), got {d!r}")
        self.d = d

    def forward(self, base: torch.Tensor, source: torch.Tensor, block=0) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> dict:
        """The JSON-able constructor arguments."""
        raise NotImplementedError

    def __repr__(self):
        return f"{self.kind}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


class Interchange(Intervention):
    """The intervention ``patch`` runs: at the selected positions of the base activation, the
    ``subspace`` swaps in the ``source`` activation's subspace.

    ``source`` is what ``Set`` takes: the full source activation ``[batch, seq, d]`` or just the
    selected positions ``[batch, n_positions, d]``; an activation without a position axis
    (``[batch, d]``, e.g. an MLP layer) is swapped whole. ``block``: an int or a LongTensor
    ``[batch]`` of per-example block ids (several causal variables in disjoint blocks of one
    rotation)."""

    def __init__(self, subspace: Subspace, source: torch.Tensor, at=None, block=None):
        if not isinstance(subspace, Subspace):
            raise TypeError(f"subspace must be a RotatedSubspace, BoundlessRotatedSubspace, "
                            f"LowRankRotatedSubspace or NeuronSubspace, got {type(subspace).__name__}")
        if not torch.is_tensor(source):
            raise TypeError(f"source must be a torch.Tensor, got {type(source).__name__}")
        if source.shape[-1] != subspace.d:
            raise ValueError(f"source has width {source.shape[-1]} but this {subspace.kind} was "
                             f"built for d={subspace.d}")
        super().__init__(at, None)
        self.subspace, self.source, self.block = subspace, source, 0 if block is None else block

    def __call__(self, act: torch.Tensor, ctx: PatchContext) -> torch.Tensor:
        if act.dim() == 2:  # [batch, d]: no position axis (an MLP layer)
            source = self.source if self.source.dim() == 2 else self.source.squeeze(1)
            if source.shape != act.shape:
                raise ValueError(f"site {ctx.site!r}: source of shape {tuple(self.source.shape)} "
                                 f"does not match the activation's {tuple(act.shape)}")
            return self.subspace(act, source.to(act.dtype), self._blocks(act.shape[0], None))
        if self.at is None and self.source.shape == act.shape and ctx.offset == 0:
            # every position: no gather/scatter needed
            b, s, d = act.shape
            blocks = self._blocks(b, None)
            if torch.is_tensor(blocks):
                blocks = blocks.repeat_interleave(s)
            new = self.subspace(act.reshape(b * s, d), self.source.reshape(b * s, d), blocks)
            return new.reshape(b, s, d).to(act.dtype)
        return super().__call__(act, ctx)

    def edit(self, h: torch.Tensor, index: Index, ctx: PatchContext) -> torch.Tensor:
        source = take_value(self.source.to(h.dtype), index, h, ctx.site)
        return self.subspace(h, source, self._blocks(index.batch, index.rows.to(h.device)))

    def _blocks(self, batch: int, rows: torch.Tensor | None):
        if isinstance(self.block, int):
            return self.block
        block = self.block.to(torch.long).reshape(-1)
        if block.numel() != batch:
            raise ValueError(f"block has {block.numel()} entries but the batch has {batch} rows")
        return block if rows is None else block.to(rows.device)[rows]


class RotatedSubspace(Subspace):
    """DAS: an orthogonal rotation R ``[d, d]``; rotated coordinates ``[block·k, block·k + k)``
    come from the source, the rest from the base; then rotate back (Rᵀ)."""

    kind = "RotatedSubspace"

    def __init__(self, d: int, k: int, seed: int = 0):
        super().__init__(d)
        if not isinstance(k, int) or not 1 <= k <= d:
            raise ValueError(f"k must be an int in 1..{d} (the subspace size), got {k!r}")
        self.k, self.seed = k, seed
        self.rotate = _orthogonal_linear(d, d, seed)
        self.n_blocks = d // k
        # block_masks[j, i] = 1 if rotated coordinate i belongs to block j
        blocks = torch.arange(d) // k
        self.register_buffer("block_masks", (blocks == torch.arange(self.n_blocks)[:, None]).float(),
                             persistent=False)

    @property
    def rotation(self) -> torch.Tensor:
        """R ``[d, d]`` (orthogonal; rotated = x @ R)."""
        return self.rotate.weight

    def forward(self, base, source, block=0):
        R = self.rotation
        b = base.to(R.dtype)  # bf16 inputs: compute in R's dtype
        diff = source.to(R.dtype) - b
        # Rᵀ-back of (source coords in the block, base coords elsewhere) = b + Rᵀ-back of the
        # masked rotated difference (s − b)
        if isinstance(block, int):  # one block for every row: only its k columns of R matter
            self._check_blocks(block, block)
            W = R[:, block * self.k:(block + 1) * self.k]
            return _swap_in(b, diff, W).to(base.dtype)
        block = block.to(diff.device).reshape(-1)
        self._check_blocks(*torch.aminmax(block))
        mask = self.block_masks.to(R.dtype).index_select(0, block)  # [n, d]
        return _add_back(b, (diff @ R) * mask, R).to(base.dtype)

    def _check_blocks(self, low, high) -> None:
        if int(low) < 0 or int(high) >= self.n_blocks:
            raise ValueError(f"block ids must be in 0..{self.n_blocks - 1} for d={self.d}, k={self.k}")

    def config(self):
        return dict(d=self.d, k=self.k, seed=self.seed)


class LowRankRotatedSubspace(Subspace):
    """Low-rank DAS: orthonormal W ``[d, k]``; out = b + (s·W − b·W)·Wᵀ (only span W changes).
    ``block`` is ignored: one subspace."""

    kind = "LowRankRotatedSubspace"

    def __init__(self, d: int, k: int, seed: int = 0):
        super().__init__(d)
        if not isinstance(k, int) or not 1 <= k <= d:
            raise ValueError(f"k must be an int in 1..{d} (the subspace size), got {k!r}")
        self.k, self.seed = k, seed
        self.rotate = _orthogonal_linear(d, k, seed)

    @property
    def basis(self) -> torch.Tensor:
        """W ``[d, k]`` with orthonormal columns."""
        return self.rotate.weight

    def forward(self, base, source, block=0):
        W = self.basis
        b = base.to(W.dtype)
        return _swap_in(b, source.to(W.dtype) - b, W).to(base.dtype)

    def config(self):
        return dict(d=self.d, k=self.k, seed=self.seed)


class BoundlessRotatedSubspace(Subspace):
    """Boundless DAS: rotation R and learned boundaries; rotated coordinate i of variable j is
    swapped with weight m_ij = σ((i + ½ − e_j)/τ)·σ((e_{j+1} − i − ½)/τ), where the block
    edges are e = (d / n_variables) · cumsum([0, b_1, …, b_n]) and b_j ∈ [1e-3, 1] are learned.

    One variable with b = 0.5 is pyvene's layout (block [0, b·d)). Coordinates are measured at
    their centres (i + ½), so as τ → 0 every mask entry becomes exactly 0 or 1; pyvene uses i,
    which leaves coordinate 0 half-swapped at every temperature. ``temperature`` is a buffer set
    by the schedule (:func:`nbtoolkit.das.temperature_schedule`), not trained.
    """

    kind = "BoundlessRotatedSubspace"

    def __init__(self, d: int, n_variables: int = 1, init: float = 0.5, seed: int = 0,
                 temperature: float = 50.0):
        super().__init__(d)
        if not isinstance(n_variables, int) or n_variables < 1:
            raise ValueError(f"n_variables must be a positive int, got {n_variables!r}")
        if not 1e-3 <= init <= 1:
            raise ValueError(f"init must be in [1e-3, 1] (fraction of the block), got {init!r}")
        self.n_variables, self.init, self.seed = n_variables, float(init), seed
        self.rotate = _orthogonal_linear(d, d, seed)
        self.boundaries = nn.Parameter(torch.full((n_variables,), float(init)))
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    @property
    def rotation(self) -> torch.Tensor:
        return self.rotate.weight

    def set_temperature(self, value: float) -> None:
        self.temperature.fill_(float(value))

    def edges(self) -> torch.Tensor:
        """Block edges ``[n_variables + 1]`` in rotated coordinates (0 … ≤ d)."""
        b = self.boundaries.clamp(1e-3, 1.0)
        return torch.cat([b.new_zeros(1), torch.cumsum(b, 0)]) * (self.d / self.n_variables)

    def masks(self) -> torch.Tensor:
        """Soft masks ``[n_variables, d]`` in [0, 1]."""
        e = self.edges()
        i = torch.arange(self.d, dtype=e.dtype, device=e.device) + 0.5
        t = self.temperature.to(e.dtype)
        return torch.sigmoid((i - e[:-1, None]) / t) * torch.sigmoid((e[1:, None] - i) / t)

    def subspace_sizes(self) -> list[float]:
        """The current block widths ``e_{j+1} − e_j`` (how many rotated dims each variable uses)."""
        return self.edges().diff().tolist()

    def forward(self, base, source, block=0):
        R = self.rotation
        b = base.to(R.dtype)
        masks = self.masks()
        m = masks[torch.as_tensor(block, device=masks.device)]
        diff = source.to(R.dtype) - b
        # Rᵀ((1 − m)⊙Rb + m⊙Rs) = b + Rᵀ(m⊙R(s − b))
        if m.dim() == 1:  # one block for every row
            return _swap_in(b, diff, R, m).to(base.dtype)
        return _add_back(b, m * (diff @ R), R).to(base.dtype)

    def config(self):
        return dict(d=self.d, n_variables=self.n_variables, init=self.init, seed=self.seed)


class NeuronSubspace(Subspace):
    """The neuron-aligned (unrotated) interchange: neurons ``dims`` come from the source.
    ``dims`` is a list of ints, or one list per block (``block`` picks one per example)."""

    kind = "NeuronSubspace"

    def __init__(self, d: int, dims):
        super().__init__(d)
        groups = [list(dims)] if dims and all(isinstance(x, int) for x in dims) else \
            [list(g) for g in dims]
        if not groups or any(not g or not all(isinstance(x, int) and 0 <= x < d for x in g)
                             for g in groups):
            raise ValueError(f"dims must be neuron indices in 0..{d - 1} (or one list per block), "
                             f"got {dims!r}")
        self.dims = groups
        mask = torch.zeros(len(groups), d, dtype=torch.bool)
        for j, g in enumerate(groups):
            mask[j, g] = True
        self.register_buffer("neuron_mask", mask)

    def forward(self, base, source, block=0):
        m = self.neuron_mask[torch.as_tensor(block, device=self.neuron_mask.device)]
        m = m if m.dim() == 2 else m[None]
        return torch.where(m.to(base.device), source, base)

    def config(self):
        return dict(d=self.d, dims=self.dims)


KINDS: dict[str, type[Subspace]] = {cls.kind: cls for cls in (
    RotatedSubspace, LowRankRotatedSubspace, BoundlessRotatedSubspace, NeuronSubspace)}


def save_intervention(intervention: Subspace, folder: str | os.PathLike) -> Path:
    """Write ``intervention.json`` (kind, config, dtype) and ``intervention.safetensors`` (its
    ``state_dict``, float32) into ``folder`` (created; files written atomically)."""
    from safetensors.torch import save_file

    if type(intervention).kind not in KINDS or KINDS[type(intervention).kind] is not type(intervention):
        raise TypeError(f"cannot save {type(intervention).__name__}; savable kinds: {', '.join(KINDS)}")
    folder = Path(folder)
    tensors = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in intervention.state_dict().items()}
    atomic_write(folder / TENSOR_FILE, lambda tmp: save_file(tensors, tmp))
    dtypes = [p.dtype for p in intervention.parameters() if p.is_floating_point()]
    write_json(folder / CONFIG_FILE, {"format": FORMAT, "kind": intervention.kind,
                                      "config": intervention.config(),
                                      "dtype": str(dtypes[0] if dtypes else torch.float32)})
    return folder


def load_intervention(folder: str | os.PathLike, map_location: str = "cpu") -> Subspace:
    """Rebuild a saved intervention on ``map_location`` from its folder (the kind comes from an
    allow-list, the tensors through ``load_state_dict(strict=True)``). ``ValueError`` for an
    unknown kind, a malformed config, missing, extra, wrongly shaped or non-finite tensors, or a
    rotation that is not orthonormal."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder}: no {CONFIG_FILE}; not a saved intervention") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{folder / CONFIG_FILE}: not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise ValueError(f"{folder / CONFIG_FILE}: unsupported format {found!r}; expected {FORMAT} "
                         f"(format 1 was written by nbtoolkit 0.1: train and save it again)")
    kind = meta.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{folder / CONFIG_FILE}: unknown intervention kind {kind!r}; "
                         f"allowed kinds: {', '.join(KINDS)}")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{folder / CONFIG_FILE}: 'config' must be an object, got {config!r}")
    try:
        intervention = KINDS[kind](**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{folder / CONFIG_FILE}: bad config for {kind}: {error}") from None
    dtype = _SAVED_DTYPES.get(meta.get("dtype", "torch.float32"))
    if dtype is None:
        raise ValueError(f"{folder / CONFIG_FILE}: dtype {meta.get('dtype')!r} is not one of "
                         f"{', '.join(_SAVED_DTYPES)}")
    try:
        tensors = load_file(str(folder / TENSOR_FILE))
    except Exception as error:  # missing, truncated or not safetensors
        raise ValueError(f"{folder / TENSOR_FILE}: cannot read the tensors ({error})") from None
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{folder / TENSOR_FILE}: tensors {bad} have non-finite values")
    try:
        intervention.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{folder / TENSOR_FILE}: the tensors do not fit {kind}({config}): "
                         f"{error}") from None
    for name in ("rotation", "basis"):
        if hasattr(intervention, name):
            with torch.no_grad():
                W = getattr(intervention, name).double()
            error = (W.T @ W - torch.eye(W.shape[1], dtype=W.dtype)).abs().max().item()
            # a rotation stored in bf16/fp16 is orthonormal up to its rounding
            tolerance = max(1e-3, 4 * torch.finfo(dtype).eps * W.shape[0] ** 0.5)
            if error > tolerance:
                raise ValueError(f"{folder / TENSOR_FILE}: {name!r} is not orthonormal "
                                 f"(max |WᵀW − I| = {error:.3g} > {tolerance:.3g} for {dtype})")
    return intervention.to(map_location, dtype)


_SAVED_DTYPES = {str(t): t for t in (torch.float32, torch.float64, torch.bfloat16, torch.float16)}


__all__ = ["BoundlessRotatedSubspace", "Interchange", "KINDS", "LowRankRotatedSubspace",
           "NeuronSubspace", "RotatedSubspace", "Subspace", "load_intervention",
           "save_intervention", "set_orthogonal"]
