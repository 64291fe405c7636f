"""SelfIE: a model describes its own hidden states (Chen et al. 2024, arXiv 2403.10949).

A hidden state ``v`` (layer ℓ, token t) of an original prompt is written over the placeholder
positions of an *interpretation prompt* at the input of block ``insert_layer`` during the
prompt pass only; greedy decoding then lets the model say what ``v`` means:

    result = interpret(lm, "The Eiffel Tower is in Paris", tokens=[1, 2], layers=[1, 7, 15])
    result.to_frame()      # one row per (layer, token): the interpretation and its relevancy

Layers follow nbtoolkit's one numbering: layer ℓ is the residual stream leaving block ℓ (site
``layer.{ℓ}``), layer −1 the embeddings (site ``embed``); the paper's (Hugging Face's)
``hidden_states[ℓ + 1]`` is our layer ℓ (the last taken before the final norm). Inserting at
block k writes the residual stream entering block k at the placeholders (site ``layer.{k}.in``).

Overlay modes (the paper's names): ``"normalized"`` h ← s·v + (1 − s)·h (s ∈ [0, 1], 1 = pure
replacement; despite the name there is no norm rescaling), ``"addition"`` h ← h + s·v.

Relevancy of generated token y_j: |p(y_j | prompt with v inserted, y_<j) − p(y_j | the same
tokens, placeholders left alone)|. p_with is read from the generation's own step (the forward
that chose y_j, identical to a teacher-forced rerun with the insertion); p_without from one
teacher-forced forward without it. A small relevancy means the interpretation prompt, not
``v``, wrote the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch

from ..core.anatomy import check_layers, require, residual_site, site_name
from ..core.hooks import capture, patch
from ..core.interventions import Overlay, check_overlay
from ..core.kv_cache import cache_kwarg, cache_of, repeat_rows
from ..core.lm import LAST_POSITION

PLACEHOLDER = "{x}"  # marks a placeholder in a template string
FILL = "_"           # the text written where each placeholder was (one token per placeholder)
N_PLACEHOLDERS = 5   # the paper's default
REPLY = "Sure, I will summarize the message:"  # the repo's default start of the answer
SUPPORTED_KINDS = ("decoder",)  # the model speaks: greedy generation


@dataclass
class InterpretationPrompt:
    """A tokenized interpretation prompt: ``input_ids`` ``[seq]`` and the placeholder token
    ``positions`` (absolute indices into ``input_ids``)."""

    text: str
    input_ids: torch.Tensor
    positions: list[int]

    @property
    def tokens(self) -> list[int]:
        return self.input_ids.tolist()


INTERPRETATION_COLUMNS = ["prompt", "layer", "token_index", "token", "interpretation",
                          "interpretation_tokens", "relevancy", "mean_relevancy", "baseline_match"]


@dataclass
class Interpretations:
    """SelfIE's readings of hidden states of one ``prompt``, one entry per (layer, token) pair:
    the ``layers``, ``token_indices`` and ``tokens`` read, the ``interpretations`` (texts), their
    ``interpretation_tokens`` and each token's ``relevancy`` (lists, one entry per generated
    token), and ``baseline_match``: the share of generated tokens equal to the placeholder-only
    generation's at the same step. The setting: the placeholder-only text ``baseline``, the
    interpretation prompt's ``template`` text and placeholder ``positions``, ``insert_layer``,
    ``mode``, ``strength``."""

    prompt: str
    layers: list[int]
    token_indices: list[int]
    tokens: list[str]
    interpretations: list[str]
    interpretation_tokens: list[list[str]]
    relevancy: list[list[float]]
    baseline_match: list[float]
    baseline: str
    template: str
    positions: list[int]
    insert_layer: int
    mode: str
    strength: float

    def __len__(self) -> int:
        return len(self.interpretations)

    @property
    def mean_relevancy(self) -> list[float]:
        """Each interpretation's relevancy averaged over its tokens (0 for an empty one)."""
        return [sum(rel) / len(rel) if rel else 0.0 for rel in self.relevancy]

    def to_frame(self) -> pd.DataFrame:
        """One row per (layer, token): ``prompt, layer, token_index, token, interpretation,
        interpretation_tokens, relevancy, mean_relevancy, baseline_match``."""
        return pd.DataFrame(dict(prompt=self.prompt, layer=self.layers,
                                 token_index=self.token_indices, token=self.tokens,
                                 interpretation=self.interpretations,
                                 interpretation_tokens=self.interpretation_tokens,
                                 relevancy=self.relevancy, mean_relevancy=self.mean_relevancy,
                                 baseline_match=self.baseline_match),
                            columns=INTERPRETATION_COLUMNS)


def make_template(lm, user: str | None = None, *, reply: str = REPLY,
                     system: str | None = None, n_placeholders: int = N_PLACEHOLDERS) -> str:
    """An interpretation template: ``user`` (default ``n_placeholders`` markers) as the user's
    message, then the answer opened with ``reply``.

    Uses the tokenizer's chat template when it has one (``system`` replaces the model's default
    system prompt, if given); otherwise a plain ``User: … / Assistant: …`` text.
    """
    if user is None:
        if n_placeholders < 1:
            raise ValueError(f"n_placeholders must be >= 1, got {n_placeholders}")
        user = " ".join([PLACEHOLDER] * n_placeholders)
    tokenizer = lm.tokenizer
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + reply
    head = f"{system}\n" if system else ""
    return f"{head}User: {user}\nAssistant: {reply}".rstrip(" ")


def build_prompt(lm, template: str | None = None) -> InterpretationPrompt:
    """Tokenize a template and locate its placeholders in the final ``input_ids``.

    Each ``{x}`` marker becomes ``"_"``; a placeholder's position is the one token whose
    character span covers it (from the tokenizer's offsets, so merges with neighbouring spaces
    are found, never assumed). ``ValueError`` when there is no marker or when a placeholder does
    not come out as a token of its own.
    """
    template = make_template(lm) if template is None else template
    if not isinstance(template, str):
        raise TypeError(f"template must be a string with {PLACEHOLDER!r} markers, got "
                        f"{type(template).__name__}")
    pieces = template.split(PLACEHOLDER)
    if len(pieces) < 2:
        raise ValueError(f"template has no placeholders: mark each with {PLACEHOLDER!r}, e.g. "
                         f"'User: {PLACEHOLDER} {PLACEHOLDER}\\nAssistant: {REPLY}'; got {template!r}")
    text, spans = pieces[0], []
    for piece in pieces[1:]:
        spans.append((len(text), len(text) + len(FILL)))
        text += FILL + piece
    tokenizer = lm.tokenizer
    try:
        encoded = tokenizer(text, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError) as error:
        raise TypeError(f"SelfIE locates placeholders with token offsets, which need a fast "
                        f"tokenizer; {type(tokenizer).__name__} has none ({error})") from error
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    # A chat template may already start with <bos>; the tokenizer would add a second one.
    bos = tokenizer.bos_token_id
    if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos:
        ids, offsets = ids[1:], offsets[1:]
    positions = []
    for start, end in spans:
        covering = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
        piece = text[offsets[covering[0]][0]:offsets[covering[0]][1]] if covering else ""
        if len(covering) != 1 or piece.strip() != FILL or covering[0] in positions:
            shown = [text[offsets[i][0]:offsets[i][1]] for i in covering]
            raise ValueError(f"placeholder at characters {start}..{end} of {text!r} is not a token "
                             f"of its own (tokens {shown}); separate the {PLACEHOLDER!r} markers "
                             f"with spaces")
        positions.append(covering[0])
    return InterpretationPrompt(text, torch.tensor(ids, dtype=torch.long), positions)


def hidden_states(lm, prompt: str, layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """Hidden states of one prompt: ``{layer: [seq, d_model]}`` (−1 = embeddings)."""
    sites = {layer: residual_site(layer) for layer in layers}
    batch = lm.encode(prompt)
    with torch.no_grad(), capture(lm, sorted(set(sites.values()))) as acts:
        lm.model(**batch)
    return {layer: acts[site][0] for layer, site in sites.items()}


def interpret(lm, prompt: str, *, tokens: Sequence[int] | None = None,
              layers: Sequence[int] | None = None, insert_layer: int = 1,
              template: str | None = None, mode: str = "normalized", strength: float = 1.0,
              max_new_tokens: int = 20, batch_size: int = 16) -> Interpretations:
    """Interpret the hidden state of each (layer, token) pair of ``prompt`` in words.

    ``tokens``: indices into ``lm.tokens(prompt)`` (negative from the end; default all);
    ``layers``: −1 (embeddings) .. n_layers − 1 (default all); ``template``: a string with ``{x}``
    placeholder markers (default :func:`make_template`). Pairs are batched ``batch_size``
    at a time into one ``generate`` call each (the interpretation prompt is the same for every
    row, so no padding moves the placeholders).

    Returns :class:`Interpretations`, one entry per pair (token-major): the interpretation, its
    tokens and their relevancy (up to and including the end-of-text token), and how much of it
    the placeholder-only generation (``baseline``) already wrote.
    """
    require(lm.model, "SelfIE", SUPPORTED_KINDS)
    prompt_tokens = lm.tokens(prompt) if isinstance(prompt, str) and prompt else None
    if prompt_tokens is None:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    token_index = check_indices("token", tokens, len(prompt_tokens), allow_negative=True)
    layer_index = check_layers(lm.model, layers)
    _check_generation(lm, insert_layer, mode, strength, max_new_tokens, batch_size)
    interp = build_prompt(lm, template)
    states = hidden_states(lm, prompt, layer_index)
    pairs = [(layer, t) for t in token_index for layer in layer_index]
    baseline = _generate(lm, interp, None, mode, strength, insert_layer, 1, max_new_tokens)[0][0]
    texts, text_tokens, relevancy, match = [], [], [], []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        vectors = torch.stack([states[layer][t] for layer, t in chunk])
        generated, p_with = _generate(lm, interp, vectors, mode, strength, insert_layer,
                                      len(chunk), max_new_tokens)
        p_without = _p_without(lm, interp, generated)
        for ids, with_, without in zip(generated, p_with, p_without):
            texts.append(_decode(lm, ids))
            text_tokens.append([lm.tokenizer.decode([i]) for i in ids])
            relevancy.append([abs(a - b) for a, b in zip(with_, without)])
            match.append(_match(ids, baseline))
    return Interpretations(prompt=prompt, layers=[layer for layer, _ in pairs],
                           token_indices=[t for _, t in pairs],
                           tokens=[prompt_tokens[t] for _, t in pairs], interpretations=texts,
                           interpretation_tokens=text_tokens, relevancy=relevancy,
                           baseline_match=match, baseline=_decode(lm, baseline),
                           template=interp.text, positions=interp.positions,
                           insert_layer=insert_layer, mode=mode, strength=strength)


def interpret_vectors(lm, vectors: torch.Tensor, *, insert_layer: int = 1,
                      template: str | None = None, mode: str = "normalized",
                      strength: float = 1.0, max_new_tokens: int = 20) -> list[str]:
    """The interpretation of each row of ``vectors`` ``[n, d_model]`` (any states, e.g. edited
    ones: SelfIE control), as :func:`interpret` writes it, in one batched ``generate``; no
    relevancy or baseline (the SelfIE repo's ``interpret_vectors``)."""
    if not torch.is_tensor(vectors) or vectors.dim() != 2 or vectors.shape[1] != lm.d_model:
        shape = tuple(vectors.shape) if torch.is_tensor(vectors) else type(vectors).__name__
        raise ValueError(f"vectors must be a tensor [n, d_model={lm.d_model}], got {shape}")
    _check_generation(lm, insert_layer, mode, strength, max_new_tokens, 1)
    interp = build_prompt(lm, template)
    dtype = lm.model.get_input_embeddings().weight.dtype
    generated, _ = _generate(lm, interp, vectors.detach().to(lm.device, dtype), mode, strength,
                             insert_layer, len(vectors), max_new_tokens)
    return [_decode(lm, ids) for ids in generated]


def insertion(interp: InterpretationPrompt, vectors: torch.Tensor | None, *, insert_layer: int,
              mode: str = "normalized", strength: float = 1.0) -> dict:
    """The ``patch`` mapping that writes each row's vector over every placeholder at the input
    of block ``insert_layer``: ``vectors`` ``[rows, d_model]`` (None: no insertion, ``{}``)."""
    if vectors is None:
        return {}
    check_overlay(mode, strength)
    value = vectors[:, None, :].expand(-1, len(interp.positions), -1)  # [rows, n_placeholders, d]
    return {site_name(insert_layer, "in"): Overlay(value, at=interp.positions, strength=strength,
                                                mode=mode)}


def baseline(lm, template: str | None = None, *, max_new_tokens: int = 20) -> str:
    """The interpretation prompt's own greedy continuation, placeholders left alone."""
    require(lm.model, "SelfIE", SUPPORTED_KINDS)
    interp = build_prompt(lm, template)
    return _decode(lm, _generate(lm, interp, None, "normalized", 0.0, 0, 1, max_new_tokens)[0][0])


def check_indices(name: str, given, size: int, allow_negative: bool) -> list[int]:
    """``given`` indices (an int or a list; None: all) into ``size`` items, negative ones counted
    from the end when ``allow_negative``; ``ValueError`` naming the valid range."""
    if given is None:
        return list(range(size))
    given = [given] if isinstance(given, int) else list(given)
    if not given:
        raise ValueError(f"{name}s must not be empty")
    low = -size if allow_negative else 0
    out = []
    for value in given:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value < size:
            raise ValueError(f"{name} {value!r} is out of range: valid {name}s are "
                             f"{low}..{size - 1}")
        out.append(value % size)
    return out


# ---------------------------------------------------------------- internals

def _check_generation(lm, insert_layer, mode, strength, max_new_tokens, batch_size) -> None:
    n_layers = lm.n_layers
    if not isinstance(insert_layer, int) or not 0 <= insert_layer < n_layers:
        raise ValueError(f"insert_layer {insert_layer!r} is out of range: the model has blocks "
                         f"0..{n_layers - 1}")
    check_overlay(mode, strength)
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, "
                         f"{batch_size}")


def _eos_ids(lm) -> set[int]:
    eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    eos = eos if eos is not None else lm.tokenizer.eos_token_id
    return set(eos) if isinstance(eos, (list, tuple)) else {eos} if eos is not None else set()


@torch.no_grad()
def _generate(lm, interp, vectors, mode, strength, insert_layer, rows, max_new_tokens):
    """Greedy continuations under the insertion: per row, the token ids (cut after the first
    end-of-text token) and each token's probability ``p_with`` from the step that chose it."""
    from transformers import GenerationConfig

    ids = interp.input_ids.to(lm.device)[None].expand(rows, -1)
    eos = _eos_ids(lm)
    pad = lm.tokenizer.pad_token_id
    # A fresh config: plain greedy decoding, whatever sampling or penalties the model ships with.
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=sorted(eos) or None,
                              pad_token_id=pad if pad is not None else min(eos, default=0),
                              output_logits=True, return_dict_in_generate=True)
    edits = insertion(interp, vectors, insert_layer=insert_layer, mode=mode, strength=strength)
    with patch(lm, edits, prompt_only=True):
        out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                generation_config=config)
    new = out.sequences[:, ids.shape[1]:]
    # Raw logits (before any logits processor): the model's own distribution at each step.
    probs = torch.stack(out.logits, 1).float().softmax(-1).gather(-1, new[..., None])[..., 0]
    tokens, p_with = [], []
    for row, p in zip(new.tolist(), probs.cpu().tolist()):
        cut = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
        tokens.append(row[:cut]), p_with.append(p[:cut])
    return tokens, p_with


@torch.no_grad()
def _p_without(lm, interp, generated: list[list[int]]) -> list[list[float]]:
    """p(y_j | placeholders left alone, y_<j), teacher-forced; one list per row.

    The prompt pass is the same for every row, so it runs once and its KV cache is shared.
    """
    rows, width = len(generated), max(len(g) for g in generated)
    prompt = interp.input_ids.to(lm.device)[None]
    first = lm.model(input_ids=prompt, use_cache=True, logits_to_keep=LAST_POSITION)
    logits = [first.logits[:, -1:].expand(rows, -1, -1)]
    tokens = torch.full((rows, width), lm.tokenizer.pad_token_id or 0, dtype=torch.long)
    for i, g in enumerate(generated):  # right padding: causal attention keeps it out
        tokens[i, :len(g)] = torch.tensor(g, dtype=torch.long)
    tokens = tokens.to(lm.device)
    if width > 1:
        cache = cache_of(first)
        repeat_rows(cache, rows)
        mask = torch.ones(rows, prompt.shape[1] + width - 1, dtype=torch.long, device=lm.device)
        logits.append(lm.model(input_ids=tokens[:, :-1], attention_mask=mask,
                               **cache_kwarg(lm.model, cache)).logits)
    probs = torch.cat(logits, 1).float().softmax(-1).gather(-1, tokens[..., None])[..., 0]
    return [p[:len(g)] for p, g in zip(probs.cpu().tolist(), generated)]


def _decode(lm, ids: list[int]) -> str:
    return lm.tokenizer.decode(ids, skip_special_tokens=True)


def _match(ids: list[int], reference: list[int]) -> float:
    if not ids:
        return 1.0
    return sum(a == b for a, b in zip(ids, reference)) / len(ids)
