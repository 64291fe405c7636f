"""Result bands (nbtoolkit.tutorials.bands): the rule, the check, the notebooks that use it, and a
notebook whose number is pushed out of its band failing under the runner."""

import ast
import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from nbtoolkit.cli.bands import RUNS
from nbtoolkit.tutorials import use_preset
from nbtoolkit.tutorials.bands import (BANDS_FILE, HEADLINES, OutOfBand, band_of, check_bands,
                                       load_bands)
from nbtoolkit.tutorials.presets import NOTEBOOKS
from nbtoolkit.tutorials.runner import run_notebooks, write_index

ROOT = Path(__file__).resolve().parents[1]
DAS = "03_das"
DAS_VALUES = {"task_accuracy": 0.99, "das_iia_wx": 0.96, "das_iia_yz": 0.97, "neuron_iia_best": 0.8,
              "sum_iia": 0.98}


def cpu_preset(notebook=DAS, **changed):
    return use_preset(notebook, "cpu", {**NOTEBOOKS[notebook].cpu, **changed})


def bands_file(tmp_path, values=DAS_VALUES, width=0.01):
    bands = {DAS: {k: {"low": v - width, "high": v + width, "runs": [v, v]} for k, v in values.items()}}
    path = tmp_path / "bands.json"
    path.write_text(json.dumps(bands))
    return path


def test_a_band_is_mean_plus_minus_four_sd_widened_to_the_runs():
    runs = [0.90, 0.92, 0.94]
    sd = np.std(runs, ddof=1)
    assert band_of(runs) == pytest.approx((0.92 - 4 * sd, 0.92 + 4 * sd))
    low, high = band_of([5.0, 5.0])  # never moved: ± 0.1% of the value (+1e-6)
    assert (low, high) == pytest.approx((5.0 - 0.005 - 1e-6, 5.0 + 0.005 + 1e-6))
    for bad in ([0.9], [0.9, float("nan")]):
        with pytest.raises(ValueError, match="at least two finite runs"):
            band_of(bad)


def test_numbers_inside_hold_and_outside_fail_naming_the_number_band_and_cause(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTOOLKIT_BANDS", str(bands_file(tmp_path)))
    check = check_bands(cpu_preset(), DAS_VALUES).verify()
    assert check.applicable and set(check.to_frame().status) == {"held"}
    moved = {**DAS_VALUES, "das_iia_yz": 0.5, "sum_iia": float("nan")}
    check = check_bands(cpu_preset(SEED=3), moved)  # another seed is still the measured preset
    assert list(check.to_frame().status) == ["held", "held", "outside", "held", "outside"]
    with pytest.raises(OutOfBand, match=r"das_iia_yz = 0.5 is outside its band \[0.96, 0.98\] "
                                        r"\(DAS IIA of YZ\); what usually moves it: DAS's learning rate"):
        check.verify()
    assert check.to_dict()["rows"][2] == dict(number="das_iia_yz", value=0.5, low=0.96, high=0.98,
                                              status="outside", what="DAS IIA of YZ")


def test_a_number_without_a_measured_band_fails_naming_make_bands(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTOOLKIT_BANDS", str(bands_file(tmp_path, {"task_accuracy": 0.99})))
    check = check_bands(cpu_preset(), DAS_VALUES)
    assert list(check.to_frame().status) == ["held"] + ["no band measured"] * 4
    with pytest.raises(OutOfBand, match=r"das_iia_wx = 0.96 has no measured band \(DAS IIA of WX\): "
                                        r"make bands ONLY=03 measures it"):
        check.verify()


def test_other_sizes_models_presets_and_recording_are_not_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTOOLKIT_BANDS", str(bands_file(tmp_path, width=0.0)))
    far = {k: -1.0 for k in DAS_VALUES}
    check = check_bands(cpu_preset(N_TRAIN=10), far).verify()
    assert not check.applicable and "N_TRAIN differ from the CPU preset" in check.reason
    assert set(check.to_frame().status) == {"not applicable"}
    paper = use_preset(DAS, "paper", dict(NOTEBOOKS[DAS].cpu, PRESET="paper"), show=False)
    assert "CPU preset only" in check_bands(paper, far).verify().reason
    monkeypatch.setenv("NBTOOLKIT_BANDS", "record")
    assert set(check_bands(cpu_preset(), far).verify().to_frame().status) == {"recorded"}


def test_bad_checks_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"03_das checks .* got \['iia'\]"):
        check_bands(cpu_preset(), {"iia": 1.0})
    (tmp_path / "broken.json").write_text("{")
    monkeypatch.setenv("NBTOOLKIT_BANDS", str(tmp_path / "broken.json"))
    with pytest.raises(ValueError, match="cannot read the result bands .*broken.json"):
        check_bands(cpu_preset(), DAS_VALUES)


def check_call(path: Path) -> tuple[set, str]:
    """The headline names a notebook's check_bands call passes, and its code after that call."""
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    clean = "\n".join(line[:len(line) - len(line.lstrip())] + "pass"  # IPython magics
                      if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    for node in ast.walk(ast.parse(clean)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check_bands":
            keys = {k.value for k in node.args[1].keys}
            return keys, clean[clean.index("check_bands("):]
    return set(), ""


@pytest.mark.parametrize("notebook", sorted(HEADLINES))
def test_every_reproduction_checks_its_headline_numbers_and_saves_the_check(notebook):
    keys, after = check_call(ROOT / "notebooks" / f"{notebook}.ipynb")
    assert keys == set(HEADLINES[notebook])
    saved = after.index(f'save_results("{notebook}", table, bands=bands')
    assert after.index("bands.verify()") > saved  # saved first, so a failing run keeps its numbers
    measured = load_bands()[notebook]
    assert set(measured) == set(HEADLINES[notebook])
    for number, band in measured.items():
        assert (band["low"], band["high"]) == pytest.approx(band_of(band["runs"])), number
        assert len(band["runs"]) == len(RUNS)


def test_every_reproduction_notebook_has_headlines():
    reproductions = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")} - {"00_getting_started"}
    assert set(HEADLINES) == reproductions == set(load_bands(BANDS_FILE))


def pushed_notebook(folder: Path, iia_yz: float) -> Path:
    """A notebook checking 03's headline numbers as 03 does, with DAS IIA of YZ = ``iia_yz``."""
    values = {**DAS_VALUES, "das_iia_yz": iia_yz}
    params = "\n".join(f"{k} = {v!r}" for k, v in {"PRESET": "cpu", **NOTEBOOKS[DAS].cpu}.items())
    cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(
                 "import pandas as pd\n"
                 "from nbtoolkit.tutorials import check_bands, save_results, use_preset\n"
                 f"preset = use_preset({DAS!r}, PRESET, globals())\n"
                 f"bands = check_bands(preset, {values!r})\n"
                 f"save_results({DAS!r}, pd.DataFrame({{'x': [1]}}), bands=bands)\n"
                 "bands.verify()")]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path = folder / f"{DAS}.ipynb"
    folder.mkdir(exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), path)
    return path


def test_a_number_pushed_out_of_its_band_fails_the_notebook_under_the_runner(tmp_path):
    runs = {}
    for name, iia_yz in (("inside", 0.975), ("outside", 0.5)):
        env = {"NBTOOLKIT_BANDS": str(bands_file(tmp_path)),
               "NBTOOLKIT_RESULTS": str(tmp_path / name / "results")}
        runs[name], = run_notebooks([pushed_notebook(tmp_path / name, iia_yz)], tmp_path / name / "run",
                                    env=env, report=lambda line: None)
    assert runs["inside"].ok and not runs["outside"].ok
    assert "OutOfBand" in runs["outside"].error
    assert "das_iia_yz = 0.5 is outside its band" in runs["outside"].error
    saved = json.loads((tmp_path / "outside" / "results" / f"{DAS}.json").read_text())["bands"]
    statuses = {row["number"]: row["status"] for row in saved["rows"]}
    assert statuses["das_iia_yz"] == "outside"  # the failing run still saved its check
    page = write_index(tmp_path / "outside", [runs["outside"]]).read_text()  # its build/results
    assert "FAIL" in page and "4 held, 1 outside" in page


def test_notebooks_run_side_by_side_on_a_core_each_and_report_in_order(tmp_path):
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    paths = []
    for name, code in (("a_threads", "import os\nprint(os.environ['OMP_NUM_THREADS'])"),
                       ("b_fails", "raise ValueError('N_FACTS must be positive, got -1')")):
        paths.append(tmp_path / f"{name}.ipynb")
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)], metadata=kernel),
                       paths[-1])
    lines = []
    runs = run_notebooks(paths, tmp_path / "run", jobs=2, env={"OMP_NUM_THREADS": "1"}, report=lines.append)
    assert [(r.name, r.ok) for r in runs] == [("a_threads.ipynb", True), ("b_fails.ipynb", False)]
    assert "ValueError: N_FACTS must be positive, got -1" in runs[1].error
    assert len(lines) == 2
    executed = nbformat.read(tmp_path / "run" / "a_threads.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "1\n"
    assert (tmp_path / "run" / "b_fails.html").exists()  # a failed notebook keeps its executed copy
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        run_notebooks(paths, tmp_path / "run", jobs=0)
