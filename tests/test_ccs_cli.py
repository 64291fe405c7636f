"""The elicitation pipeline and its command line, on a tiny model."""

import json

import numpy as np
import pandas as pd
import pytest

import nbtoolkit
from nbtoolkit import ccs
from nbtoolkit.cli.ccs import main, plot_run
from nbtoolkit.tutorials.papers import BURNS


@pytest.fixture(scope="module")
def tiny():
    # the misleading prefix makes prompts longer than tiny models' default context of 256
    return nbtoolkit.tiny_model("llama", n_layers=2, d_model=32, context=512)


@pytest.fixture()
def cli(tiny, monkeypatch, tmp_path):
    import nbtoolkit.cli.ccs
    monkeypatch.setattr(nbtoolkit.cli.ccs, "load_model", lambda name: tiny)
    monkeypatch.setenv("NBTOOLKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


FAST = ["--n", "16", "--templates", "0", "--n-tries", "2", "--epochs", "20", "--n-boot", "20",
        "--quiet"]


def test_elicit_writes_a_run(cli, tiny):
    assert main(["elicit", "tiny", "capitals", "--out", str(cli), *FAST]) == 0
    run = cli / f"{tiny.name}__capitals"
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "capitals" and config["layers"] == [-1, 0, 1]
    assert "training labels" in config["sign"]
    table = pd.read_csv(run / "eval.csv")
    assert set(table.reporter) == {"ccs", "crc", "vinc", "lr"} and len(table) == 12
    assert set(ccs.EVAL_COLUMNS) <= set(table.columns) and set(table.ensembling) == {"partial"}
    lm_table = pd.read_csv(run / "lm_eval.csv")
    assert list(lm_table.reporter) == ["zero_shot", "zero_shot_cal"]
    reps = ccs.load_run_reporters(run)
    assert set(reps) == {(0, "ccs"), (0, "crc"), (0, "vinc"), (0, "lr")}
    assert list(reps[(0, "ccs")]) == [-1, 0, 1]


def test_saved_reporters_reproduce_the_table(cli, tiny, tmp_path):
    result = ccs.elicit(tiny, "animals", templates=[0], n=16, n_boot=0, progress=False,
                        options={"ccs": dict(n_tries=2, epochs=20)}, cache=False)
    run = ccs.write_run(result, tmp_path / "run")
    back = ccs.load_run_reporters(run)
    train, test = result.splits[0]
    for kind in ("ccs", "crc", "vinc", "lr"):
        rep = back[(0, kind)][1]
        acc = rep.score(*test.at(1), test.labels)
        row = result.table[(result.table.reporter == kind) & (result.table.layer == 1)]
        assert acc == pytest.approx(float(row.acc.iloc[0]))


def test_eval_transfer_and_plot(cli, tiny):
    main(["elicit", "tiny", "capitals", "--out", str(cli), *FAST])
    run = cli / f"{tiny.name}__capitals"
    assert main(["eval", str(run), "animals", "--n", "16", "--templates", "1", "--quiet"]) == 0
    table = pd.read_csv(run / "transfer" / "animals" / "eval.csv")
    assert set(table.dataset) == {"animals"} and set(table.source_dataset) == {"capitals"}
    assert len(table) == 12
    main(["plot", str(run)])
    assert (run / "auroc_vs_layer.png").stat().st_size > 1000


def test_sweep(cli):
    assert main(["sweep", "--models", "tiny", "--datasets", "capitals", "arithmetic",
                     "--out", str(cli), *FAST]) == 0
    (sweep,) = cli.glob("sweep-*")
    transfer = pd.read_csv(sweep / "transfer.csv")
    assert {(a, b) for a, b in zip(transfer["train"], transfer["eval"])} == {
        (a, b) for a in ("capitals", "arithmetic") for b in ("capitals", "arithmetic")}
    written = plot_run(str(sweep))
    assert any(p.name.startswith("transfer_") for p in written)


def test_ensemble_pooled_and_misleading_prefix(cli, tiny):
    fast = ["--n", "16", "--n-tries", "2", "--epochs", "20", "--n-boot", "20", "--quiet",
            "--templates", "0", "1", "--reporters", "crc", "vinc"]
    main(["elicit", "tiny", "capitals", "--ensemble", "--out", str(cli), *fast])
    run = cli / f"{tiny.name}__capitals"
    table = pd.read_csv(run / "eval.csv")
    assert set(table.ensembling) == {"none", "partial", "full"} and table.template.isna().all()
    assert len(table) == 2 * 3 * 3 and {"cal_acc", "ece", "cal_thresh"} <= set(table.columns)
    assert set(pd.read_csv(run / "lm_eval.csv").ensembling) == {"none", "partial", "full"}
    assert set(ccs.load_run_reporters(run)) == {("all", "crc"), ("all", "vinc")}
    # transfer of a reporter of all templates: scored on the target's two templates
    main(["eval", str(run), "animals", "--n", "16", "--templates", "0", "1", "--quiet"])
    moved = pd.read_csv(run / "transfer" / "animals" / "eval.csv")
    assert set(moved.source_template) == {"all"} and set(moved.ensembling) == {"none", "partial", "full"}

    main(["elicit", "tiny", "capitals+animals", "--out", str(cli), *fast])
    pooled = pd.read_csv(cli / f"{tiny.name}__capitals_animals" / "eval.csv")
    assert set(pooled.dataset) == {"capitals", "animals"}  # one reporter, scored on each test split
    config = json.loads((cli / f"{tiny.name}__capitals_animals" / "config.json").read_text())
    assert config["dataset"] == "capitals+animals" and config["ensemble"]
    main(["eval", str(cli / f"{tiny.name}__capitals_animals"), "arithmetic", "--n", "16",
          "--templates", "0", "1", "--quiet"])
    moved = pd.read_csv(cli / f"{tiny.name}__capitals_animals" / "transfer" / "arithmetic" / "eval.csv")
    assert set(moved.source_dataset) == {"capitals+animals"} and moved.acc.notna().all()

    main(["elicit", "tiny", "capitals", "--misleading-prefix", "--out", str(cli / "prefixed"), *fast])
    config = json.loads((cli / "prefixed" / f"{tiny.name}__capitals" / "config.json").read_text())
    assert config["prefix"].startswith("Answer every question below incorrectly")


def test_sweep_add_pooled(cli):
    main(["sweep", "--models", "tiny", "--datasets", "capitals", "arithmetic", "--add-pooled",
          "--reporters", "crc", "--out", str(cli), *FAST])
    (sweep,) = cli.glob("sweep-*")
    transfer = pd.read_csv(sweep / "transfer.csv")
    pooled = transfer[transfer["train"] == "capitals+arithmetic"]
    assert set(pooled["eval"]) == {"capitals", "arithmetic"}


def test_eval_of_a_non_run_fails_clearly(cli, tmp_path):
    with pytest.raises(SystemExit, match="not a run folder"):
        main(["eval", str(tmp_path), "animals"])
    with pytest.raises(SystemExit):
        main(["elicit"])  # argparse: missing arguments
    with pytest.raises(SystemExit, match="unknown contrast dataset"):  # before loading a model
        main(["elicit", "tiny", "no-such-set", "--out", str(cli), *FAST])


def test_table1_and_layer_selection_by_hand():
    rows = []
    for ds, accs in {"a": (0.6, 0.8, 0.9), "b": (0.7, 0.6, 0.8)}.items():
        for t in (0, 1):
            rows += [dict(model="m", dataset=ds, template=t, layer=np.nan, reporter="zero_shot", acc=accs[0]),
                     dict(model="m", dataset=ds, template=t, layer=1, reporter="ccs", acc=accs[1],
                          train_acc=0.9),
                     dict(model="m", dataset=ds, template=t, layer=2, reporter="ccs", acc=accs[2],
                          train_acc=0.7)]
    frame = pd.DataFrame(rows)
    assert ccs.select_layer(frame) == 1
    t = ccs.table1(frame, {"m": 1}, paper_means=BURNS["means"])
    ccs_row = t[t.method == "CCS"].iloc[0]
    assert ccs_row["a"] == 80.0 and ccs_row["b"] == 60.0 and ccs_row["mean"] == 70.0
    assert ccs_row["paper_mean"] == 71.2 and ccs_row["layer"] == 1
    zs = t[t.method == "0-shot"].iloc[0]
    assert zs["mean"] == 65.0 and zs["paper_mean"] == 62.8


def test_plots_return_figures():
    import matplotlib
    matplotlib.use("Agg")
    from nbtoolkit.viz.probes import layer_curve, table1_bars, transfer_heatmap

    rows = [dict(dataset="a", template=0, layer=l, reporter=k, auroc=0.5 + 0.1 * l,
                 auroc_lower=0.4, auroc_upper=0.9) for l in range(3) for k in ("ccs", "lr")]
    rows.append(dict(dataset="a", template=0, layer=np.nan, reporter="zero_shot", auroc=0.6))
    fig = layer_curve(pd.DataFrame(rows))
    ax = fig.axes[0]
    assert len(ax.get_lines()) >= 3  # two reporters, the zero-shot line, chance
    with pytest.raises(ValueError, match="no rows for dataset"):
        layer_curve(pd.DataFrame(rows), dataset="b")
    m = pd.DataFrame([[0.9, 0.6], [0.7, 0.8]], index=["a", "b"], columns=["a", "b"])
    assert len(transfer_heatmap(m).axes[0].texts) == 4
    t = pd.DataFrame([dict(model="m", method="CCS", mean=60.0, paper_mean=71.2),
                      dict(model="m", method="LR (ceiling)", mean=80.0, paper_mean=83.7)])
    assert len(table1_bars(t).axes[0].patches) == 4
