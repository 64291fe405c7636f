"""Direct logit attribution: how much each component of the model wrote the answer (minus a
distractor) into the final residual stream.

    dla = direct_logit_attribution(lm, "The capital of France is", " Paris", " London")
    dla.total          # the logit difference the components explain (== dla.logit_diff)
    dla.top(10)        # the components with the largest |contribution|
    dla.to_frame()     # one row per component

A decoder's final residual stream is the sum of its embeddings (plus absolute positions where the
family adds them) and every block's attention and MLP terms (parallel blocks too: both terms are
added to the same stream). Each attention term is the sum of its heads' outputs through their
slices of the output projection, plus the projection's bias; on Gemma-2/3 and OLMo-2, which
normalise the attention output before adding it, that norm is frozen at its scale on this run, so
the heads still sum to the term. The final norm is not linear: it divides by the scale of the
whole stream. Frozen at its scale on this run (the standard approximation, TransformerLens's
``apply_ln_to_stack``: a component's effect on the scale itself is not counted) it is, and each
component's contribution is its frozen-normed vector · (unembedding of the answer − of the
distractor). The contributions then sum to the model's logit difference (float rounding) on every
pre-norm decoder with a final norm, except:

* Gemma-2 soft-caps its logits (``cap · tanh(logits / cap)``): the contributions sum to the
  difference before the cap (``logit_diff`` is the capped one the model outputs);
* OPT-350m (post-norm blocks, no final norm) is refused: its stream is not a sum of components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import (attn_output_norm, config_value, has_positions, hf_model, n_layers_of,
                            readout, require, resolve_site, site_name)
from ..core.hooks import capture
from .inputs import token_columns, token_id
from .readout import frozen_norm

SUPPORTED_KINDS = ("decoder",)


@dataclass
class DLAResult:
    """One row per component: ``labels`` (``"embed"``, ``"positions"``,
    ``"layer.3.attn.heads[5]"``, ``"layer.3.attn bias"``, ``"layer.3.mlp"``, ``"final_norm
    bias"``, ``"unembed bias"``), ``kinds``, ``layers`` (−1: none), ``heads`` (−1: none) and
    ``values``: its contribution to the logit difference (logits, float64). ``logit_diff``: the
    model's own difference at ``position``; ``softcap``: the cap applied after the unembedding
    (``None``: none, and then ``total == logit_diff``)."""

    prompt: str
    answer: str
    distractor: str | None
    position: int
    labels: list[str]
    kinds: list[str]
    layers: np.ndarray
    heads: np.ndarray
    values: np.ndarray
    logit_diff: float
    softcap: float | None

    @property
    def total(self) -> float:
        """The logit difference the components explain: the sum of every row."""
        return float(self.values.sum())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"component": self.labels, "kind": self.kinds, "layer": self.layers,
                             "head": self.heads, "contribution": self.values})

    def top(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` components with the largest absolute contribution."""
        frame = self.to_frame()
        return frame.iloc[np.argsort(-np.abs(self.values), kind="stable")[:n]]

    def head_matrix(self) -> np.ndarray:
        """Each head's contribution ``[n_layers, n_heads]``."""
        matrix = np.zeros((self.layers.max() + 1, self.heads.max() + 1))
        rows = np.array(self.kinds) == "head"
        matrix[self.layers[rows], self.heads[rows]] = self.values[rows]
        return matrix


def direct_logit_attribution(lm, prompt: str, answer: str | int, distractor: str | int | None = None,
                             *, position: int = -1) -> DLAResult:
    """Each component's direct contribution to ``logit(answer) − logit(distractor)`` at
    ``position`` of ``prompt`` (default its last token), through the final norm frozen at this
    run's scale (see the module docstring). ``answer``/``distractor``: a text (its first token,
    with a warning when it has several) or a token id; without a distractor, the answer's logit."""
    model = hf_model(lm)
    require(model, "direct logit attribution", SUPPORTED_KINDS)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    answer_id = token_id(lm, answer, "answer")
    distractor_id = None if distractor is None else token_id(lm, distractor, "distractor")
    if distractor_id == answer_id:
        raise ValueError(f"answer {answer!r} and distractor {distractor!r} are the same token "
                         f"(id {answer_id}): their logit difference is 0 by construction")
    parts = readout(model)
    if parts.final_norm is None:
        raise ValueError(f"this {lm.family} model has no final norm (OPT-350m's layout: blocks "
                         f"normalise after their sums), so its final residual stream is not the "
                         f"sum of its components' outputs; direct logit attribution needs a "
                         f"pre-norm model with a final norm")
    batch = lm.encode(prompt)
    col = int(token_columns(batch["attention_mask"], position)[0][0, 0])
    n = n_layers_of(model)
    sites = ["embed", *(["positions"] if has_positions(model) else []),
             *(site_name(i, kind) for i in range(n) for kind in ("attn.heads", "attn", "mlp")),
             site_name(n - 1)]
    with torch.no_grad(), capture(lm, sites) as acts:
        logits = model(**batch).logits[0, col].float()
    at = {site: acts[site][0, col] for site in sites}
    rows = _components(model, at, n, parts.centred)
    final = frozen_norm(parts.final_norm, at[site_name(n - 1)][None], parts.centred)
    with torch.no_grad():
        vectors = final(torch.stack([v for *_, v in rows]))
        if final.bias.abs().max() > 0:  # LayerNorm's bias: a constant of the read-out
            vectors = torch.cat([vectors, final.bias[None]])
            rows.append(("final_norm bias", "final_norm_bias", -1, -1, None))
        if parts.project_out is not None:
            vectors = parts.project_out(vectors.to(at["embed"].dtype)).float()
        weight = parts.unembed.weight.float()
        direction = weight[answer_id] - (weight[distractor_id] if distractor_id is not None else 0)
        values = (vectors @ direction).double()
    bias = getattr(parts.unembed, "bias", None)
    if bias is not None:
        b = bias.detach().float()
        offset = b[answer_id] - (b[distractor_id] if distractor_id is not None else 0)
        values = torch.cat([values, offset.double()[None]])
        rows.append(("unembed bias", "unembed_bias", -1, -1, None))
    diff = logits[answer_id] - (logits[distractor_id] if distractor_id is not None else 0)
    decode = lambda i: None if i is None else lm.tokenizer.decode([i])  # noqa: E731
    return DLAResult(prompt, decode(answer_id), decode(distractor_id), position,
                     [r[0] for r in rows], [r[1] for r in rows],
                     np.array([r[2] for r in rows]), np.array([r[3] for r in rows]),
                     values.cpu().numpy(), float(diff), parts.softcap)


@torch.no_grad()
def _components(model, at: dict, n: int, centred: bool) -> list[tuple]:
    """``(label, kind, layer, head, vector [d_model] float32)`` of every term of the final
    residual stream at one position, in forward order."""
    rows = [("embed", "embed", -1, -1, at["embed"].float())]
    if "positions" in at:
        rows.append(("positions", "positions", -1, -1, at["positions"].float()))
    n_heads = config_value(model, "n_heads")
    for i in range(n):
        heads_site = site_name(i, "attn.heads")
        projection = resolve_site(model, heads_site).module
        z = at[heads_site]  # [n_heads, d_head]
        alone = torch.zeros(n_heads, *z.shape, dtype=z.dtype, device=z.device)
        alone[range(n_heads), range(n_heads)] = z  # row h: head h's output, the others zeroed
        bias = projection(torch.zeros_like(z.reshape(1, -1)))[0]
        per_head = (projection(alone.reshape(n_heads, -1)) - bias).float()
        bias = bias.float()
        norm = attn_output_norm(model, i)
        if norm is not None:  # the attention term is norm(projection output): freeze its scale
            frozen = frozen_norm(norm, projection(z.reshape(1, -1)), centred)
            per_head, bias = frozen(per_head), frozen(bias[None])[0] + frozen.bias
        rows += [(f"{heads_site}[{h}]", "head", i, h, per_head[h]) for h in range(n_heads)]
        if bias.abs().max() > 0:
            rows.append((f"{site_name(i, 'attn')} bias", "attn_bias", i, -1, bias))
        rows.append((site_name(i, "mlp"), "mlp", i, -1, at[site_name(i, "mlp")].float()))
    return rows
