"""Run folders of the CCS pipeline: write an elicitation (config.json, eval.csv, lm_eval.csv,
reporters/t<template>/<kind>/layer_<L>.{safetensors,json}; ``tall`` for one reporter of all
templates), read its reporters back, and evaluate them on another dataset (transfer). The command
line (:mod:`nbtoolkit.cli.ccs`) puts them under ``--out``, else ``NBTOOLKIT_CCS_DIR``, else
``build/ccs``.

A run folder is published whole: written into a hidden sibling (``.<name>.tmp-*``) that ends with
a ``complete.json`` marker, then renamed into place, so a reader sees the old complete run or the
new one, never a mix or half of one; a folder without the marker is refused."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ..core.files import replace_folder, stale_asides, write_json
from ..data.contrast import load_contrast
from ..probes import load_reporter, save_reporter
from .activations import extract
from .elicit import Elicitation
from .layers import eval_layers
from .pooling import centred, stack_templates


COMPLETE = "complete.json"  # written last: the run folder holds everything


def write_run(result: Elicitation, folder: Path) -> Path:
    """config.json, eval.csv, lm_eval.csv and reporters/ in ``folder``, replacing a previous
    run there as a whole (nothing of it is kept, e.g. reporters of templates not re-run)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.parent.glob(f".{folder.name}.tmp-*"), *stale_asides(folder)]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed writer
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        write_json(tmp / "config.json", dict(result.config, seconds=result.seconds))
        result.table.assign(model=result.model).to_csv(tmp / "eval.csv", index=False)
        result.lm_table.assign(model=result.model).to_csv(tmp / "lm_eval.csv", index=False)
        for (template, kind), reps in result.reporters.items():
            for layer, rep in reps.items():
                save_reporter(rep, tmp / "reporters" / f"t{template}" / kind / f"layer_{layer}")
        write_json(tmp / COMPLETE, {"files": sorted(str(p.relative_to(tmp))
                                                    for p in tmp.rglob("*") if p.is_file())})
        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def check_run(folder: Path) -> Path:
    """``folder`` if it is a complete run folder; ``ValueError`` saying what is wrong."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} is not a run folder (no config.json); make one with `elicit`")
    marker = folder / COMPLETE
    if not marker.is_file():
        raise ValueError(f"run folder {folder} is incomplete (no {COMPLETE}): it was cut short "
                         f"while being written, or written by an older nbtoolkit; run `elicit` "
                         f"again")
    missing = [f for f in json.loads(marker.read_text())["files"] if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"run folder {folder} is incomplete: {len(missing)} of its files are "
                         f"missing ({', '.join(missing[:3])}); run `elicit` again")
    return folder


def load_run_reporters(folder: Path) -> dict:
    """``{(template, kind): {layer: reporter}}`` from a run folder (template ``"all"``: one
    reporter for every template)."""
    out = {}
    folder = check_run(folder)
    for path in sorted((folder / "reporters").glob("t*/*/layer_*.json")):
        key, kind = path.parent.parent.name[1:], path.parent.name
        template = int(key) if key.isdigit() else key
        layer = int(path.stem.split("_")[1])
        out.setdefault((template, kind), {})[layer] = load_reporter(path.with_suffix(""))
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
    reporters = load_run_reporters(folder)
    config = json.loads((Path(folder) / "config.json").read_text())
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
            t = eval_layers(reps, test, n_boot=config["n_boot"], seed=config["seed"],
                                   refit_norm_on=None if same else train)
            frames.append(t.assign(source_dataset=config["dataset"], source_template=template,
                                   model=config["model"]))
    return pd.concat(frames, ignore_index=True)
