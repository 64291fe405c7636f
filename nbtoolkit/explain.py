"""Explain attention heads and FFN layers in words, from weights alone (Wu et al., arXiv 2310.00492).

    attention_word_pairs(lm, layer=3, head=1, words=vocab, top_k=100)  # word pairs per q/k dimension
    ffn_concepts(lm, layer=3, n_components=20, top_k=15)              # PCA of FFN value vectors

Attention: a head's query-key score of two words is ``q . k = sum_r Hq[q, r] * Hk[k, r]``, one
rank-1 bilinear term per head dimension ``r``, with ``Hq = (E * g) W_q^h``, ``Hk = (E * g) W_k^h``,
``E`` the words' input embeddings and ``g`` the gain of the attention's input RMSNorm. Rotary
embeddings are ignored; grouped-query heads use their shared key head. Gemma-3 also normalises
queries and keys per head (query/key norms); we apply those modules to ``Hq``/``Hk``, so
they are the exact pre-rotary queries/keys of the (gain-scaled) word vectors.

FFN: the rows of the MLP output projection's transposed weight are the value vectors written to the residual stream,
one per intermediate neuron. Their principal directions, matched to the normalised output
(unembedding) vectors of words, name what a layer writes. Gemma-3 normalises the FFN output
before the residual; its post-norm gain is folded into the value vectors.

Weights are read through the anatomy (:func:`nbtoolkit.core.anatomy.weight`); decoder families
only. Attention word pairs need separate query/key projections and an RMSNorm at the attention's
input, whose gain is folded in as the paper does (:data:`ATTENTION_FAMILIES`): fused projections
(GPT-2, GPT-NeoX, Phi-3's qkv) are refused, not sliced, and so are LayerNorm families (GPT-J, OPT,
Phi: their norm also centres and shifts, which a gain cannot fold) and OLMo-2 (no input norm; its
query/key norms span all heads). FFN concepts need the MLP's output projection
(:data:`FFN_FAMILIES`; not GPT-2's, a Conv1D, nor Mixtral's fused experts).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .core.anatomy import config_value, families_of_kind, families_with, family_of, weight

ATTENTION_WEIGHTS = ("query", "key", "attn_norm")  # what attention word pairs read
FFN_WEIGHTS = ("mlp_values",)                     # what FFN concepts read
ATTENTION_FAMILIES = tuple(f for f in families_with(ATTENTION_WEIGHTS, norm="rms")
                           if f in families_of_kind(["decoder"]))
FFN_FAMILIES = tuple(f for f in families_with(FFN_WEIGHTS) if f in families_of_kind(["decoder"]))
SUPPORTED_FAMILIES = tuple(f for f in ATTENTION_FAMILIES if f in FFN_FAMILIES)  # both explanations

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


# ------------------------------------------------------------------ shared pieces

def _check_layer(lm, layer: int, what: str, families: tuple[str, ...]) -> None:
    if family_of(lm.model) not in families:
        raise ValueError(f"family {lm.family!r} is not supported: {what} read weights that only "
                         f"these families keep separate: {', '.join(families)} (see "
                         f"nbtoolkit.explain's docstring)")
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < lm.n_layers:
        raise ValueError(f"layer must be an int in 0..{lm.n_layers - 1}, got {layer!r}")


def _check_words(words: Sequence[str], minimum: int = 1) -> list[str]:
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
    words = _check_words(words)
    embed = lm.model.get_input_embeddings()
    device = lm.device
    return _mean_rows(lambda flat: embed(flat.to(device)[None])[0].cpu(), _word_token_ids(lm, words))


@torch.no_grad()
def output_word_vectors(lm, words: Sequence[str]) -> torch.Tensor:
    """Mean output (unembedding) vector of each word's tokens, ``[n_words, d_model]`` float64."""
    words = _check_words(words)
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


def _gain(norm: torch.nn.Module, d: int) -> torch.Tensor:
    """A (RMS)norm's per-dimension gain: its output on a vector of ones (whose RMS is 1)."""
    ref = next(norm.parameters())
    return norm(torch.ones(1, d, dtype=ref.dtype, device=ref.device))[0].double().cpu()


# ------------------------------------------------------------------ attention word pairs

@torch.no_grad()
def head_query_key(lm, layer: int, head: int, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension query and key values of input vectors for one head (RoPE ignored).

    ``vectors`` ``[n, d_model]`` -> ``(Hq, Hk)``, each ``[n, d_head]`` float64.
    """
    _check_layer(lm, layer, "attention word pairs", ATTENTION_FAMILIES)
    wq, wk = weight(lm.model, layer, "query"), weight(lm.model, layer, "key")
    n_heads = config_value(lm.model, "n_heads")
    n_kv = config_value(lm.model, "n_kv_heads")
    if not isinstance(head, int) or not 0 <= head < n_heads:
        raise ValueError(f"head must be an int in 0..{n_heads - 1}, got {head!r}")
    d_head = wq.out_features // n_heads
    x = vectors.double() * _gain(weight(lm.model, layer, "attn_norm"), vectors.shape[-1])
    kv = head // (n_heads // n_kv)  # grouped-query attention: the shared key head

    def project(linear, index):
        rows = slice(index * d_head, (index + 1) * d_head)
        h = x @ linear.weight[rows].detach().double().cpu().T
        if linear.bias is not None:
            h = h + linear.bias[rows].detach().double().cpu()
        return h

    hq, hk = project(wq, head), project(wk, kv)
    norm_q, norm_k = weight(lm.model, layer, "query_norm"), weight(lm.model, layer, "key_norm")
    if norm_q is not None:  # e.g. Gemma-3: per-head RMSNorm of queries and keys, before RoPE
        dtype = norm_q.weight.dtype
        hq = norm_q(hq.to(dtype).to(lm.device)).double().cpu()
        hk = norm_k(hk.to(dtype).to(lm.device)).double().cpu()
    return hq, hk


def word_similarity(vectors: torch.Tensor) -> np.ndarray:
    """Cosine similarity of word vectors ``[n, d]`` -> ``[n, n]``."""
    v = torch.nn.functional.normalize(vectors.double(), dim=-1)
    return (v @ v.T).numpy()


def similarity_thresholds(similarity: np.ndarray, n_reference: int = 3000, z: float = 1.96) -> np.ndarray:
    """Per word: mean + z * std of its similarity to the first ``n_reference`` words, ``[n]``."""
    ref = similarity[:, :n_reference]
    return ref.mean(axis=1) + z * ref.std(axis=1)


def attention_word_pairs(lm, layer: int, head: int, words: Sequence[str], top_k: int = 100, *,
                         similarity=None, n_dims: int | None = None, n_reference: int = 3000,
                         z: float = 1.96) -> pd.DataFrame:
    """Word pairs a head's query/key dimensions relate, one rank-1 bilinear term per dimension.

    Dimensions are ranked by energy ``sum_words Hq[:, r]^2 + Hk[:, r]^2`` (``n_dims`` keeps the
    strongest). Per dimension: the ``top_k`` words by ``|Hq[:, r]|`` (queries) and by
    ``|Hk[:, r]|`` (keys); a pair is kept when ``Hq[q, r] * Hk[k, r] > 0``, the words differ, and
    their similarity exceeds both words' thresholds (mean + ``z`` std of the word's similarity to
    the first ``n_reference`` words: the "local co-occurrence" filter). ``similarity``: ``None``
    for the cosine of the model's own input embeddings (the paper used GloVe), an array
    ``[n_words, n_words]``, or a function ``words -> array``. One row per kept pair, ranked by
    similarity within each dimension.
    """
    words = _check_words(words, minimum=2)
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    vectors = word_vectors(lm, words)
    hq, hk = head_query_key(lm, layer, head, vectors)
    sim = _similarity_matrix(similarity, words, vectors)
    thresholds = similarity_thresholds(sim, n_reference, z)
    hq, hk = hq.numpy(), hk.numpy()
    energy = (hq ** 2 + hk ** 2).sum(axis=0)
    order = np.argsort(-energy, kind="stable")[:n_dims]
    k = min(top_k, len(words))
    rows = []
    for rank, r in enumerate(order):
        queries = np.argsort(-np.abs(hq[:, r]), kind="stable")[:k]
        keys = np.argsort(-np.abs(hk[:, r]), kind="stable")[:k]
        product = hq[queries, r][:, None] * hk[keys, r][None, :]
        s = sim[np.ix_(queries, keys)]
        keep = (product > 0) & (s > thresholds[queries][:, None]) & (s > thresholds[keys][None, :])
        keep &= queries[:, None] != keys[None, :]
        for i, j in zip(*np.nonzero(keep)):
            rows.append(dict(layer=layer, head=head, dim=int(r), dim_rank=rank,
                             energy=float(energy[r] / energy.sum()),
                             query=words[queries[i]], key=words[keys[j]],
                             similarity=float(s[i, j]), product=float(product[i, j])))
    frame = pd.DataFrame(rows, columns=["layer", "head", "dim", "dim_rank", "energy", "query",
                                        "key", "similarity", "product"])
    return frame.sort_values(["dim_rank", "similarity"], ascending=[True, False],
                             ignore_index=True)


def _similarity_matrix(similarity, words: list[str], vectors: torch.Tensor) -> np.ndarray:
    if similarity is None:
        return word_similarity(vectors)
    sim = similarity(words) if callable(similarity) else similarity
    sim = np.asarray(sim.detach().cpu() if torch.is_tensor(sim) else sim, dtype=np.float64)
    if sim.shape != (len(words), len(words)):
        raise ValueError(f"similarity must be [n_words, n_words] = {(len(words), len(words))}, "
                         f"got shape {sim.shape}")
    return sim


def word_counts(pairs: pd.DataFrame, min_dims: int = 2) -> pd.DataFrame:
    """Word occurrences per (layer, head) among pairs found in at least ``min_dims`` dimensions.

    The paper's Table 3 filter ("pairs appearing in more than one dimension of that head").
    Returns columns layer, head, word, count.
    """
    if pairs.empty:
        return pd.DataFrame(columns=["layer", "head", "word", "count"])
    pair = pairs.assign(pair=[tuple(sorted(p)) for p in zip(pairs["query"], pairs["key"])])
    n_dims = pair.groupby(["layer", "head", "pair"])["dim"].nunique().reset_index()
    kept = n_dims[n_dims["dim"] >= min_dims]
    long = [(l, h, w) for l, h, p in zip(kept["layer"], kept["head"], kept["pair"]) for w in p]
    frame = pd.DataFrame(long, columns=["layer", "head", "word"])
    return frame.value_counts().rename("count").reset_index()


# ------------------------------------------------------------------ FFN concepts

@torch.no_grad()
def ffn_components(lm, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA of one layer's FFN value vectors (rows of the output projection's ``weight.T``, centred).

    Returns ``(components [d_model, d_model], explained [d_model])``: orthonormal principal
    directions in the residual space (rows, strongest first) and explained-variance ratios
    (``S^2 / (n - 1)``, normalised to sum 1).
    """
    _check_layer(lm, layer, "FFN concepts", FFN_FAMILIES)
    values = weight(lm.model, layer, "mlp_values").weight.detach().double().cpu().T  # [d_ffn, d_model]
    out_norm = weight(lm.model, layer, "mlp_values_norm")
    if out_norm is not None:  # e.g. Gemma-3 scales the FFN output per dim
        values = values * _gain(out_norm, values.shape[1])
    centred = values - values.mean(dim=0, keepdim=True)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    variance = s ** 2 / (values.shape[0] - 1)
    return vt, variance / variance.sum()


def model_annotator(lm, categories: Sequence[str] = TASK_CATEGORIES, *, n_words: int = 10,
                    question: str = "Which kind of task are these words most useful for?",
                    calibrate: bool = True,
                    batch_size: int = 16) -> Callable[[list[list[str]]], list[str]]:
    """An annotator asking ``lm`` to label word lists: ``annotator(word_lists) -> labels``.

    The prompt lists the first ``n_words`` words, asks ``question`` with the ``categories`` as
    options, and the label is the category whose first token ``lm`` finds most likely next
    (one forward per batch, no sampling; raw prompt, no chat template). ``calibrate`` divides
    by the option probabilities for a content-free word list ("N/A"), so a small model's
    preference for one option name does not decide every label (contextual calibration).
    """
    categories = _check_words(categories, minimum=2)
    first, cue = [lm.token_id(" " + c) for c in categories], "Answer:"
    if len(set(first)) != len(first):  # e.g. a byte tokenizer: the space is the first token
        first, cue = [lm.token_id(c) for c in categories], "Answer: "
    if len(set(first)) != len(first):
        raise ValueError(f"categories {categories!r} share a first token; rename them")
    options = ", ".join(categories)

    def prompt(ws: list[str]) -> str:
        return f"Words: {', '.join(ws[:n_words])}\n{question} Options: {options}.\n{cue}"

    def annotate(word_lists: list[list[str]]) -> list[str]:
        prior = lm.next_token_probs([prompt(["N/A"])])[0, first] if calibrate else 1.0
        labels = []
        for lo in range(0, len(word_lists), batch_size):
            probs = lm.next_token_probs([prompt(ws) for ws in word_lists[lo:lo + batch_size]])
            labels += [categories[i] for i in (probs[:, first] / prior).argmax(-1).tolist()]
        return labels

    return annotate


def ffn_concepts(lm, layer: int, n_components: int = 20, top_k: int = 15, *,
                 words: Sequence[str] | None = None, annotator=None) -> pd.DataFrame:
    """The top principal components of a layer's FFN value vectors, in words, with labels.

    Each component is compared with the L2-normalised output embeddings of ``words`` (default:
    :func:`tokenizer_words`); its ``top_k`` words by ``|cosine|`` (sign-agnostic) describe it.
    ``annotator(list of word lists) -> list of labels``: ``None`` asks ``lm`` itself
    (:func:`model_annotator`; pass ``model_annotator(tuned_lm)`` to label a base model with its
    tuned sibling, or any function, e.g. an API model); ``False`` skips labelling.
    Columns: layer, component (0 = largest), score (explained-variance ratio), words, label.
    """
    if not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    words = tokenizer_words(lm) if words is None else _check_words(words)
    components, explained = ffn_components(lm, layer)
    n_components = min(n_components, components.shape[0])
    vocab = torch.nn.functional.normalize(output_word_vectors(lm, words), dim=-1)
    cosine = components[:n_components] @ vocab.T  # [n_components, n_words]
    top = cosine.abs().topk(min(top_k, len(words)), dim=-1).indices
    word_lists = [[words[i] for i in row] for row in top.tolist()]
    if annotator is None:
        annotator = model_annotator(lm)
    labels = [None] * n_components
    if annotator is not False:
        labels = list(annotator(word_lists))
        if len(labels) != n_components:
            raise ValueError(f"annotator returned {len(labels)} labels for {n_components} word lists")
    return pd.DataFrame(dict(layer=layer, component=range(n_components),
                             score=explained[:n_components].numpy(), words=word_lists,
                             label=labels))
