"""The elicitation pipeline (elk-style) and its command line.

    python -m nbtoolkit.ccs elicit smollm2-135m-instruct capitals --n 200 --templates 0 1
    python -m nbtoolkit.ccs eval build/ccs/smollm2-135m-instruct__capitals animals
    python -m nbtoolkit.ccs sweep --models smollm2-135m-instruct --datasets capitals animals
    python -m nbtoolkit.ccs plot [RUN]

``elicit`` loads pairs, extracts hidden states (cached), splits examples into train/test (the same
examples for every template), fits CCS, CRC and the logistic probe on every layer of every
template, and writes into ``<out>/<model>__<dataset>/``: ``config.json``, ``eval.csv`` (one row per
template × layer × reporter, with bootstrap CIs), ``lm_eval.csv`` (zero-shot baselines) and
``reporters/t<template>/<kind>/layer_<L>.{safetensors,json}``. ``eval RUN DATASET`` applies a run's
reporters to another dataset (transfer) and writes ``RUN/transfer/<dataset>/eval.csv``. The output
root is ``--out``, else ``NBTOOLKIT_CCS_DIR``, else ``build/ccs``.

Sign: CCS/CRC directions are oriented on the training labels (see :mod:`nbtoolkit.probes`);
``acc_optimistic`` = max(acc, 1 − acc) is kept in the tables but is optimistic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import probes
from .activations import ContrastStates, extract
from .contrast import load_contrast

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
    return frame.groupby(keys, as_index=False)[cols].mean()


def select_layer(frame: pd.DataFrame, reporter: str = "ccs", column: str = "train_acc") -> int:
    """The layer with the best mean ``column`` for ``reporter`` over datasets and templates.

    The default uses training-split accuracy only (sign-resolved CCS), so no test label chooses it.
    """
    rows = frame[(frame.reporter == reporter) & (frame.layer >= 0)]
    if rows.empty:
        raise ValueError(f"no rows for reporter {reporter!r}")
    return int(rows.groupby("layer")[column].mean().idxmax())


PAPER_MEANS = {"zero_shot": 62.8, "zero_shot_cal": 67.2, "ccs": 71.2, "crc": 69.2, "lr": 83.7}
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
            part = sub[(sub.reporter == method) & ((sub.layer == layer) | (sub.layer < 0))]
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


# --------------------------------------------------------------------------- writing runs

def output_root(out: str | None = None) -> Path:
    if out:
        return Path(out)
    if os.environ.get("NBTOOLKIT_CCS_DIR"):
        return Path(os.environ["NBTOOLKIT_CCS_DIR"])
    from .results import results_dir
    return results_dir().parent / "ccs"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def write_run(result: Elicitation, folder: Path) -> Path:
    """config.json, eval.csv, lm_eval.csv and reporters/ under ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(result.config, seconds=result.seconds)
    (folder / "config.json").write_text(json.dumps(config, indent=1, default=str))
    result.table.assign(model=result.model).to_csv(folder / "eval.csv", index=False)
    result.lm_table.assign(model=result.model).to_csv(folder / "lm_eval.csv", index=False)
    for (template, kind), reps in result.reporters.items():
        for layer, rep in reps.items():
            probes.save_reporter(rep, folder / "reporters" / f"t{template}" / kind / f"layer_{layer}")
    return folder


def load_run_reporters(folder: Path) -> dict:
    """``{(template, kind): {layer: reporter}}`` from a run folder."""
    out = {}
    for path in sorted((folder / "reporters").glob("t*/*/layer_*.json")):
        template, kind = int(path.parent.parent.name[1:]), path.parent.name
        layer = int(path.stem.split("_")[1])
        out.setdefault((template, kind), {})[layer] = probes.load_reporter(path.with_suffix(""))
    for reps in out.values():
        reps_sorted = dict(sorted(reps.items()))
        reps.clear()
        reps.update(reps_sorted)
    return out


def transfer_eval(lm, folder: Path, dataset: str, *, n: int | None = None, templates=None,
                  progress: bool = True, cache=True) -> pd.DataFrame:
    """Evaluate the reporters of run ``folder`` on ``dataset`` (every source × target template).

    CCS/CRC get per-class means refitted on the target's *unlabelled* training split; the
    logistic probe is applied as trained. Scores are on the target's test split.
    """
    config = json.loads((folder / "config.json").read_text())
    reporters = load_run_reporters(folder)
    sets = load_contrast(dataset, templates, n=n or config["n"], seed=config["seed"])
    frames = []
    for cs in sets:
        states = extract(lm, cs, layers=config["layers"], pooling=config["pooling"], cache=cache,
                         progress=progress)
        train, test = states.split(config["train_frac"], config["seed"])
        for (template, kind), reps in reporters.items():
            same = dataset == config["dataset"] and template == cs.template_id
            t = probes.eval_layers(reps, test, n_boot=config["n_boot"], seed=config["seed"],
                                   refit_norm_on=None if same else train)
            frames.append(t.assign(source_dataset=config["dataset"], source_template=template,
                                   model=config["model"]))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nbtoolkit.ccs",
                                description="Eliciting latent knowledge: CCS, CRC and a logistic "
                                            "ceiling on every layer (Burns et al. 2022).")
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("--templates", type=int, nargs="*", default=None,
                       help="template indices (default: all)")
        q.add_argument("--n", type=int, default=DEFAULTS["n"], help="examples per dataset (balanced)")
        q.add_argument("--train-frac", type=float, default=DEFAULTS["train_frac"])
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--layers", type=int, nargs="*", default=None,
                       help="hidden-state indices, 0 = embeddings (default: all)")
        q.add_argument("--pooling", choices=["last", "mean"], default="last")
        q.add_argument("--reporters", nargs="*", default=list(DEFAULTS["reporters"]),
                       choices=list(probes.REPORTERS))
        q.add_argument("--n-tries", type=int, default=10, help="CCS restarts")
        q.add_argument("--epochs", type=int, default=1000, help="CCS AdamW steps")
        q.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs")
        q.add_argument("--batch-size", type=int, default=32)
        q.add_argument("--out", default=None, help="output root (default NBTOOLKIT_CCS_DIR or build/ccs)")
        q.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
        q.add_argument("--quiet", action="store_true", help="no progress bars")

    q = sub.add_parser("elicit", help="fit reporters on every layer of MODEL for DATASET")
    q.add_argument("model")
    q.add_argument("dataset")
    common(q)
    q = sub.add_parser("eval", help="evaluate the reporters of RUN on DATASET (transfer)")
    q.add_argument("run")
    q.add_argument("dataset")
    q.add_argument("--n", type=int, default=None)
    q.add_argument("--templates", type=int, nargs="*", default=None)
    q.add_argument("--no-cache", action="store_true")
    q.add_argument("--quiet", action="store_true")
    q = sub.add_parser("sweep", help="elicit every model × dataset, then transfer between datasets")
    q.add_argument("--models", nargs="+", required=True)
    q.add_argument("--datasets", nargs="+", required=True)
    q.add_argument("--no-transfer", action="store_true")
    common(q)
    q = sub.add_parser("plot", help="AUROC vs layer (and the transfer heatmap of a sweep)")
    q.add_argument("run", nargs="?", default=None, help="a run or sweep folder (default: the latest)")
    q.add_argument("--out", default=None)
    return p


def _elicit_args(args) -> dict:
    return dict(templates=args.templates, n=args.n, train_frac=args.train_frac, seed=args.seed,
                layers=args.layers, pooling=args.pooling, reporters=tuple(args.reporters),
                options={"ccs": dict(n_tries=args.n_tries, epochs=args.epochs)},
                n_boot=args.n_boot, cache=not args.no_cache, progress=not args.quiet,
                batch_size=args.batch_size)


def _run_elicit(lm, dataset, args, root: Path) -> Path:
    result = elicit(lm, dataset, **_elicit_args(args))
    folder = write_run(result, root / f"{_slug(lm.name)}__{_slug(dataset)}")
    best = per_layer(result.table).sort_values("auroc", ascending=False).groupby("reporter").head(1)
    print(f"{folder}: extract {result.seconds['extract']:.1f}s, fit {result.seconds['fit']:.1f}s")
    print(best.to_string(index=False))
    return folder


def _run_eval(lm, run: Path, dataset: str, args) -> Path:
    table = transfer_eval(lm, run, dataset, n=getattr(args, "n", None), templates=args.templates,
                          progress=not args.quiet, cache=not args.no_cache)
    folder = run / "transfer" / _slug(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "eval.csv", index=False)
    (folder / "config.json").write_text(json.dumps({"run": str(run), "dataset": dataset,
                                                    "n": getattr(args, "n", None)}, indent=1))
    print(f"{folder / 'eval.csv'}: {len(table)} rows")
    return folder


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .models import load_model

    if args.command == "elicit":
        _run_elicit(load_model(args.model), args.dataset, args, output_root(args.out))
    elif args.command == "eval":
        run = Path(args.run)
        if not (run / "config.json").exists():
            raise SystemExit(f"{run} is not a run folder (no config.json); make one with `elicit`")
        config = json.loads((run / "config.json").read_text())
        _run_eval(load_model(config["model"]), run, args.dataset, args)
    elif args.command == "sweep":
        root = output_root(args.out) / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.json").write_text(json.dumps(dict(vars(args)), indent=1, default=str))
        rows = []
        for model in args.models:
            lm = load_model(model)
            runs = {d: _run_elicit(lm, d, args, root) for d in args.datasets}
            for a, run in runs.items():
                for b in args.datasets if not args.no_transfer else []:
                    if a == b:
                        t = pd.read_csv(run / "eval.csv")
                    else:
                        t = pd.read_csv(_run_eval(lm, run, b, args) / "eval.csv")
                    rows.append(per_layer(t).assign(model=model, train=a, eval=b))
        if rows:
            pd.concat(rows, ignore_index=True).to_csv(root / "transfer.csv", index=False)
        print(root)
    elif args.command == "plot":
        print("\n".join(str(p) for p in plot_run(args.run, args.out)))
    return 0


def plot_run(run: str | None = None, out: str | None = None) -> list[Path]:
    """Write AUROC-vs-layer figures for a run (or every run of a sweep) and a sweep's transfer
    heatmap (best mean layer per reporter); returns the files written."""
    from .plots.probes import layer_curve, transfer_heatmap

    if run is None:
        candidates = sorted(output_root(out).glob("**/config.json"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise SystemExit(f"no runs under {output_root(out)}; run `elicit` or `sweep` first")
        folder = candidates[-1].parent
    else:
        folder = Path(run)
    written = []
    run_dirs = [p.parent for p in folder.glob("*/eval.csv")] if (folder / "transfer.csv").exists() \
        or not (folder / "eval.csv").exists() else [folder]
    for rd in run_dirs:
        frame = pd.concat([pd.read_csv(rd / "eval.csv"), pd.read_csv(rd / "lm_eval.csv")])
        fig = layer_curve(frame, metric="auroc", title=rd.name)
        written.append(rd / "auroc_vs_layer.png")
        fig.savefig(written[-1], dpi=120, bbox_inches="tight")
    if (folder / "transfer.csv").exists():
        t = pd.read_csv(folder / "transfer.csv")
        for (model, reporter), part in t.groupby(["model", "reporter"]):
            layer = int(part.groupby("layer")["auroc"].mean().idxmax())
            m = part[part.layer == layer].pivot_table(index="train", columns="eval", values="auroc")
            fig = transfer_heatmap(m, title=f"{model} {reporter} layer {layer}: AUROC")
            written.append(folder / f"transfer_{_slug(model)}_{reporter}.png")
            fig.savefig(written[-1], dpi=120, bbox_inches="tight")
    return written


if __name__ == "__main__":
    sys.exit(main())
