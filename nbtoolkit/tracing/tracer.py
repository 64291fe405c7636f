"""ROME causal tracing (Meng et al. 2022): where does a model recall a fact?

    result = causal_trace(lm, "The Eiffel Tower is located in the city of", "Eiffel Tower")
    result.scores        # [n_tokens, n_layers]: p(answer) with the clean state restored there
    nbtoolkit.viz.tracing.plot_trace(result)

ROME's semantics, exactly: Gaussian noise is added to the subject tokens' embeddings (site
``embed``) in ``samples`` corrupted copies of the prompt; the draw is NumPy's
``RandomState(seed).randn(samples, n_subject_tokens, d_model) * level``, the same draw for every
restoration (common random numbers), added in float64 as ROME's in-place ``+=`` does. Restoring
copies the clean run's activation at (token t, layer l) into the corrupted rows — the block output
``layer.{l}`` for ``kind="hidden"``, the MLP / attention output ``layer.{j}.mlp`` / ``.attn`` for
``j`` in ROME's code window ``l - window//2 ... l + ceil(window/2) - 1`` (l−5…l+4 for window 10),
clipped to the model (the paper's appendix says l−4…l+5; we follow the code). The score is
p(answer) at the last position, averaged over the corrupted rows. On Gemma-3 the embedding module
multiplies by sqrt(d_model) itself, so the noise (and σ) apply to the scaled embeddings.

Fast path (same numbers as one forward per cell, up to float reassociation, checked in tests):
the clean and the corrupted run happen once and are kept (every block's output: [samples, T, d]
per block for the corrupted run); all restorations at one token share one pass (blocks of
``samples`` rows); positions before the restored token are not recomputed: they come from the
corrupted run's KV cache; blocks below a restoration's first restored site are not computed for
its rows either — they would equal the corrupted run — so each restoration joins the batch at
that block, fed the corrupted run's residual stream (:func:`nbtoolkit.core.blocks.run_blocks`); only the
last position's logits are computed; restorations that cannot change the last position (a token
before the subject, where clean and corrupted runs agree, or only the last layer at a token other
than the last) take the corrupted score without a forward. A pass holds at most
``max(max_tokens, samples × n_tokens)`` row-positions (cached prefix included), so memory stays
bounded for long prompts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.anatomy import parse_site, require, residual_site, site_name
from ..core.blocks import body, run_blocks
from ..core.hooks import capture, patch
from ..core.kv_cache import cache_kwarg, cache_of, tiled
from ..core.lm import LAST_POSITION, token_indices
from ..core.modes import eval_mode
from .noise import resolve_noise
from .effects import KINDS, TraceResult

SUPPORTED_KINDS = ("decoder",)  # the next token after the prompt, from a KV-cached prefix


def window_layers(layer: int, n_layers: int, window: int) -> list[int]:
    """ROME's code window around ``layer``: ``l - window//2 ... l + ceil(window/2) - 1``, clipped."""
    return list(range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2))))


def find_token_range(tokens: Sequence[str], subject: str) -> tuple[int, int]:
    """ROME's subject span: first character match of ``subject`` in the joined decoded tokens;
    (start, end exclusive) in tokens."""
    whole = "".join(tokens)
    char = whole.find(subject)
    if char < 0:
        return -1, -1
    loc, start = 0, None
    for i, token in enumerate(tokens):
        loc += len(token)
        if start is None and loc > char:
            start = i
        if loc >= char + len(subject):
            return start, i + 1
    return -1, -1


def subject_span(lm, prompt: str, subject: str, tokens: Sequence[str]) -> tuple[int, int]:
    """(start, end exclusive) of the tokens covering the subject's first occurrence: from the
    tokenizer's character offsets (any script: a token may decode to a partial character), or
    by ROME's rule on the decoded ``tokens`` for a tokenizer without offsets."""
    if getattr(lm.tokenizer, "is_fast", False):
        indices = token_indices(lm, prompt, subject)
        return indices[0], indices[-1] + 1
    start, end = find_token_range(tokens, subject)
    if start < 0:
        raise ValueError(f"subject {subject!r} does not occur in prompt {prompt!r}")
    return start, end


# ---------------------------------------------------------------- the tracer

class Tracer:
    """Shared state of one prompt: tokens, subject span, noise, clean cache, corrupted prefixes.
    :meth:`trace` gives one kind's :class:`TraceResult`; :meth:`run` scores a group of
    restorations at one token (severing reuses it with its own interventions)."""

    def __init__(self, lm, prompt: str, subject: str, *, samples: int, noise, seed: int,
                 target, max_tokens: int):
        require(lm.model, "causal tracing", SUPPORTED_KINDS)
        _check_text(prompt, subject)
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {samples!r}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.lm, self.prompt, self.subject = lm, prompt, subject
        self.samples, self.max_tokens = samples, max_tokens
        self.model = lm.model
        ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(lm.device)
        self.ids = ids  # [1, T]
        self.T = ids.shape[1]
        context = lm.context_length
        if context is not None and self.T > context:
            raise ValueError(f"prompt has {self.T} tokens, longer than the model's context of "
                             f"{context} tokens")
        self.tokens = [lm.tokenizer.decode([i]) for i in ids[0].tolist()]
        start, end = subject_span(lm, prompt, subject, self.tokens)
        if end >= self.T:
            raise ValueError(f"subject {subject!r} ends at the last token of prompt {prompt!r}; "
                             f"causal tracing needs at least one token after the subject "
                             f"(the answer is predicted after the prompt's last token)")
        self.start, self.end = start, end
        self.L = lm.n_layers
        self.level = resolve_noise(lm, noise)
        draw = np.random.RandomState(seed).randn(samples, end - start, lm.d_model)
        self.noise = torch.from_numpy(draw * self.level).to(lm.device)  # float64, as ROME
        self._clean(target)
        self._corrupted()

    def _clean(self, target) -> None:
        """One clean forward: the answer, ``high_score`` and every restorable activation."""
        sites = [site_name(l, kind) for l in range(self.L) for kind in KINDS]
        with torch.no_grad(), capture(self.lm, sites) as acts:
            logits = self.model(input_ids=self.ids, use_cache=False,
                                logits_to_keep=LAST_POSITION).logits
        probs = logits[0, -1].float().softmax(-1)
        if target is None:
            answer_id = int(probs.argmax())
        elif isinstance(target, str):
            answer_id = self.lm.token_id(target)
        elif isinstance(target, int) and not isinstance(target, bool):
            answer_id = target
        else:
            raise TypeError(f"target must be None, a string or a token id, got {target!r}")
        if not 0 <= answer_id < probs.shape[0]:
            raise ValueError(f"target token id {answer_id} is outside the vocabulary "
                             f"(0..{probs.shape[0] - 1})")
        self.answer_id = answer_id
        self.answer = self.lm.tokenizer.decode([answer_id])
        self.high_score = float(probs[answer_id])
        self.clean = {site: acts[site][0] for site in sites}  # [T, d] each

    def noise_fn(self, offset: int):
        """Adds the noise to the subject tokens of a forward covering positions ``offset...``
        (row ``r`` gets draw ``r``)."""
        def add(act, ctx):
            lo, hi = max(self.start, offset), min(self.end, offset + act.shape[1])
            if lo >= hi:
                return act
            out = act.clone()
            part = self.noise[:, lo - self.start:hi - self.start]
            # ROME adds a float64 draw in place: the sum happens in float64.
            out[:, lo - offset:hi - offset] = (act[:, lo - offset:hi - offset].double() + part).to(act.dtype)
            return out
        return add

    def _corrupted(self) -> None:
        """One corrupted forward: ``low_score`` and the residual stream entering every block
        (``entering[l]``: [samples, T, d]; ``entering[0]`` is the noised embedding,
        ``entering[L]`` the last block's output)."""
        ids = self.ids.expand(self.samples, self.T)
        sites = [residual_site(l) for l in range(-1, self.L)]
        with torch.no_grad(), patch(self.lm, {"embed": self.noise_fn(0)}), \
                capture(self.lm, sites) as acts:
            logits = self.model(input_ids=ids, use_cache=False,
                                logits_to_keep=LAST_POSITION).logits
        self.low_score = float(logits[:, -1].float().softmax(-1)[:, self.answer_id].mean())
        self.entering = [acts[site] for site in sites]

    def prefix(self, t: int):
        """The corrupted run's KV cache over positions ``0..t-1`` (``samples`` rows). Built per
        token, not kept for all tokens at once: that would grow with the prompt's length squared."""
        if t == 0:
            return None
        ids = self.ids[:, :t].expand(self.samples, t)
        with torch.no_grad(), patch(self.lm, {"embed": self.noise_fn(0)}):
            return cache_of(self.model(input_ids=ids, use_cache=True,
                                       logits_to_keep=LAST_POSITION))

    def run(self, t: int, prefix, group: list[tuple[int, list[str]]]) -> list[float]:
        """Scores of restorations ``group`` = [(first block, sites)], sorted by first block, at
        token ``t``, over positions ``t..T-1`` (``prefix``: the corrupted KV cache of positions
        < t). Restoration ``k`` owns rows ``k·S ... k·S+S-1`` (S = samples) and joins the batch at
        its first block: below it its rows would equal the corrupted run, so they are not computed.
        """
        S, L = self.samples, self.L
        starts = sorted({first for first, _ in group})
        active: list[list[str]] = []  # the restorations that have joined, in batch order
        stream = None  # [len(active)·S, T - t, d], block-major
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else L
            joining = [sites for first, sites in group if first == start]
            active += joining
            rows = self.entering[start][:, t:].repeat(len(joining), 1, 1)
            entering = residual_site(start - 1)  # restored by editing the rows that join here
            restored = [k for k, sites in enumerate(joining) if entering in sites]
            if restored:
                rows = _restore_fn(self.clean[entering][t], restored, S)(rows, None)
            stream = rows if stream is None else torch.cat([stream, rows])
            inside: dict[str, list[int]] = {}  # site in blocks start..end-1 -> batch blocks
            for k, sites in enumerate(active):
                for site in sites:
                    if start <= parse_site(site)[0] < end:
                        inside.setdefault(site, []).append(k)
            interventions = {site: _restore_fn(self.clean[site][t], blocks, S)
                             for site, blocks in inside.items()}
            cache = tiled(prefix, len(active), S, range(start, end))
            last = i == len(starts) - 1
            outputs = [] if last else [site_name(end - 1)]
            with torch.no_grad(), patch(self.lm, interventions), capture(self.lm, outputs) as acts, \
                    run_blocks(self.lm, start, end):
                if last:
                    logits = self.model(inputs_embeds=stream, **cache_kwarg(self.model, cache),
                                        use_cache=cache is not None,
                                        logits_to_keep=LAST_POSITION).logits
                else:
                    body(self.lm)(inputs_embeds=stream, **cache_kwarg(self.model, cache),
                                  use_cache=cache is not None)
                    stream = acts[outputs[0]]
        probs = logits[:, -1].float().softmax(-1)[:, self.answer_id]  # row = k·S + draw
        return probs.view(len(group), S).mean(1).tolist()

    @staticmethod
    def first_block(sites: list[str]) -> int:
        """The first block a restoration of ``sites`` changes: below it the rows are the
        corrupted run's. ``layer.{j}`` enters block j+1; ``.mlp``/``.attn`` are in block j."""
        return min(layer + (kind == "") for layer, kind in map(parse_site, sites))

    def trace(self, kind: str, window: int, positions) -> TraceResult:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        rows = self.positions(positions)
        scores = np.full((self.T, self.L), np.nan)
        # rows × positions, counting the cached prefix too: bounds activations and KV copies
        per_forward = max(1, self.max_tokens // (self.samples * self.T))
        for t in rows:
            todo = []
            for layer in range(self.L):
                layers = [layer] if kind == "hidden" else window_layers(layer, self.L, window)
                if t < self.T - 1:  # the last layer's output at t feeds only t's own logits
                    layers = [j for j in layers if j < self.L - 1]
                # before the subject clean == corrupted; no layers left: nothing the metric reads
                if t < self.start or not layers:
                    scores[t, layer] = self.low_score
                else:
                    sites = [site_name(j, kind) for j in layers]
                    todo.append((self.first_block(sites), layer, sites))
            todo.sort()
            prefix = self.prefix(t) if todo else None
            for i in range(0, len(todo), per_forward):
                chunk = todo[i:i + per_forward]
                group = [(first, sites) for first, _, sites in chunk]
                for (_, layer, _), score in zip(chunk, self.run(t, prefix, group)):
                    scores[t, layer] = score
        return TraceResult(scores=scores, low_score=self.low_score, high_score=self.high_score,
                           tokens=self.tokens, subject_range=(self.start, self.end), kind=kind,
                           answer=self.answer, answer_id=self.answer_id, prompt=self.prompt,
                           subject=self.subject, window=window, samples=self.samples,
                           noise=self.level)

    def positions(self, positions) -> list[int]:
        if positions is None:
            return list(range(self.T))
        named = {"subject_last": [self.end - 1], "last": [self.T - 1],
                 "key": [self.end - 1, self.T - 1]}
        if isinstance(positions, str):
            if positions not in named:
                raise ValueError(f"positions must be None, one of {sorted(named)} or a list of "
                                 f"token indices, got {positions!r}")
            return named[positions]
        out = sorted({p % self.T if -self.T <= p < 0 else p for p in positions})
        bad = [p for p in out if not 0 <= p < self.T]
        if bad:
            raise ValueError(f"positions {bad} are outside the prompt's {self.T} tokens")
        return out



def _restore_fn(value: torch.Tensor, blocks: list[int], S: int):
    """Copies ``value`` [d] into the first position of the rows of the given batch blocks
    (block ``k`` = rows ``k·S ... k·S+S-1``) of a forward starting at the restored token."""
    rows = torch.tensor([k * S + s for k in blocks for s in range(S)], device=value.device)

    def restore(act, ctx):
        out = act.clone()
        out[rows, 0] = value.to(act.dtype)
        return out
    return restore



def _check_text(prompt, subject) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError(f"subject must be a non-empty string, got {subject!r}")
    if subject not in prompt:
        raise ValueError(f"subject {subject!r} does not occur in prompt {prompt!r}")


# ---------------------------------------------------------------- public API

def trace_kinds(lm, prompt: str, subject: str, kinds: Sequence[str] = KINDS, *,
                samples: int = 10, noise: str | float = "s3", window: int = 10, seed: int = 1,
                target: str | int | None = None, positions=None,
                max_tokens: int = 8192) -> dict[str, TraceResult]:
    """ROME's causal traces of one prompt, one per kind, sharing the clean run and the corrupted
    prefixes: ``{kind: TraceResult}``, ``scores[token, layer]`` = p(answer) with the clean state
    restored there in the subject-corrupted run (see the module docstring).

    ``kinds``: ``"hidden"`` (block output, one layer), ``"mlp"`` / ``"attn"`` (a window of
    ``window`` layers around each layer). ``samples``: corrupted copies of the prompt. ``noise``:
    ``"s3"`` = 3σ of subject embeddings over ``data/facts`` (ROME's default), or a float std;
    ``seed`` seeds its draw. ``target``: score this token (a string's first token, or an id)
    instead of the clean top-1. ``positions``: trace only these token rows (others are NaN):
    ``"subject_last"`` (ROME's option), ``"last"``, ``"key"`` (last subject token and last
    token: the rows the paper's summary numbers are read from) or a list of token indices.
    ``max_tokens``: at most this many row × position cells (cached prefix included) per forward,
    at least one block of ``samples`` rows (bounds memory).
    """
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    with eval_mode(lm.model):
        tracer = Tracer(lm, prompt, subject, samples=samples, noise=noise, seed=seed,
                        target=target, max_tokens=max_tokens)
        return {kind: tracer.trace(kind, window, positions) for kind in kinds}


def causal_trace(lm, prompt: str, subject: str, *, kind: str = "hidden", **options) -> TraceResult:
    """ROME's causal trace of one prompt for one ``kind`` (``"hidden"``, ``"mlp"`` or
    ``"attn"``): :func:`trace_kinds` with ``kinds=[kind]``, whose keyword ``options`` it takes
    (``samples``, ``noise``, ``window``, ``seed``, ``target``, ``positions``, ``max_tokens``)."""
    return trace_kinds(lm, prompt, subject, [kind], **options)[kind]
