"""The elicitation pipeline (elk-style) for one model and one dataset, and the Burns Table 1 layout.

``elicit`` loads pairs, extracts hidden states (cached), splits examples into train/test (the same
examples for every template), fits CCS, CRC and the logistic probe on every layer of every
template, and evaluates them on the test split with bootstrap intervals, beside the zero-shot
baselines. Layers: −1 = the embeddings, i = after block i (see :mod:`nbtoolkit.core.anatomy`).

Sign: CCS/CRC directions are oriented on the training labels (see :mod:`nbtoolkit.probes`);
``acc_optimistic`` = max(acc, 1 − acc) is kept in the tables but is optimistic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from .. import probes
from ..data.contrast import load_contrast
from ..papers import BURNS
from .activations import extract


DEFAULTS = dict(templates=None, n=200, train_frac=0.6, seed=0, layers=None, pooling="last",
                reporters=("ccs", "crc", "lr"), n_boot=1000, ccs=dict(n_tries=10, epochs=1000))


@dataclass
class Elicitation:
    """The result of :func:`elicit` for one model and one dataset.

    ``table``: eval.csv rows (reporters on every layer, per template) ; ``lm_table``: zero-shot rows;
    ``reporters[(template, kind)][layer]``: fitted reporters; ``splits[template]`` = (train, test).
    """

    model: str
    dataset: str
    config: dict
    table: pd.DataFrame
    lm_table: pd.DataFrame
    reporters: dict = field(repr=False)
    splits: dict = field(repr=False)
    seconds: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Reporter and zero-shot rows together, with the model name."""
        return pd.concat([self.table, self.lm_table], ignore_index=True).assign(model=self.model)


def elicit(lm, dataset: str, *, templates=None, n: int | None = 200, train_frac: float = 0.6,
           seed: int = 0, layers: list[int] | None = None, pooling: str = "last",
           reporters=("ccs", "crc", "lr"), options: dict | None = None, n_boot: int = 1000,
           cache=True, progress: bool = True, batch_size: int = 32) -> Elicitation:
    """Extract states of ``dataset`` (``n`` balanced examples, each template), fit every reporter
    on every layer of the training split and evaluate on the test split (per template)."""
    sets = load_contrast(dataset, templates, n=n, seed=seed)
    options = options or {}
    tables, lm_tables, fitted, splits = [], [], {}, {}
    seconds = {"extract": 0.0, "fit": 0.0}
    for cs in sets:
        start = time.perf_counter()
        states = extract(lm, cs, layers=layers, pooling=pooling, cache=cache, progress=progress,
                         batch_size=batch_size)
        seconds["extract"] += time.perf_counter() - start
        start = time.perf_counter()
        train, test = states.split(train_frac, seed)
        splits[cs.template_id] = (train, test)
        for kind in reporters:
            reps = probes.fit_layers(kind, train, **options.get(kind, {}))
            fitted[(cs.template_id, kind)] = reps
            tables.append(probes.eval_layers(reps, test, n_boot=n_boot, seed=seed, n_train=len(train)))
        lm_tables.append(probes.zero_shot_eval(train, test, n_boot=n_boot, seed=seed))
        seconds["fit"] += time.perf_counter() - start
    config = dict(model=lm.name, dataset=dataset, templates=[s.template_id for s in sets], n=n,
                  train_frac=train_frac, seed=seed, layers=list(splits[sets[0].template_id][0].layers),
                  pooling=pooling, reporters=list(reporters), options=options, n_boot=n_boot,
                  sign="CCS/CRC oriented on training labels; acc_optimistic = max(acc, 1-acc)")
    return Elicitation(lm.name, dataset, config, pd.concat(tables, ignore_index=True),
                       pd.concat(lm_tables, ignore_index=True), fitted, splits, seconds)


def per_layer(frame: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Mean of ``metric`` (and its CI ends) over templates: one row per (model?, dataset, reporter, layer)."""
    keys = [c for c in ("model", "dataset", "reporter", "layer") if c in frame.columns]
    cols = [c for c in (metric, f"{metric}_lower", f"{metric}_upper") if c in frame.columns]
    return frame.groupby(keys, as_index=False, dropna=False)[cols].mean()


def select_layer(frame: pd.DataFrame, reporter: str = "ccs", column: str = "train_acc") -> int:
    """The layer with the best mean ``column`` for ``reporter`` over datasets and templates.

    The default uses training-split accuracy only (sign-resolved CCS), so no test label chooses it.
    """
    rows = frame[(frame.reporter == reporter) & frame.layer.notna()]
    if rows.empty:
        raise ValueError(f"no rows for reporter {reporter!r}")
    return int(rows.groupby("layer")[column].mean().idxmax())


PAPER_MEANS = BURNS["means"]
METHOD_NAMES = {"zero_shot": "0-shot", "zero_shot_cal": "Calibrated 0-shot", "ccs": "CCS",
                "crc": "CRC (TPC)", "lr": "LR (ceiling)"}


def table1(frame: pd.DataFrame, layers: dict[str, int], metric: str = "acc") -> pd.DataFrame:
    """Burns Table 1 layout: one row per (model, method), one column per dataset, then the mean and
    the paper's mean (Mean*, %, over its 5 models and 10 datasets). ``layers[model]`` picks the
    layer for the hidden-state reporters; zero-shot rows have no layer. Values in %.
    """
    rows = []
    for model, sub in frame.groupby("model", sort=False):
        layer = layers[model]
        for method in PAPER_MEANS:
            part = sub[(sub.reporter == method) & ((sub.layer == layer) | sub.layer.isna())]
            if part.empty:
                continue
            per_ds = part.groupby("dataset")[metric].mean() * 100  # mean over templates
            row = {"model": model, "method": METHOD_NAMES[method], "layer": layer if method in
                   ("ccs", "crc", "lr") else None}
            row.update(per_ds.round(1).to_dict())
            row["mean"] = round(float(per_ds.mean()), 1)
            by_template = part.groupby("template")[metric].mean() * 100
            row["std_over_templates"] = (round(float(by_template.std(ddof=0)), 1)
                                         if len(by_template) > 1 else None)
            row["paper_mean"] = PAPER_MEANS[method]
            rows.append(row)
    return pd.DataFrame(rows)
