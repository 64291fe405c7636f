"""Reporters on every layer of extracted contrast states: fit, evaluate (eval.csv rows), zero-shot
rows, and transfer between datasets.

States are :class:`~nbtoolkit.ccs.activations.ContrastStates`: one template (``at(layer)`` gives
``[n, d]`` pairs, one ``"partial"`` row per layer) or several stacked
(:func:`~nbtoolkit.ccs.pooling.stack_templates`: ``[n, v, d]``, one reporter for all templates and
a row per ensembling mode, ``template`` NaN)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.modes import one_thread
from ..probes import ENSEMBLING, Reporter, ZeroShot, accuracy, auroc, make_reporter, refit_normalization

EVAL_COLUMNS = ["dataset", "template", "ensembling", "layer", "reporter", "n_train", "n_test", "acc",
                "acc_lower", "acc_upper", "auroc", "auroc_lower", "auroc_upper", "cal_acc",
                "cal_acc_lower", "cal_acc_upper", "ece", "cal_thresh", "acc_optimistic",
                "train_acc", "flipped", "train_loss"]


def _modes(states, modes):
    """Ensembling modes to report: ``"partial"`` for one template, all three for several."""
    if modes is not None:
        return tuple(modes)
    return ENSEMBLING if np.ndim(states.logp_pos) == 2 else ("partial",)


def fit_layers(kind: str, train, layers: list[int] | None = None, **kwargs) -> dict[int, Reporter]:
    """Fit one reporter per layer on a :class:`~nbtoolkit.ccs.activations.ContrastStates` training set
    (all layers in one batched fit); training labels resolve the sign. Returns ``{layer: reporter}``."""
    layers = list(train.layers) if layers is None else list(layers)
    xp, xn = train.stack(layers)
    with one_thread():
        fitted = make_reporter(kind, **kwargs).fit_many(xp, xn, train.labels)
    return dict(zip(layers, fitted))


def eval_layers(reporters: dict[int, Reporter], test, *, n_boot: int = 1000, seed: int = 0,
                n_train: int | None = None, refit_norm_on=None, modes=None) -> pd.DataFrame:
    """eval.csv rows (one per layer and ensembling mode) for fitted reporters on test states.

    ``refit_norm_on``: unlabelled states whose per-class means replace the training ones
    (transfer to another dataset/template); ``None`` keeps the training statistics.
    ``modes``: ensembling modes (default: ``"partial"`` for one template, else all three).
    """
    rows = []
    for layer, rep in reporters.items():
        xp, xn = test.at(layer)
        if refit_norm_on is not None:
            rep = refit_normalization(rep, *refit_norm_on.at(layer))
        for mode in _modes(test, modes):
            row = {"dataset": test.dataset, "template": test.template_id, "ensembling": mode,
                   "layer": layer, "reporter": rep.kind, "n_train": n_train, "n_test": len(test)}
            row.update(rep.evaluate(xp, xn, test.labels, ensembling=mode, n_boot=n_boot, seed=seed))
            row["train_acc"] = getattr(rep, "train_acc_", np.nan)
            row["flipped"] = getattr(rep, "flipped_", False)
            row["train_loss"] = getattr(rep, "loss_", np.nan)
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=EVAL_COLUMNS)


def zero_shot_eval(train, test, *, n_boot: int = 1000, seed: int = 0, modes=None) -> pd.DataFrame:
    """Rows for the zero-shot and calibrated zero-shot baselines (``layer`` = NaN: not a layer)."""
    rows = []
    for calibrate in (False, True):
        rep = ZeroShot(calibrate).fit(train.logp_pos, train.logp_neg)
        for mode in _modes(test, modes):
            row = {"dataset": test.dataset, "template": test.template_id, "ensembling": mode,
                   "layer": np.nan, "reporter": rep.kind, "n_train": len(train), "n_test": len(test)}
            row.update(rep.evaluate(test.logp_pos, test.logp_neg, test.labels, ensembling=mode,
                                    n_boot=n_boot, seed=seed))
            row["train_acc"] = rep.score(train.logp_pos, train.logp_neg, train.labels)
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=EVAL_COLUMNS)


def transfer_matrix(splits: dict, layer: int, kind: str = "crc", *, metric: str = "auroc",
                    **kwargs) -> pd.DataFrame:
    """Train on dataset A, evaluate on dataset B, for every (A, B): a ``[train × eval]`` frame.

    ``splits`` maps a name to ``(train, test)`` :class:`ContrastStates`. A reporter is trained on
    A's training split (sign from A's labels); on B its per-class means are refitted on B's
    *unlabelled* training split (CCS/CRC only), then it is scored on B's test split.
    """
    names = list(splits)
    table = pd.DataFrame(index=pd.Index(names, name="train"), columns=pd.Index(names, name="eval"),
                         dtype=float)
    for a in names:
        rep = fit_layers(kind, splits[a][0], [layer], **kwargs)[layer]
        for b in names:
            train_b, test_b = splits[b]
            r = rep if a == b else refit_normalization(rep, *train_b.at(layer))
            p = r.predict_proba(*test_b.at(layer))
            y = np.repeat(test_b.labels, p[0].size)  # a label per (example, template)
            table.loc[a, b] = auroc(p.ravel(), y) if metric == "auroc" else accuracy(p.ravel(), y)
    return table
