"""Attention heads as word pairs, from weights alone (Wu et al., arXiv 2310.00492, Table 3).

    pairs = attention_word_pairs(lm, layer=3, head=1, words=vocab, top_k=100)
    pairs.to_frame()       # one row per (dimension, query word, key word) kept

A head's query-key score of two words is ``q . k = sum_r Hq[q, r] * Hk[k, r]``, one rank-1
bilinear term per head dimension ``r``, with ``Hq = (E * g) W_q^h``, ``Hk = (E * g) W_k^h``, ``E``
the words' input embeddings and ``g`` the gain of the attention's input RMSNorm. Rotary
embeddings are ignored; grouped-query heads use their shared key head. Gemma-3 also normalises
queries and keys per head (query/key norms); we apply those modules to ``Hq``/``Hk``, so they are
the exact pre-rotary queries/keys of the (gain-scaled) word vectors.

Weights are read through the anatomy (:func:`nbtoolkit.core.anatomy.weight`); decoder families
only, with separate query/key projections and an RMSNorm at the attention's input, whose gain is
folded in as the paper does (:data:`ATTENTION_FAMILIES`): fused projections (GPT-2, GPT-NeoX,
Phi-3's qkv) are refused, not sliced, and so are LayerNorm families (GPT-J, OPT, Phi: their norm
also centres and shifts, which a gain cannot fold) and OLMo-2 (no input norm; its query/key norms
span all heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import config_value, families_of_kind, families_with, weight
from .vocabulary import check_layer, check_words, norm_gain, word_vectors

ATTENTION_WEIGHTS = ("query", "key", "attn_norm")  # what attention word pairs read
ATTENTION_FAMILIES = tuple(f for f in families_with(ATTENTION_WEIGHTS, norm="rms")
                           if f in families_of_kind(["decoder"]))
PAIR_COLUMNS = ["layer", "head", "dim", "dim_rank", "energy", "query", "key", "similarity",
                "product"]


@dataclass
class WordPairs:
    """The word pairs one head's query/key dimensions relate, one entry per kept pair (ranked by
    dimension, then by similarity): the dimension ``dims`` (its ``dim_ranks`` by energy and its
    share of the head's ``energies``), the ``queries`` and ``keys`` words, their ``similarities``
    and bilinear ``products``."""

    layer: int
    head: int
    dims: list[int]
    dim_ranks: list[int]
    energies: list[float]
    queries: list[str]
    keys: list[str]
    similarities: list[float]
    products: list[float]

    def __len__(self) -> int:
        return len(self.dims)

    def to_frame(self) -> pd.DataFrame:
        """Columns layer, head, dim, dim_rank, energy, query, key, similarity, product."""
        return pd.DataFrame({"layer": self.layer, "head": self.head, "dim": self.dims,
                             "dim_rank": self.dim_ranks, "energy": self.energies,
                             "query": self.queries, "key": self.keys,
                             "similarity": self.similarities, "product": self.products},
                            columns=PAIR_COLUMNS)


@torch.no_grad()
def head_query_key(lm, layer: int, head: int, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension query and key values of input vectors for one head (RoPE ignored).

    ``vectors`` ``[n, d_model]`` -> ``(Hq, Hk)``, each ``[n, d_head]`` float64.
    """
    check_layer(lm, layer, "attention word pairs", ATTENTION_FAMILIES)
    wq, wk = weight(lm.model, layer, "query"), weight(lm.model, layer, "key")
    n_heads = config_value(lm.model, "n_heads")
    n_kv = config_value(lm.model, "n_kv_heads")
    if not isinstance(head, int) or not 0 <= head < n_heads:
        raise ValueError(f"head must be an int in 0..{n_heads - 1}, got {head!r}")
    d_head = wq.out_features // n_heads
    x = vectors.double() * norm_gain(weight(lm.model, layer, "attn_norm"), vectors.shape[-1])
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
                         z: float = 1.96) -> WordPairs:
    """Word pairs a head's query/key dimensions relate, one rank-1 bilinear term per dimension.

    Dimensions are ranked by energy ``sum_words Hq[:, r]^2 + Hk[:, r]^2`` (``n_dims`` keeps the
    strongest). Per dimension: the ``top_k`` words by ``|Hq[:, r]|`` (queries) and by
    ``|Hk[:, r]|`` (keys); a pair is kept when ``Hq[q, r] * Hk[k, r] > 0``, the words differ, and
    their similarity exceeds both words' thresholds (mean + ``z`` std of the word's similarity to
    the first ``n_reference`` words: the "local co-occurrence" filter). ``similarity``: ``None``
    for the cosine of the model's own input embeddings (the paper used GloVe), an array
    ``[n_words, n_words]``, or a function ``words -> array``. Returns :class:`WordPairs`, ranked by
    similarity within each dimension.
    """
    words = check_words(words, minimum=2)
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
    frame = pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(
        ["dim_rank", "similarity"], ascending=[True, False], ignore_index=True)
    return WordPairs(layer, head, *(frame[column].tolist() for column in PAIR_COLUMNS[2:]))


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

    ``pairs``: :meth:`WordPairs.to_frame` rows (of one or several heads). The paper's Table 3
    filter ("pairs appearing in more than one dimension of that head"). Returns columns layer,
    head, word, count.
    """
    if pairs.empty:
        return pd.DataFrame(columns=["layer", "head", "word", "count"])
    pair = pairs.assign(pair=[tuple(sorted(p)) for p in zip(pairs["query"], pairs["key"])])
    n_dims = pair.groupby(["layer", "head", "pair"])["dim"].nunique().reset_index()
    kept = n_dims[n_dims["dim"] >= min_dims]
    long = [(l, h, w) for l, h, p in zip(kept["layer"], kept["head"], kept["pair"]) for w in p]
    frame = pd.DataFrame(long, columns=["layer", "head", "word"])
    return frame.value_counts().rename("count").reset_index()
