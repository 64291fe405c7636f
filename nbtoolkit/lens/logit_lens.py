"""The logit lens (nostalgebraist 2020): what each layer's residual stream predicts when it is
read through the model's own read-out, as if the blocks after it were skipped.

    result = logit_lens(lm, "The Eiffel Tower is in the city of")
    result.logprobs          # [layers, positions, vocab] (a list of prompts: [batch, layers, ...])
    result.top_tokens        # [layers, positions, top_k] strings
    result.target_ranks      # [layers, positions]: rank of the target (default: the model's
                             # own final prediction at each position; 0 = top)
    result.to_frame()

Layers as everywhere: −1 is the residual stream entering block 0 (the embeddings, plus absolute
positions where the family adds them), layer i the stream leaving block i; the last layer's lens
is the model's logits. ``components=True`` also reads each block's attention and MLP terms alone
through the read-out (rows ``layer.i.attn``, ``layer.i.mlp`` before ``layer.i``). Positions are
each prompt's own token positions (left padding skipped), so a batch gives what each prompt gives
alone; positions a shorter prompt lacks are NaN (ids −1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import check_layers, hf_model, n_layers_of, require, site_name
from ..core.hooks import capture
from ..core.lm import LAST_POSITION
from .inputs import prompt_list, prompt_tokens, token_columns, token_id
from .readout import unembed

SUPPORTED_KINDS = ("decoder",)  # a causal LM's read-out
# a translator maps (layer, residual stream [..., d_model]) to the stream to read (tuned lens)
Translator = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass
class LensResult:
    """What each read row (a layer, or one block's attention or MLP term) predicts at each
    position. With one prompt (a string) the batch axis is absent: ``logprobs`` is
    ``[rows, positions, vocab]``; with a list, ``[batch, rows, positions, vocab]``.

    ``labels``/``layers``/``kinds`` describe the rows (``"embed"`` or a site name; −1 … n − 1;
    ``"resid"``, ``"attn"``, ``"mlp"``). ``positions`` ``[batch, positions]`` the token positions
    read (−1: none). ``top_ids``/``top_logprobs``/``top_tokens`` ``[..., rows, positions, top_k]``;
    ``target_ids`` ``[..., positions]``; ``target_logprobs``/``target_ranks`` ``[..., rows,
    positions]`` (rank 0 = the top token). ``logprobs`` is ``None`` when not kept."""

    lens: str
    labels: list[str]
    layers: list[int]
    kinds: list[str]
    tokens: list[list[str]]
    positions: np.ndarray
    top_ids: torch.Tensor
    top_logprobs: torch.Tensor
    top_tokens: np.ndarray
    target_ids: torch.Tensor
    target_tokens: np.ndarray
    target_logprobs: torch.Tensor
    target_ranks: torch.Tensor
    logprobs: torch.Tensor | None
    single: bool

    def row(self, label: str | int) -> int:
        """The row index of a label (``"layer.3"``) or, for an int, of that layer's stream."""
        key = ("resid", label) if isinstance(label, int) else None
        for i, (name, layer, kind) in enumerate(zip(self.labels, self.layers, self.kinds)):
            if (kind, layer) == key or name == label:
                return i
        raise ValueError(f"no row {label!r}; rows: {self.labels}")

    def to_frame(self) -> pd.DataFrame:
        """One row per (prompt, read row, position): the input token there, the lens's top token
        and its probability, the target, its log-probability and rank."""
        batched = (lambda x: x[None]) if self.single else (lambda x: x)
        top_ids, top_lp, top_tok = map(batched, (self.top_ids, self.top_logprobs, self.top_tokens))
        target, target_tok = batched(self.target_ids), batched(self.target_tokens)
        target_lp, ranks = batched(self.target_logprobs), batched(self.target_ranks)
        records = []
        for b, prompt_tokens in enumerate(self.tokens):
            for r, (label, layer, kind) in enumerate(zip(self.labels, self.layers, self.kinds)):
                for j, position in enumerate(self.positions[b]):
                    if position < 0:
                        continue
                    records.append(dict(
                        prompt=b, row=label, layer=layer, kind=kind, position=int(position),
                        token=prompt_tokens[position], top_token=top_tok[b, r, j, 0],
                        top_prob=float(np.exp(top_lp[b, r, j, 0])),
                        target=target_tok[b, j], target_id=int(target[b, j]),
                        target_logprob=float(target_lp[b, r, j]), target_rank=int(ranks[b, r, j])))
        return pd.DataFrame.from_records(records)


def logit_lens(lm, prompts: str | Sequence[str], *, layers: Sequence[int] | int | None = None,
               positions: int | Sequence[int] | None = None, components: bool = False,
               target: str | int | Sequence[str | int] | None = None, top_k: int = 5,
               keep_logprobs: bool = True) -> LensResult:
    """Each layer's residual stream read through the family's own final norm and unembedding.

    ``layers``: −1 … n − 1 (default all); ``positions``: token positions of each prompt (default
    all); ``target``: a token (text: its first token, with a warning if it has several; or an id),
    one per prompt, or ``None`` for the model's own final prediction at each position;
    ``keep_logprobs=False`` keeps only the top tokens and the target's log-probs and ranks (the
    full ``[..., vocab]`` array of a large vocabulary is big)."""
    return read_lens(lm, prompts, None, "logit lens", layers=layers, positions=positions,
                     components=components, target=target, top_k=top_k,
                     keep_logprobs=keep_logprobs)


def read_lens(lm, prompts, translate: Translator | None, lens: str, *, layers=None,
              positions=None, components: bool = False, target=None, top_k: int = 5,
              keep_logprobs: bool = True, translated_layers: Sequence[int] | None = None
              ) -> LensResult:
    """The lens call shared by the logit and tuned lenses: ``translate(layer, h)`` (``None``: the
    identity) maps a layer's stream before the read-out; ``translated_layers`` the layers it
    accepts (``layers`` defaults to them)."""
    model = hf_model(lm)
    require(model, lens, SUPPORTED_KINDS)
    texts, single = prompt_list(prompts)
    n = n_layers_of(model)
    if layers is None and translated_layers is not None:
        layers = list(translated_layers)
    layers = check_layers(model, layers)
    missing = [l for l in layers if translated_layers is not None and l not in translated_layers]
    if missing:
        raise ValueError(f"the {lens} has no translator for layers {missing}; its layers: "
                         f"{list(translated_layers)}")
    if not isinstance(components, bool):
        raise TypeError(f"components must be True or False, got {components!r}")
    vocab = model.get_output_embeddings().weight.shape[0]
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be an int in 1..{vocab}, got {top_k!r}")
    rows = _rows(layers, components)
    batch = lm.encode(texts)
    cols, valid = token_columns(batch["attention_mask"], positions)
    wanted = _targets(lm, target, len(texts))
    sites = sorted({site for *_, site in rows} | {layer_site(n - 1)})
    with torch.no_grad(), capture(lm, sites) as acts:
        model(**batch, logits_to_keep=LAST_POSITION)
    index = torch.arange(len(texts), device=cols.device)[:, None]

    @torch.no_grad()
    def read(layer: int, kind: str, site: str) -> torch.Tensor:
        h = acts[site][index, cols]  # [batch, positions, d_model]
        if translate is not None and kind == "resid":
            h = translate(layer, h)
        return unembed(lm, h).float().log_softmax(-1).cpu()

    final = read(n - 1, "resid", layer_site(n - 1))
    target_ids = final.argmax(-1) if wanted is None else wanted.expand(len(texts), cols.shape[1])
    valid = valid.cpu()
    kept, tops, target_lps, ranks = [], [], [], []
    for label, layer, kind, site in rows:
        logprobs = final if (kind, layer) == ("resid", n - 1) else read(layer, kind, site)
        logprobs = logprobs.masked_fill(~valid[..., None], float("nan"))
        tops.append(logprobs.nan_to_num(-torch.inf).topk(top_k, dim=-1))
        chosen = logprobs.gather(-1, target_ids[..., None])
        target_lps.append(chosen[..., 0])
        ranks.append((logprobs > chosen).sum(-1))
        if keep_logprobs:
            kept.append(logprobs)
    top_ids = torch.stack([t.indices for t in tops], 1).masked_fill(~valid[:, None, :, None], -1)
    target_ids = target_ids.masked_fill(~valid, -1)
    squeeze = (lambda x: x[0]) if single else (lambda x: x)
    return LensResult(
        lens=lens, labels=[r[0] for r in rows], layers=[r[1] for r in rows],
        kinds=[r[2] for r in rows], tokens=[prompt_tokens(lm, batch, b) for b in range(len(texts))],
        positions=_positions(batch["attention_mask"].cpu(), cols.cpu(), valid),
        top_ids=squeeze(top_ids), top_logprobs=squeeze(torch.stack([t.values for t in tops], 1)),
        top_tokens=squeeze(decode(lm, top_ids)), target_ids=squeeze(target_ids),
        target_tokens=squeeze(decode(lm, target_ids)),
        target_logprobs=squeeze(torch.stack(target_lps, 1)),
        target_ranks=squeeze(torch.stack(ranks, 1).masked_fill(~valid[:, None], -1)),
        logprobs=squeeze(torch.stack(kept, 1)) if keep_logprobs else None, single=single)


def layer_site(layer: int) -> str:
    """The site a lens reads for ``layer``: the stream leaving block ``layer``, or for −1 the
    stream entering block 0 (the embeddings, with absolute positions where the family adds them)."""
    return site_name(0, "in") if layer == -1 else site_name(layer)


def _rows(layers: list[int], components: bool) -> list[tuple[str, int, str, str]]:
    """``(label, layer, kind, site read)`` per row."""
    rows = []
    for layer in layers:
        if components and layer >= 0:
            rows += [(site_name(layer, kind), layer, kind, site_name(layer, kind))
                     for kind in ("attn", "mlp")]
        rows.append(("embed" if layer == -1 else site_name(layer), layer, "resid", layer_site(layer)))
    return rows


def _targets(lm, target, n_prompts: int) -> torch.Tensor | None:
    """Target ids ``[batch or 1, 1]``, or ``None`` for the model's own prediction."""
    if target is None:
        return None
    if isinstance(target, (list, tuple)):
        if len(target) != n_prompts:
            raise ValueError(f"give one target per prompt: {len(target)} targets for "
                             f"{n_prompts} prompts")
        return torch.tensor([[token_id(lm, t, "target")] for t in target])
    return torch.tensor([[token_id(lm, target, "target")]])


def _positions(mask: torch.Tensor, cols: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """Each read column's token position in its prompt ``[batch, positions]`` (−1: none)."""
    pads = (mask.cumsum(-1) == 0).sum(-1, keepdim=True)
    return torch.where(valid, cols - pads, -1).numpy()


def decode(lm, ids: torch.Tensor) -> np.ndarray:
    """Token strings of an id tensor of any shape (−1: ``""``), as an object array."""
    flat = ids.reshape(-1).tolist()
    unique = sorted({i for i in flat if i >= 0})
    text = {-1: "", **dict(zip(unique, lm.tokenizer.batch_decode([[i] for i in unique])))}
    return np.array([text[i] for i in flat], dtype=object).reshape(tuple(ids.shape))
