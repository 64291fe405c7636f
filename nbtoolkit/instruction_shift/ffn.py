"""FFN layers as concepts, from weights alone (Wu et al., arXiv 2310.00492, Table 5 / Figure 3).

    concepts = ffn_concepts(lm, layer=3, n_components=20, top_k=15)
    concepts.to_frame()    # one row per principal component: its words and label

The rows of the MLP output projection's transposed weight are the value vectors written to the
residual stream, one per intermediate neuron. Their principal directions, matched to the
normalised output (unembedding) vectors of words, name what a layer writes. Gemma-3 normalises the
FFN output before the residual; its post-norm gain is folded into the value vectors. Weights are
read through the anatomy; decoder families whose MLP output projection is a module of its own
(:data:`FFN_FAMILIES`; not GPT-2's, a Conv1D, nor Mixtral's fused experts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import families_of_kind, families_with, weight
from .vocabulary import (TASK_CATEGORIES, check_layer, check_words, norm_gain,
                         output_word_vectors, tokenizer_words)

FFN_WEIGHTS = ("mlp_values",)  # what FFN concepts read
FFN_FAMILIES = tuple(f for f in families_with(FFN_WEIGHTS) if f in families_of_kind(["decoder"]))


@dataclass
class Concepts:
    """The top principal components of one layer's FFN value vectors, in words: per component
    (0 = largest) its explained-variance ratio ``scores`` ``[n_components]``, its ``words`` and
    its ``labels`` (None when not annotated)."""

    layer: int
    scores: np.ndarray
    words: list[list[str]]
    labels: list[str | None]

    def __len__(self) -> int:
        return len(self.words)

    def to_frame(self) -> pd.DataFrame:
        """Columns layer, component, score, words, label."""
        return pd.DataFrame(dict(layer=self.layer, component=range(len(self.words)),
                                 score=self.scores, words=self.words, label=self.labels))


@torch.no_grad()
def ffn_components(lm, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA of one layer's FFN value vectors (rows of the output projection's ``weight.T``, centred).

    Returns ``(components [d_model, d_model], explained [d_model])``: orthonormal principal
    directions in the residual space (rows, strongest first) and explained-variance ratios
    (``S^2 / (n - 1)``, normalised to sum 1).
    """
    check_layer(lm, layer, "FFN concepts", FFN_FAMILIES)
    values = weight(lm.model, layer, "mlp_values").weight.detach().double().cpu().T  # [d_ffn, d_model]
    out_norm = weight(lm.model, layer, "mlp_values_norm")
    if out_norm is not None:  # e.g. Gemma-3 scales the FFN output per dim
        values = values * norm_gain(out_norm, values.shape[1])
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
    categories = check_words(categories, minimum=2)
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
                 words: Sequence[str] | None = None, annotator=None) -> Concepts:
    """The top principal components of a layer's FFN value vectors, in words, with labels.

    Each component is compared with the L2-normalised output embeddings of ``words`` (default:
    :func:`~nbtoolkit.instruction_shift.vocabulary.tokenizer_words`); its ``top_k`` words by
    ``|cosine|`` (sign-agnostic) describe it. ``annotator(list of word lists) -> list of labels``:
    ``None`` asks ``lm`` itself (:func:`model_annotator`; pass ``model_annotator(tuned_lm)`` to
    label a base model with its tuned sibling, or any function, e.g. an API model); ``False``
    skips labelling. Returns :class:`Concepts`.
    """
    if not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    words = tokenizer_words(lm) if words is None else check_words(words)
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
    return Concepts(layer, explained[:n_components].numpy(), word_lists, labels)
