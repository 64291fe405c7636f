"""The elicitation pipeline (elk-style) for one model and one dataset, and the Burns Table 1 layout.

``elicit`` loads pairs, extracts hidden states (cached), splits examples into train/test (the same
examples for every template), fits the reporters (CCS, CRC, VINC, the logistic probe) on every
layer, and evaluates them on the test split with bootstrap intervals, beside the zero-shot
baselines. Layers: −1 = the embeddings, i = after block i (see :mod:`nbtoolkit.core.anatomy`).
Three shapes of run (elk's): one reporter per template (default); one reporter for all templates
(``ensemble=True``: rows per ensembling mode none / partial / full); and several datasets pooled
into one training set (``dataset="a+b"`` or a list, elk's ``--add_pooled``; also one reporter for
all templates), evaluated on each dataset's own test split. ``prefix`` puts a text before every
prompt (:data:`~nbtoolkit.data.contrast.MISLEADING_PREFIX`: Burns' Table 3).

Sign: the unsupervised directions get a Platt scale and bias fitted on the training labels (see
:mod:`nbtoolkit.probes`); ``acc_optimistic`` = max(acc, 1 − acc) is kept but is optimistic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from ..data.contrast import load_contrast
from .activations import extract
from .layers import eval_layers, fit_layers, zero_shot_eval
from .pooling import centred, pool, stack_templates


DEFAULTS = dict(templates=None, n=200, train_frac=0.6, seed=0, layers=None, pooling="last",
                reporters=("ccs", "crc", "vinc", "lr"), n_boot=1000, ccs=dict(n_tries=10, epochs=1000))


@dataclass
class Elicitation:
    """The result of :func:`elicit` for one model and one dataset.

    ``table``: eval.csv rows (reporters on every layer, per template or ensembling mode);
    ``lm_table``: zero-shot rows; ``reporters[(template, kind)][layer]``: fitted reporters
    (template ``"all"`` for one reporter of all templates); ``splits[template]`` = (train, test)
    (pooled runs: ``splits[dataset]``, each dataset's stacked states before pooling).
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


def elicit(lm, dataset: str | list[str], *, templates=None, n: int | None = 200,
           train_frac: float = 0.6, seed: int = 0, layers: list[int] | None = None,
           pooling: str = "last", reporters=("ccs", "crc", "vinc", "lr"),
           options: dict | None = None, n_boot: int = 1000, ensemble: bool = False,
           prefix: str | None = None, cache=True, progress: bool = True,
           batch_size: int = 32) -> Elicitation:
    """Extract states of ``dataset`` (``n`` balanced examples, each template), fit every reporter
    on every layer of the training split and evaluate on the test split.

    ``dataset``: a name, or several (a list, or names joined by ``+``) pooled into one training
    set. ``ensemble``: one reporter per layer for all templates instead of one per template.
    ``options[kind]``: keyword arguments of that reporter. ``prefix``: text before every prompt.
    """
    if not reporters:
        raise ValueError(f"reporters must name at least one reporter, got {reporters!r}")
    names = dataset.split("+") if isinstance(dataset, str) else list(dataset)
    options = options or {}
    seconds = {"extract": 0.0, "fit": 0.0}
    states = {}
    for name in names:
        start = time.perf_counter()
        states[name] = [extract(lm, cs, layers=layers, pooling=pooling, cache=cache,
                                progress=progress, batch_size=batch_size)
                        for cs in load_contrast(name, templates, n=n, seed=seed, prefix=prefix)]
        seconds["extract"] += time.perf_counter() - start
    start = time.perf_counter()
    # jobs: template key -> (training states, test states to score, zero-shot (train, test) pairs)
    if len(names) == 1 and not ensemble:
        splits = {s.template_id: s.split(train_frac, seed) for s in states[names[0]]}
        jobs = {t: (train, [test], [(train, test)]) for t, (train, test) in splits.items()}
    else:
        splits = {name: stack_templates(states[name]).split(train_frac, seed) for name in names}
        if len(names) == 1:
            train, test = splits[names[0]]
            splits = {"all": (train, test)}
            jobs = {"all": (train, [test], [(train, test)])}
        else:
            jobs = {"all": (pool([tr for tr, _ in splits.values()]),
                            [centred(te, by=tr) for tr, te in splits.values()], list(splits.values()))}
    tables, lm_tables, fitted = [], [], {}
    for key, (train, tests, lm_pairs) in jobs.items():
        for kind in reporters:
            reps = fit_layers(kind, train, **options.get(kind, {}))
            fitted[(key, kind)] = reps
            tables += [eval_layers(reps, test, n_boot=n_boot, seed=seed, n_train=len(train))
                       for test in tests]
        lm_tables += [zero_shot_eval(tr, te, n_boot=n_boot, seed=seed) for tr, te in lm_pairs]
    seconds["fit"] += time.perf_counter() - start
    first = states[names[0]]
    config = dict(model=lm.name, dataset="+".join(names), templates=[s.template_id for s in first],
                  n=n, train_frac=train_frac, seed=seed, layers=list(first[0].layers),
                  pooling=pooling, reporters=list(reporters), options=options, n_boot=n_boot,
                  ensemble=bool(ensemble or len(names) > 1), prefix=prefix,
                  sign="Platt scale and bias fitted on training labels; "
                       "acc_optimistic = max(acc, 1-acc)")
    return Elicitation(lm.name, config["dataset"], config, pd.concat(tables, ignore_index=True),
                       pd.concat(lm_tables, ignore_index=True), fitted, splits, seconds)


def per_layer(frame: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Mean of ``metric`` (and its CI ends) over templates: one row per (model?, dataset,
    ensembling?, reporter, layer)."""
    keys = [c for c in ("model", "dataset", "ensembling", "reporter", "layer") if c in frame.columns]
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


METHOD_NAMES = {"zero_shot": "0-shot", "zero_shot_cal": "Calibrated 0-shot", "ccs": "CCS",
                "crc": "CRC (TPC)", "vinc": "VINC", "lr": "LR (ceiling)"}


def table1(frame: pd.DataFrame, layers: dict[str, int], metric: str = "acc", *,
           paper_means: dict[str, float] | None = None) -> pd.DataFrame:
    """Burns Table 1 layout: one row per (model, method), one column per dataset, then the mean and
    ``paper_mean``, the published mean of each method (``paper_means[method]``, e.g.
    ``nbtoolkit.tutorials.papers.BURNS["means"]``: Mean*, %, over its 5 models and 10 datasets;
    NaN for a method it lacks, such as VINC, which came later). ``layers[model]`` picks the layer
    for the hidden-state reporters; zero-shot rows have no layer. Per-template ("partial") rows
    only. Values in %. Columns: model, method, layer, one per dataset of ``frame`` (sorted),
    mean, std_over_templates, paper_mean; no rows when no method has a row at its layer.
    """
    paper_means = paper_means or {}
    if "ensembling" in frame:
        frame = frame[frame.ensembling.isna() | (frame.ensembling == "partial")]
    datasets = sorted(frame["dataset"].unique())
    rows = []
    for model, sub in frame.groupby("model", sort=False):
        layer = layers[model]
        for method in METHOD_NAMES:
            part = sub[(sub.reporter == method) & ((sub.layer == layer) | sub.layer.isna())]
            if part.empty:
                continue
            per_ds = part.groupby("dataset")[metric].mean() * 100  # mean over templates
            row = {"model": model, "method": METHOD_NAMES[method],
                   "layer": None if method.startswith("zero_shot") else layer}
            row.update(per_ds.round(1).to_dict())
            row["mean"] = round(float(per_ds.mean()), 1)
            by_template = part.groupby("template")[metric].mean() * 100
            row["std_over_templates"] = (round(float(by_template.std(ddof=0)), 1)
                                         if len(by_template) > 1 else None)
            row["paper_mean"] = paper_means.get(method, float("nan"))
            rows.append(row)
    return pd.DataFrame(rows, columns=["model", "method", "layer", *datasets, "mean",
                                       "std_over_templates", "paper_mean"])
