"""Tables 3 and 5 / Figure 3 of the instruction-tuning-shift paper (Wu et al., arXiv 2310.00492),
computed the way the authors' ``analysis_bilinear_interpret.py`` and ``analysis_linear_interpret.py``
do, from their released explanations (:mod:`~nbtoolkit.instruction_shift.released`) or from ours
(:mod:`~nbtoolkit.instruction_shift.heads`, :mod:`~nbtoolkit.instruction_shift.ffn`).

Table 3 (attention heads): per (layer, head), the word pairs found more than once over the
head's dimensions are kept and each word counted in them (:func:`head_word_counts`); per layer
group and verb, over the heads where the verb's count differs between the models, the share
where the tuned model has more; mean ± std over verbs, instruction verbs vs general verbs, with
Welch's t-test (:func:`verb_shift`).

Table 5 / Figure 3 (FFN concepts): per annotation seed and model, the share of concepts whose
label names a category (substring, as the authors' ``task in label.lower()``); mean ± std over
seeds and Student's t-test between the models (:func:`concept_shares`); Figure 3 is the same per
layer group (:func:`concept_shares_by_group`; the authors plot their last seed only).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .released import normalise_pair

PAIRS_COLUMNS = ("model", "layer", "head", "dim", "pair")
HEAD_WORD_COLUMNS = ("model", "layer", "head", "word", "count")
VERB_SHIFT_COLUMNS = ("group", "verbs", "mean", "std", "n_verbs", "p")
CONCEPT_SHARES_COLUMNS = ("category", "base_mean", "base_std", "tuned_mean", "tuned_std", "n_seeds", "p")


def layer_group_label(layer: int, size: int) -> str:
    """0-based ``layer`` -> its 1-based group name: ``layer_group_label(9, 8) == "9-16"``."""
    first = layer // size * size + 1
    return f"{first}-{first + size - 1}"


def pairs_from_explanations(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """:meth:`~nbtoolkit.instruction_shift.heads.WordPairs.to_frame` rows (layer, head, dim, query,
    key) as the pairs table :func:`head_word_counts` reads (columns model, layer, head, dim, pair)."""
    pairs = [normalise_pair(f"{k}={q}") for q, k in zip(frame["query"], frame["key"])]
    return pd.DataFrame({"model": model, "layer": frame["layer"].to_numpy(),
                         "head": frame["head"].to_numpy(), "dim": frame["dim"].to_numpy(),
                         "pair": pairs}, columns=PAIRS_COLUMNS)


def head_word_counts(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (model, layer, head): the pairs occurring more than once over the head's dimensions,
    and per word the number of those pairs containing it. ``pairs``: columns model, layer, head,
    dim, pair (``None`` rows only mark a dim). Returns columns model, layer, head, word, count."""
    rows = []
    for (model, layer, head), part in pairs.dropna(subset=["pair"]).groupby(["model", "layer", "head"]):
        kept = [p for p, c in Counter(part["pair"]).items() if c > 1]
        for word, count in Counter(w for p in kept for w in p.split("=")).items():
            rows.append((model, layer, head, word, count))
    return pd.DataFrame(rows, columns=HEAD_WORD_COLUMNS).astype({"count": int})


def verb_shift(counts: pd.DataFrame, *, base: str, tuned: str, instruction_verbs: Sequence[str],
               general_verbs: Sequence[str], unit: Sequence[str] = ("layer", "head")) -> pd.DataFrame:
    """Table 3: per ``group`` and verb list, the share of units (heads) where ``tuned`` has more
    occurrences of a verb than ``base``, ignoring units where the two are equal.

    ``counts``: columns model, group, the ``unit`` columns, word, count (absent = 0). A unit is
    what the two models share: (layer, head) for the paper's same-architecture pair. Returns one
    row per (group, verbs): mean and std (numpy's, ddof 0, as the authors) of the per-verb shares,
    the number of verbs with any change, and Welch's two-sided p-value between the instruction
    and general verbs of the group (repeated on both rows). Columns: group, verbs, mean, std,
    n_verbs, p (:data:`VERB_SHIFT_COLUMNS`); no rows when ``counts`` has none, and mean, std
    and p NaN (n_verbs 0) for a verb list none of whose verbs changed in a group.
    """
    unit = list(unit)
    wide = counts.pivot_table(index=["group", *unit], columns=["model", "word"], values="count",
                              aggfunc="sum", fill_value=0)
    rows = []
    for group, part in wide.groupby(level="group", sort=True):
        shares = {}
        for kind, verbs in (("instruction verbs", instruction_verbs), ("general verbs", general_verbs)):
            values = []
            for verb in dict.fromkeys(verbs):
                t = part[(tuned, verb)].to_numpy() if (tuned, verb) in part else np.zeros(len(part))
                b = part[(base, verb)].to_numpy() if (base, verb) in part else np.zeros(len(part))
                changed = t != b
                if changed.any():
                    values.append(float(np.mean(t[changed] > b[changed])))
            shares[kind] = values
        both = all(len(v) > 1 for v in shares.values())
        p = (stats.ttest_ind(shares["instruction verbs"], shares["general verbs"], equal_var=False).pvalue
             if both else np.nan)
        for kind, values in shares.items():
            rows.append({"group": group, "verbs": kind,
                         "mean": float(np.mean(values)) if values else np.nan,
                         "std": float(np.std(values)) if values else np.nan,
                         "n_verbs": len(values), "p": p})
    return pd.DataFrame(rows, columns=VERB_SHIFT_COLUMNS).astype(
        {"mean": float, "std": float, "n_verbs": int, "p": float})


def _shares(labels: pd.DataFrame, categories: Sequence[str], keys: list[str]) -> pd.DataFrame:
    lower = labels["label"].astype(str).str.lower()
    flags = pd.DataFrame({c: lower.str.contains(c.lower(), regex=False) for c in categories})
    long = pd.concat([labels[keys].reset_index(drop=True), flags.reset_index(drop=True)], axis=1)
    means = long.groupby(keys)[list(categories)].mean().rename_axis(columns="category")
    return means.stack().rename("share").reset_index()


def concept_shares(labels: pd.DataFrame, categories: Sequence[str], *, base: str,
                   tuned: str) -> pd.DataFrame:
    """Table 5: per category, the share of concepts labelled with it for ``base`` and ``tuned``
    (mean and std over seeds, ddof 0) and Student's t-test p over the seeds (the authors'
    ``ttest_ind`` defaults; NaN with one seed). ``labels``: columns seed, model, label. Columns:
    category, base_mean, base_std, tuned_mean, tuned_std, n_seeds, p
    (:data:`CONCEPT_SHARES_COLUMNS`), one row per category."""
    shares = _shares(labels, categories, ["seed", "model"])
    rows = []
    for category in categories:
        part = shares[shares.category == category]
        b = part.loc[part.model == base, "share"].to_numpy()
        t = part.loc[part.model == tuned, "share"].to_numpy()
        p = stats.ttest_ind(b, t).pvalue if min(len(b), len(t)) > 1 else np.nan
        rows.append({"category": category, "base_mean": b.mean(), "base_std": b.std(),
                     "tuned_mean": t.mean(), "tuned_std": t.std(), "n_seeds": len(b), "p": p})
    return pd.DataFrame(rows, columns=CONCEPT_SHARES_COLUMNS).astype(
        {"base_mean": float, "base_std": float, "tuned_mean": float, "tuned_std": float,
         "n_seeds": int, "p": float})


def concept_shares_by_group(labels: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    """Figure 3: share of concepts per category, per model and layer ``group``, mean and std over
    seeds. ``labels``: columns seed, model, group, label. Columns model, group, category, share,
    share_std."""
    shares = _shares(labels, categories, ["seed", "model", "group"])
    return shares.groupby(["model", "group", "category"])["share"].agg(
        share="mean", share_std=lambda s: s.std(ddof=0)).reset_index()
