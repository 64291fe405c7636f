"""Run folders of the CCS pipeline: write an elicitation (config.json, eval.csv, lm_eval.csv,
reporters/t<template>/<kind>/layer_<L>.{safetensors,json}; ``tall`` for one reporter of all
templates), read its reporters back, and evaluate them on another dataset (transfer). The output root is ``--out``, else ``NBTOOLKIT_CCS_DIR``,
else ``build/ccs``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .. import probes
from ..core.files import write_json
from ..data.contrast import load_contrast
from ..results import results_dir
from .activations import extract
from .elicit import Elicitation
from .pooling import centred, stack_templates


def output_root(out: str | None = None) -> Path:
    if out:
        return Path(out)
    if os.environ.get("NBTOOLKIT_CCS_DIR"):
        return Path(os.environ["NBTOOLKIT_CCS_DIR"])
    return results_dir().parent / "ccs"


def write_run(result: Elicitation, folder: Path) -> Path:
    """config.json, eval.csv, lm_eval.csv and reporters/ under ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(result.config, seconds=result.seconds)
    write_json(folder / "config.json", config)
    result.table.assign(model=result.model).to_csv(folder / "eval.csv", index=False)
    result.lm_table.assign(model=result.model).to_csv(folder / "lm_eval.csv", index=False)
    for (template, kind), reps in result.reporters.items():
        for layer, rep in reps.items():
            probes.save_reporter(rep, folder / "reporters" / f"t{template}" / kind / f"layer_{layer}")
    return folder


def load_run_reporters(folder: Path) -> dict:
    """``{(template, kind): {layer: reporter}}`` from a run folder (template ``"all"``: one
    reporter for every template)."""
    out = {}
    for path in sorted((folder / "reporters").glob("t*/*/layer_*.json")):
        key, kind = path.parent.parent.name[1:], path.parent.name
        template = int(key) if key.isdigit() else key
        layer = int(path.stem.split("_")[1])
        out.setdefault((template, kind), {})[layer] = probes.load_reporter(path.with_suffix(""))
    for reps in out.values():
        reps_sorted = dict(sorted(reps.items()))
        reps.clear()
        reps.update(reps_sorted)
    return out


def transfer_eval(lm, folder: Path, dataset: str, *, n: int | None = None, templates=None,
                  progress: bool = True, cache=True) -> pd.DataFrame:
    """Evaluate the reporters of run ``folder`` on ``dataset`` (every source × target template;
    a reporter of all templates is scored on all the target's templates, which must be as many).

    CCS/CRC get per-class means refitted on the target's *unlabelled* training split; the
    logistic probe and VINC are applied as trained (elk's transfer), except after pooled training,
    whose reporters read states centred per dataset: the target is centred on its training
    means first. Scores are on the target's test split.
    """
    config = json.loads((folder / "config.json").read_text())
    reporters = load_run_reporters(folder)
    sets = load_contrast(dataset, templates, n=n or config["n"], seed=config["seed"],
                         prefix=config.get("prefix"))
    states = [extract(lm, cs, layers=config["layers"], pooling=config["pooling"], cache=cache,
                      progress=progress) for cs in sets]
    targets = {s.template_id: s for s in states}
    if any(key == "all" for key, _ in reporters):
        targets["all"] = stack_templates(states)
    frames = []
    for (template, kind), reps in reporters.items():
        for target_id, target in targets.items():
            if (template == "all") != (target_id == "all"):
                continue
            train, test = target.split(config["train_frac"], config["seed"])
            if "+" in config["dataset"]:  # pooled training: see nbtoolkit.ccs.pooling
                train, test = centred(train), centred(test, by=train)
            same = dataset == config["dataset"] and template == target_id
            t = probes.eval_layers(reps, test, n_boot=config["n_boot"], seed=config["seed"],
                                   refit_norm_on=None if same else train)
            frames.append(t.assign(source_dataset=config["dataset"], source_template=template,
                                   model=config["model"]))
    return pd.concat(frames, ignore_index=True)
