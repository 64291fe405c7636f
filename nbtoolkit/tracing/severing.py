"""ROME's severing (Meng et al. 2022, Fig. 3): restore a hidden state while the MLP (or attention)
outputs at its token stay corrupted in every later layer.

    result = severed_trace(lm, "The Space Needle is in the city of", "The Space Needle")
    result.aie["mlp"]          # [n_layers]: the effect of each layer's state without later MLPs
    average = average_severed(lm, facts)                  # the same over known facts
    nbtoolkit.viz.tracing.plot_severed(average)

For each layer l the clean hidden state (block output ``layer.{l}``) at token t is copied into the
subject-corrupted rows, as in :func:`~nbtoolkit.tracing.causal_trace` with ``kind="hidden"``.
``"mlp"`` severed: the MLP outputs at token t of blocks l+1 … L−1 are set back to their values
in the corrupted run (ROME's ``trace_with_repatch``: a record pass, then the restoration pass),
so the restored state reaches the answer only through what the later MLPs at t do not compute.
``"attn"`` alike for the attention outputs. ``"none"`` is the plain restoration.

One difference from ROME's code, on purpose: its record pass and restoration pass draw their noise
one after the other from one ``RandomState``, so the corrupted outputs it writes back come from
another noise draw than the run they are written into. Here both are the same draw (the common
random numbers every causal trace uses), so "kept corrupted" means the very corrupted run being
restored, and severing at or below the restored layer would change nothing.

Fast path (the same numbers as one forward per cell, checked in tests): the causal tracer's clean
and corrupted runs, corrupted KV-cache prefix and block slicing are reused as they are; the record
pass is one more corrupted forward per prompt. Severing is one intervention per MLP (attention)
site at the restored token that writes the recorded output into every row: a restoration at layer
l joins the tracer's batch at block l + 1, so every row that reaches block j belongs to a
restoration below j, and block j's output at t is severed for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import site_name
from ..core.hooks import capture, patch
from ..core.lm import LAST_POSITION
from ..core.modes import eval_mode
from .average import with_progress, answer_matches, facts_and_noise
from .tracer import Tracer

SEVERED = ("none", "mlp", "attn")  # plain restoration, MLPs severed, attention severed
SEVERING_COLUMNS = ("sever", "layer", "aie", "ci_low", "ci_high", "n_facts")


@dataclass
class SeveringResult:
    """Hidden-state restorations at one token per fact, plain and with later MLP / attention
    outputs at that token kept corrupted.

    ``scores[sever]``: ``[n_facts, n_layers]`` p(answer) with the clean state at layer l restored
    (``sever`` in :data:`SEVERED`). ``low_scores`` / ``high_scores`` ``[n_facts]``: corrupted /
    clean p(answer). ``token_index[i]``: the restored token of fact i.
    """

    scores: dict[str, np.ndarray]
    low_scores: np.ndarray
    high_scores: np.ndarray
    prompts: list[str]
    subjects: list[str]
    answers: list[str]
    token_index: list[int]
    samples: int = 10
    noise: float = 0.0
    skipped: list[dict] = field(default_factory=list)

    @property
    def n_facts(self) -> int:
        return len(self.prompts)

    @property
    def n_layers(self) -> int:
        return self.scores["none"].shape[1]

    def _effects(self, sever: str) -> np.ndarray:
        """Per-fact indirect effects ``[n_facts, n_layers]`` (score − that fact's low score)."""
        return self.scores[sever] - self.low_scores[:, None]

    @property
    def aie(self) -> dict[str, np.ndarray]:
        """Average indirect effect per layer, ``{sever: [n_layers]}`` (ROME's bars)."""
        return {sever: self._effects(sever).mean(0) for sever in SEVERED}

    @property
    def ci95(self) -> dict[str, np.ndarray]:
        """Half-width of the 95% interval of each AIE, 1.96·std/√n_facts, ``{sever: [n_layers]}``."""
        return {sever: 1.96 * self._effects(sever).std(0) / np.sqrt(self.n_facts)
                for sever in SEVERED}

    def to_frame(self) -> pd.DataFrame:
        """One row per (sever, layer): ``sever, layer, aie, ci_low, ci_high, n_facts``
        (:data:`SEVERING_COLUMNS`)."""
        aie, ci = self.aie, self.ci95
        rows = [dict(sever=sever, layer=layer, aie=aie[sever][layer],
                     ci_low=aie[sever][layer] - ci[sever][layer],
                     ci_high=aie[sever][layer] + ci[sever][layer], n_facts=self.n_facts)
                for sever in SEVERED for layer in range(self.n_layers)]
        return pd.DataFrame(rows, columns=SEVERING_COLUMNS)


def severed_trace(lm, prompt: str, subject: str, *, token: int | None = None, samples: int = 10,
                  noise: str | float = "s3", seed: int = 1, target: str | int | None = None,
                  max_tokens: int = 8192) -> SeveringResult:
    """ROME's Figure 3 for one prompt: restore the hidden state at ``token`` (default: the last
    subject token) at every layer, plainly and with the later MLP / attention outputs at that
    token severed. Arguments as :func:`~nbtoolkit.tracing.causal_trace`."""
    with eval_mode(lm.model):
        tracer = Tracer(lm, prompt, subject, samples=samples, noise=noise, seed=seed,
                         target=target, max_tokens=max_tokens)
        if token is not None and (isinstance(token, bool) or not isinstance(token, int)):
            raise TypeError(f"token must be None (the last subject token) or a token index, "
                            f"got {token!r}")
        t = tracer.end - 1 if token is None else tracer.positions([token])[0]
        scores = _severed_scores(tracer, t)
    return SeveringResult(scores={s: v[None] for s, v in scores.items()},
                          low_scores=np.array([tracer.low_score]),
                          high_scores=np.array([tracer.high_score]), prompts=[prompt],
                          subjects=[subject], answers=[tracer.answer], token_index=[t],
                          samples=samples, noise=tracer.level)


def average_severed(lm, facts: Sequence[dict], *, samples: int = 10, noise: str | float = "s3",
                    seed: int = 1, only_correct: bool = True, max_tokens: int = 8192,
                    progress: bool = True) -> SeveringResult:
    """:func:`severed_trace` at the last subject token of each fact (dicts with ``prompt``,
    ``subject``, ``attribute``), stacked: ``result.aie`` is ROME's Figure 3.

    ``only_correct`` skips facts whose clean top-1 token does not begin the attribute (as
    :func:`~nbtoolkit.tracing.average_indirect_effect`); ``noise="s<f>"`` takes σ over these
    facts' subjects."""
    facts, level = facts_and_noise(lm, facts, noise, "average_severed")
    kept, skipped = [], []
    for fact in with_progress(facts, "severing", progress):
        result = severed_trace(lm, fact["prompt"], fact["subject"], samples=samples, noise=level,
                               seed=seed, max_tokens=max_tokens)
        if only_correct and not answer_matches(result.answers[0], fact["attribute"]):
            skipped.append(fact)
        else:
            kept.append(result)
    if not kept:
        raise ValueError(f"none of the {len(facts)} facts is answered correctly by the model; "
                         f"pass only_correct=False to average them anyway")
    return SeveringResult(
        scores={s: np.concatenate([r.scores[s] for r in kept]) for s in SEVERED},
        low_scores=np.concatenate([r.low_scores for r in kept]),
        high_scores=np.concatenate([r.high_scores for r in kept]),
        prompts=[r.prompts[0] for r in kept], subjects=[r.subjects[0] for r in kept],
        answers=[r.answers[0] for r in kept], token_index=[r.token_index[0] for r in kept],
        samples=samples, noise=level, skipped=skipped)


# ---------------------------------------------------------------- internals

def _severed_scores(tracer: Tracer, t: int) -> dict[str, np.ndarray]:
    """``{sever: [n_layers]}`` scores of restoring ``layer.{l}`` at token ``t`` for every l."""
    L, S = tracer.L, tracer.samples
    scores = {sever: np.full(L, tracer.low_score) for sever in SEVERED}
    # before the subject clean == corrupted; the last block's output at a token other than the
    # last feeds only that token's own logits: those restorations change nothing the metric reads
    layers = [l for l in range(L) if t >= tracer.start and (l < L - 1 or t == tracer.T - 1)]
    if not layers:
        return scores
    recorded = _record(tracer)
    prefix = tracer.prefix(t)
    per_forward = max(1, tracer.max_tokens // (S * tracer.T))  # as the tracer bounds a forward
    for sever in SEVERED:
        sites = [] if sever == "none" else [site_name(l, sever) for l in range(L)]
        keep = {site: _keep_corrupted(recorded[site][:, t], S) for site in sites}
        with patch(tracer.lm, keep):
            for i in range(0, len(layers), per_forward):
                chunk = layers[i:i + per_forward]
                group = [(l + 1, [site_name(l)]) for l in chunk]  # layer.l enters block l+1
                scores[sever][chunk] = tracer.run(t, prefix, group)
    return scores


def _record(tracer: Tracer) -> dict[str, torch.Tensor]:
    """ROME's record pass: every MLP and attention output of the corrupted run,
    ``{site: [samples, T, d_model]}``."""
    sites = [site_name(l, kind) for kind in ("mlp", "attn") for l in range(tracer.L)]
    ids = tracer.ids.expand(tracer.samples, tracer.T)
    with torch.no_grad(), patch(tracer.lm, {"embed": tracer.noise_fn(0)}), \
            capture(tracer.lm, sites) as acts:
        tracer.model(input_ids=ids, use_cache=False, logits_to_keep=LAST_POSITION)
    return dict(acts)


def _keep_corrupted(values: torch.Tensor, S: int):
    """Writes the recorded corrupted outputs ``values`` ``[S, d]`` at the first position (the
    restored token) of every row of a tracer forward (row ``k·S + s`` gets draw ``s``)."""
    def keep(act, ctx):
        out = act.clone()
        out[:, 0] = values.repeat(act.shape[0] // S, 1).to(act.dtype)
        return out
    return keep
