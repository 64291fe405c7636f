"""The CCS command line (elk-style): elicit, eval (transfer), sweep and plot.

    python -m nbtoolkit.cli.ccs elicit smollm2-135m-instruct capitals --n 200 --templates 0 1
    python -m nbtoolkit.cli.ccs elicit smollm2-135m-instruct capitals --ensemble   # one reporter, all templates
    python -m nbtoolkit.cli.ccs elicit smollm2-135m-instruct capitals+animals      # pooled training
    python -m nbtoolkit.cli.ccs elicit smollm2-135m-instruct capitals --misleading-prefix  # Burns Table 3
    python -m nbtoolkit.cli.ccs eval build/ccs/smollm2-135m-instruct__capitals animals
    python -m nbtoolkit.cli.ccs sweep --models smollm2-135m-instruct --datasets capitals animals --add-pooled
    python -m nbtoolkit.cli.ccs plot [RUN]

Reporters: ccs, crc, vinc (elk's eigen reporter), lr. ``--ensemble`` fits one reporter per layer on
all templates and reports elk's ensembling modes (none / partial / full) with calibrated accuracy
and ECE; a dataset ``a+b`` pools the datasets into one training set (elk's ``--add_pooled``).

Run folders: :mod:`nbtoolkit.ccs.runs`, under ``--out``, else ``NBTOOLKIT_CCS_DIR``, else
``build/ccs`` (:func:`output_root`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from ..ccs.elicit import DEFAULTS, elicit, per_layer
from ..ccs.runs import check_run, transfer_eval, write_run
from ..core.files import build_dir, slug, write_json, write_text
from ..core.loading import load_model
from ..data.contrast import HF_DATASETS, MISLEADING_PREFIX, load_contrast
from ..probes import REPORTERS
from ..viz.probes import layer_curve, transfer_heatmap


def output_root(out: str | None = None) -> Path:
    """Where runs go: ``out``, else ``NBTOOLKIT_CCS_DIR``, else ``build/ccs``."""
    if out:
        return Path(out)
    if os.environ.get("NBTOOLKIT_CCS_DIR"):
        return Path(os.environ["NBTOOLKIT_CCS_DIR"])
    return build_dir() / "ccs"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nbtoolkit.cli.ccs",
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
                       choices=list(REPORTERS))
        q.add_argument("--n-tries", type=int, default=10, help="CCS restarts")
        q.add_argument("--epochs", type=int, default=1000, help="CCS AdamW steps")
        q.add_argument("--var-weight", type=float, default=0.0, help="VINC variance weight")
        q.add_argument("--neg-cov-weight", type=float, default=0.5,
                       help="VINC negative-covariance weight (1 - it weighs invariance)")
        q.add_argument("--ensemble", action="store_true",
                       help="one reporter per layer for all templates; rows per ensembling mode")
        prefix = q.add_mutually_exclusive_group()
        prefix.add_argument("--misleading-prefix", action="store_true",
                            help="put a prefix asking for wrong answers before every prompt "
                                 "(Burns et al. Table 3)")
        prefix.add_argument("--prefix", default=None, help="put this text before every prompt")
        q.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs")
        q.add_argument("--batch-size", type=int, default=32)
        q.add_argument("--out", default=None, help="output root (default NBTOOLKIT_CCS_DIR or build/ccs)")
        q.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
        q.add_argument("--quiet", action="store_true", help="no progress bars")

    q = sub.add_parser("elicit", help="fit reporters on every layer of MODEL for DATASET")
    q.add_argument("model")
    q.add_argument("dataset", help="a dataset, or several joined by + (pooled training)")
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
    q.add_argument("--add-pooled", action="store_true",
                   help="also train on all the datasets pooled (evaluated on each)")
    common(q)
    q = sub.add_parser("plot", help="AUROC vs layer (and the transfer heatmap of a sweep)")
    q.add_argument("run", nargs="?", default=None, help="a run or sweep folder (default: the latest)")
    q.add_argument("--out", default=None)
    return p


def _elicit_args(args) -> dict:
    return dict(templates=args.templates, n=args.n, train_frac=args.train_frac, seed=args.seed,
                layers=args.layers, pooling=args.pooling, reporters=tuple(args.reporters),
                options={"ccs": dict(n_tries=args.n_tries, epochs=args.epochs),
                         "vinc": dict(var_weight=args.var_weight,
                                      neg_cov_weight=args.neg_cov_weight)},
                n_boot=args.n_boot, ensemble=args.ensemble,
                prefix=MISLEADING_PREFIX if args.misleading_prefix else args.prefix,
                cache=not args.no_cache, progress=not args.quiet, batch_size=args.batch_size)


# option -> (valid when, what is valid): checked before any model loads
_BOUNDS = {"n": (lambda v: v is None or v >= 2, "at least 2"),  # None: eval's default
           "train_frac": (lambda v: 0 < v < 1, "between 0 and 1"),
           "n_boot": (lambda v: v >= 0, "0 or more"),
           "batch_size": (lambda v: v >= 1, "at least 1"),
           "n_tries": (lambda v: v >= 1, "at least 1"),
           "epochs": (lambda v: v >= 1, "at least 1"),
           "var_weight": (lambda v: v >= 0, "0 or more"),
           "neg_cov_weight": (lambda v: 0 <= v <= 1, "between 0 and 1")}


def check_options(args, datasets: list[str]) -> None:
    """``SystemExit`` naming the first bad option, before a model loads or a state is extracted:
    numeric bounds, and every dataset (``a+b``: each part) with its templates and ``--n``."""
    for name, (valid, what) in _BOUNDS.items():
        value = getattr(args, name, None)
        if hasattr(args, name) and not valid(value):
            raise SystemExit(f"--{name.replace('_', '-')} must be {what}, got {value}")
    for dataset in datasets:
        for part in dataset.split("+"):
            if part in HF_DATASETS:
                continue  # needs the hub: checked when it is loaded
            try:  # a local dataset loads in milliseconds
                load_contrast(part, args.templates, n=args.n, seed=0)
            except (ValueError, TypeError) as error:
                raise SystemExit(f"dataset {dataset!r}: {error}") from None


def _run_elicit(lm, dataset, args, root: Path) -> Path:
    result = elicit(lm, dataset, **_elicit_args(args))
    folder = write_run(result, root / f"{slug(lm.name)}__{slug(dataset)}")
    best = per_layer(result.table).sort_values("auroc", ascending=False).groupby("reporter").head(1)
    print(f"{folder}: extract {result.seconds['extract']:.1f}s, fit {result.seconds['fit']:.1f}s")
    print(best.to_string(index=False))
    return folder


def _run_eval(lm, run: Path, dataset: str, args) -> Path:
    table = transfer_eval(lm, run, dataset, n=getattr(args, "n", None), templates=args.templates,
                          progress=not args.quiet, cache=not args.no_cache)
    folder = run / "transfer" / slug(dataset)
    write_text(folder / "eval.csv", table.to_csv(index=False))
    write_json(folder / "config.json", {"run": str(run), "dataset": dataset,
                                        "n": getattr(args, "n", None)})
    print(f"{folder / 'eval.csv'}: {len(table)} rows")
    return folder


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "elicit":
        check_options(args, [args.dataset])
        _run_elicit(load_model(args.model), args.dataset, args, output_root(args.out))
    elif args.command == "eval":
        check_options(args, [args.dataset])
        try:
            run = check_run(Path(args.run))
        except ValueError as error:
            raise SystemExit(str(error)) from None
        config = json.loads((run / "config.json").read_text())
        _run_eval(load_model(config["model"]), run, args.dataset, args)
    elif args.command == "sweep":
        check_options(args, args.datasets)
        root = output_root(args.out) / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
        root.mkdir(parents=True, exist_ok=True)
        write_json(root / "config.json", dict(vars(args)))
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
            if args.add_pooled:  # evaluated on each dataset's test split inside the run
                pooled = "+".join(args.datasets)
                t = pd.read_csv(_run_elicit(lm, pooled, args, root) / "eval.csv")
                rows += [per_layer(part).assign(model=model, train=pooled, eval=b)
                         for b, part in t.groupby("dataset")]
        if rows:
            pd.concat(rows, ignore_index=True).to_csv(root / "transfer.csv", index=False)
        print(root)
    elif args.command == "plot":
        print("\n".join(str(p) for p in plot_run(args.run, args.out)))
    return 0


def _partial(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-template ("partial") rows: one curve per reporter, whatever the ensembling."""
    return frame[frame.ensembling.isna() | (frame.ensembling == "partial")]


def plot_run(run: str | None = None, out: str | None = None) -> list[Path]:
    """Write AUROC-vs-layer figures for a run (or every run of a sweep) and a sweep's transfer
    heatmap (best mean layer per reporter); returns the files written."""
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
        frame = _partial(pd.concat([pd.read_csv(rd / "eval.csv"), pd.read_csv(rd / "lm_eval.csv")]))
        fig = layer_curve(frame, metric="auroc", title=rd.name)
        written.append(rd / "auroc_vs_layer.png")
        fig.savefig(written[-1], dpi=120, bbox_inches="tight")
    if (folder / "transfer.csv").exists():
        t = _partial(pd.read_csv(folder / "transfer.csv"))
        for (model, reporter), part in t.groupby(["model", "reporter"]):
            layer = int(part.groupby("layer")["auroc"].mean().idxmax())
            m = part[part.layer == layer].pivot_table(index="train", columns="eval", values="auroc")
            fig = transfer_heatmap(m, title=f"{model} {reporter} layer {layer}: AUROC")
            written.append(folder / f"transfer_{slug(model)}_{reporter}.png")
            fig.savefig(written[-1], dpi=120, bbox_inches="tight")
    return written


if __name__ == "__main__":
    sys.exit(main())
