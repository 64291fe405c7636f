"""Words for the weight-based explanations (Wu et al., arXiv 2310.00492): the paper's verb and
category lists, the vocabulary to explain with, and words as vectors of the model.

Also what both explanations share: which layers they may read (:func:`check_layer`) and the gain of
a norm folded into the weights (:func:`norm_gain`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..core.anatomy import family_of

# The paper's 38 instruction verbs (Table 3).
INSTRUCTION_VERBS = (
    "translate", "explain", "summarize", "retrieve", "revise", "generate", "describe", "classify",
    "create", "evaluate", "correct", "develop", "identify", "analyze", "compose", "demonstrate",
    "interpret", "design", "solve", "follow", "clarify", "say", "help", "act", "recommend",
    "estimate", "edit", "format", "repeat", "write", "give", "find", "make", "have", "tell",
    "output", "predict", "detect")

# Frequent English verbs that are not instruction verbs (a hand-written stand-in for the paper's
# 3,000 WordNet verbs ranked by wordfreq, which need downloads).
GENERAL_VERBS = (
    "go", "come", "know", "think", "see", "look", "want", "use", "work", "call", "try", "feel",
    "become", "leave", "put", "mean", "keep", "let", "begin", "seem", "show", "hear", "play",
    "run", "move", "like", "live", "believe", "hold", "bring", "happen", "stand", "lose", "pay",
    "meet", "include", "continue", "set", "learn", "change", "lead", "understand", "watch",
    "speak", "read", "allow", "add", "spend", "grow", "open", "walk", "win", "offer", "remember",
    "love", "consider", "appear", "buy", "wait", "serve", "die", "send", "expect", "build",
    "stay", "fall", "cut", "reach", "kill", "remain", "suggest", "raise", "pass", "sell",
    "require", "report", "decide", "pull", "eat", "sleep", "drive", "sing", "swim", "fly")

TASK_CATEGORIES = ("writing", "math", "coding", "translation", "none")
LINGUISTIC_LEVELS = ("semantic", "syntax", "morphology", "phonology")


def check_layer(lm, layer: int, what: str, families: tuple[str, ...]) -> None:
    """``ValueError`` unless ``lm``'s family is one of ``families`` (those whose weights ``what``
    can read) and ``layer`` is a block of it."""
    if family_of(lm.model) not in families:
        raise ValueError(f"family {lm.family!r} is not supported: {what} read weights that only "
                         f"these families keep separate: {', '.join(families)} (see "
                         f"nbtoolkit.instruction_shift's heads and ffn docstrings)")
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < lm.n_layers:
        raise ValueError(f"layer must be an int in 0..{lm.n_layers - 1}, got {layer!r}")


def check_words(words: Sequence[str], minimum: int = 1) -> list[str]:
    """``words`` as a list of unique non-empty strings (at least ``minimum``); else an error."""
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise TypeError(f"words must be a list of strings, got {type(words).__name__}")
    words = list(words)
    bad = [w for w in words if not isinstance(w, str) or not w.strip()]
    if bad:
        raise ValueError(f"words must be non-empty strings; bad entries: {bad[:5]!r}")
    if len(set(words)) != len(words):
        dup = sorted({w for w in words if words.count(w) > 1})
        raise ValueError(f"words must be unique; repeated: {dup[:5]!r}")
    if len(words) < minimum:
        raise ValueError(f"need at least {minimum} words, got {len(words)}")
    return words


def _word_token_ids(lm, words: list[str]) -> list[list[int]]:
    ids = [lm.tokenizer(" " + w.strip(), add_special_tokens=False)["input_ids"] for w in words]
    empty = [w for w, i in zip(words, ids) if not i]
    if empty:
        raise ValueError(f"words encode to no tokens: {empty[:5]!r}")
    return ids


def _mean_rows(matrix_fn, ids: list[list[int]]) -> torch.Tensor:
    flat = torch.tensor([i for group in ids for i in group])
    owner = torch.repeat_interleave(torch.arange(len(ids)), torch.tensor([len(g) for g in ids]))
    rows = matrix_fn(flat).double()
    out = torch.zeros(len(ids), rows.shape[-1], dtype=torch.float64).index_add_(0, owner, rows)
    return out / torch.tensor([len(g) for g in ids], dtype=torch.float64)[:, None]


@torch.no_grad()
def word_vectors(lm, words: Sequence[str]) -> torch.Tensor:
    """Mean input embedding (the ``embed`` site's value) of each word's tokens, with a leading space.

    ``[n_words, d_model]`` float64.
    """
    words = check_words(words)
    embed = lm.model.get_input_embeddings()
    device = lm.device
    return _mean_rows(lambda flat: embed(flat.to(device)[None])[0].cpu(), _word_token_ids(lm, words))


@torch.no_grad()
def output_word_vectors(lm, words: Sequence[str]) -> torch.Tensor:
    """Mean output (unembedding) vector of each word's tokens, ``[n_words, d_model]`` float64."""
    words = check_words(words)
    weight = lm.model.get_output_embeddings().weight.detach().cpu()
    return _mean_rows(lambda flat: weight[flat], _word_token_ids(lm, words))


def tokenizer_words(lm, n: int = 3000, *, min_length: int = 3) -> list[str]:
    """The first ``n`` lower-case alphabetic whole-word tokens of the vocabulary, by token id.

    BPE ids follow merge order, so this is a rough frequency ranking (the paper used a ShareGPT
    word list, unavailable offline).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    vocab = sorted(lm.tokenizer.get_vocab().items(), key=lambda item: item[1])
    words, seen = [], set()
    for token, _ in vocab:
        if token[:1] not in ("\u0120", "\u2581"):  # byte-level BPE "G-dot" / sentencepiece space
            continue
        word = token[1:]
        if len(word) >= min_length and word.isascii() and word.isalpha() and word.islower() \
                and word not in seen:
            seen.add(word)
            words.append(word)
            if len(words) == n:
                break
    return words


def norm_gain(norm: torch.nn.Module, d: int) -> torch.Tensor:
    """A (RMS)norm's per-dimension gain ``[d]`` float64: its output on a vector of ones (whose
    RMS is 1)."""
    ref = next(norm.parameters())
    return norm(torch.ones(1, d, dtype=ref.dtype, device=ref.device))[0].double().cpu()
