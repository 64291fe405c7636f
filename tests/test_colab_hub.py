"""The path users take, proven offline: every tutorial notebook runs from the installed wheel
(copied out of the repository, into a fresh virtualenv), with a stand-in ``google.colab`` module
so that its Colab branch installs nbtoolkit, from that wheel (``NBTOOLKIT_SOURCE``); and with
``MODEL`` set to tiny hub models that a stand-in hub served into the Hugging Face cache beforehand,
so ``load_model`` and ``datasets.load_dataset`` resolve them from the cache as after a download
(``HF_HUB_OFFLINE=1`` during the run), at the smallest sizes (papermill parameters).

`make test` runs this as its own step (``-m colab_hub``); a plain ``pytest tests`` skips it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from fake_hub import FakeHub
from hub_repos import rome_known_1000, write_dataset_repos, write_file, write_model_repos
from installed import ROOT, build_wheel, clean_env, fresh_python, site_packages
from nbtoolkit.data import load_facts
from nbtoolkit.data.facts import rome_known_1000_path
from nbtoolkit.tutorials.bands import HEADLINES
from nbtoolkit.tutorials.runner import longest_first

pytestmark = pytest.mark.colab_hub

TINY, CHAT = "nbtoolkit-test/tiny-llama", "nbtoolkit-test/tiny-llama-chat"  # base, chat template
KERNEL = "nbtoolkit-colab"
FACTS = load_facts()[:16]  # the tiny models are taught these; also the stand-in known_1000.json

# the smallest sizes that still run every cell
PARAMETERS = {
    "00_getting_started": dict(MODEL=CHAT),
    "02_causal_tracing": dict(MODEL=TINY, N_FACTS=3, SAMPLES=3, N_SEVER=2, USE_ROME_KNOWNS=True,
                              FACT_SUBJECT=FACTS[0]["subject"]),
    "03_das": dict(N_TRAIN=2_000, N_COUNTERFACTUAL=1_000, N_TEST=200, DAS_EPOCHS=1,
                   N_NEURON_SETS=2, N_SUM_TRAIN=1_000, N_SUM_PAIRS=500),
    "04_boundless_das": dict(MODEL=CHAT, N_PAIRS=64, N_DEV=32, N_TEST=64, DAS_EPOCHS=1, LAYERS=[1],
                             POSITIONS=[-2, -1]),
    "05_ccs": dict(MODEL=TINY, MODELS=[TINY], DATASETS=["capitals", "imdb"], N_EXAMPLES=16,
                   CCS_TRIES=1, CCS_EPOCHS=10, N_BOOT=10, ELK_DATASETS=["capitals", "imdb"]),
    "06_instruction_shift": dict(MODEL=CHAT, BASE=TINY, N_PROMPTS=4, MAX_NEW_TOKENS=4,
                                 ATTR_TOKENS=2, N_DIMS=4, TOP_K=5, N_COMPONENTS=2,
                                 ANNOTATION_SEEDS=[6]),
    "07_selfie": dict(MODEL=CHAT, LAYER_STEP=1, MAX_NEW_TOKENS=3, N_REVIEWS=4, STEER_LAYER=1),
    "08_selfie_control": dict(MODEL=CHAT, N_FACTS=8, USE_ROME_KNOWNS=True, INSERT_LAYER=1,
                              MAX_NEW_TOKENS=3, LAYER=1, STEPS=2, RC_LAYER=1, RC_STEPS=2,
                              JUDGE_MODEL=CHAT),
    "09_logit_lens": dict(MODEL=TINY, LAYER_STEP=1, TUNED_STEPS=2, TOKENS_PER_STEP=16, N_KL_TEXTS=4,
                          SEQ_LEN=8, BATCH=2, TOP_HEADS=2, CONTROLS=1),
    # "swap": the tiny tokenizer splits names into pieces, and only swapped names keep a
    # corrupted prompt as long as its base prompt
    "10_ioi_circuit": dict(MODEL=TINY, N_PAIRS=2, CORRUPTION="swap", N_MOVERS=1, N_INHIBITION=1,
                           TOP_K=2, SWEEP_FROM=0.0, SECOND_MODEL=None),
    "11_attribution_patching": dict(MODEL=TINY, N_PAIRS=2, CORRUPTION="swap", TOP_K=2),
}

DOWNLOAD = f"""
from nbtoolkit import load_model
from nbtoolkit.data.contrast import load_contrast
for name in {[TINY, CHAT]!r}:
    load_model(name)
load_contrast("imdb", n=8)
"""

RUN = """
import importlib.util, json, resource, sys, time
from pathlib import Path
import papermill

# nbtoolkit is not installed in this process: its message-slicing fix is loaded from its file
spec = importlib.util.spec_from_file_location("execute", sys.argv[4])
execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute)
execute.read_messages_in_slices()

def cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernels, pip
    return usage.ru_utime + usage.ru_stime

folder, kernel = Path(sys.argv[1]), sys.argv[2]
report = {}
for name, parameters in json.loads(Path(sys.argv[3]).read_text()).items():
    start, start_cpu, error = time.perf_counter(), cpu(), None
    try:
        papermill.execute_notebook(folder / f"{name}.ipynb", folder / f"{name}.run.ipynb",
                                   parameters=parameters, kernel_name=kernel, cwd=str(folder),
                                   progress_bar=False, execution_timeout=600)
    except Exception as exc:
        error = str(exc)[-3000:]
    report[name] = dict(seconds=round(time.perf_counter() - start, 1),
                        cpu_seconds=round(cpu() - start_cpu, 1), error=error)
print(json.dumps(report))
"""

COLAB = '"""A stand-in for Colab\'s google.colab: notebooks detect Colab by its presence."""\n'


def hub_caches(root: Path) -> Path:
    """Serve the tiny models and imdb on a stand-in hub and download them, as a user's first
    run would, into ``root/hf`` (the Hugging Face cache); returns it."""
    corpus = [json.loads(line)["prompt"]
              for line in (ROOT / "data" / "instructions" / "prompts.jsonl").read_text().splitlines()]
    repos = {"model": write_model_repos(root / "repos", corpus, FACTS),
             "dataset": write_dataset_repos(root / "repos", ["stanfordnlp/imdb"])}
    with FakeHub(repos) as hub:
        env = {**clean_env(), **hub.env(root / "hf"), "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", DOWNLOAD], env=env, check=True, capture_output=True,
                       timeout=600)
    return root / "hf"


def run_side_by_side(python: Path, notebooks: Path, env: dict, root: Path, jobs: int = 2):
    """Run the notebooks of PARAMETERS in ``jobs`` processes (one core each), longest first;
    returns the finished processes (each prints its report as JSON on its last line)."""
    order = sorted(PARAMETERS, key=lambda name: longest_first(Path(name)))
    processes = []
    for job in range(jobs):
        share = {name: PARAMETERS[name] for name in order[job::jobs]}
        parameters = write_file(root / f"parameters-{job}.json", json.dumps(share))
        processes.append(subprocess.Popen([str(python), "-c", RUN, str(notebooks), KERNEL, str(parameters),
                                           str(ROOT / "nbtoolkit" / "cli" / "execute.py")],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    finished = []
    for process in processes:
        out, err = process.communicate(timeout=1800)
        finished.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return finished


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """Run every notebook; returns (report, folder of the run, the virtualenv's python, wheel)."""
    root = tmp_path_factory.mktemp("colab")
    hf_home = hub_caches(root)
    with mock.patch.dict(os.environ, {"NBTOOLKIT_CACHE": str(root / "cache")}):
        write_file(rome_known_1000_path(), json.dumps(rome_known_1000(FACTS)))  # as downloaded
    wheel = build_wheel(root / "dist")
    python = fresh_python(root)  # nbtoolkit is not installed: the notebooks' Colab cell does it
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(python.parents[1]),
                    "--name", KERNEL], check=True, capture_output=True, env=clean_env())
    write_file(root / "colab" / "google" / "colab" / "__init__.py", COLAB)
    write_file(root / "ipython" / "profile_default" / "startup" / "00-colab.py",
               f"import sys\nsys.path.insert(0, {str(root / 'colab')!r})\nimport google.colab\n")
    notebooks = root / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns("*.md"))
    env = {k: v for k, v in clean_env().items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", NBTOOLKIT_CACHE=str(root / "cache"),
               NBTOOLKIT_RESULTS=str(root / "results"), NBTOOLKIT_SOURCE=wheel.as_uri(),
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", IPYTHONDIR=str(root / "ipython"),
               JUPYTER_DATA_DIR=str(root / "jupyter"), OMP_NUM_THREADS="1",
               MPLBACKEND="module://matplotlib_inline.backend_inline", TOKENIZERS_PARALLELISM="false")
    report = {}
    for run in run_side_by_side(python, notebooks, env, root):
        assert run.returncode == 0, run.stderr[-3000:]
        report.update(json.loads(run.stdout.strip().splitlines()[-1]))
    write_file(root / "report.json", json.dumps(report, indent=1))
    return report, root, python, wheel


def test_the_parameters_cover_every_notebook():
    assert sorted(PARAMETERS) == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", sorted(PARAMETERS))
def test_the_notebook_runs_installed_on_colab_with_a_hub_model(colab, notebook):
    report = colab[0][notebook]
    print(f"{notebook}: {report['seconds']} s")
    assert report["error"] is None, report["error"]


def test_the_colab_cell_installed_the_wheel(colab):
    _, root, python, wheel = colab
    (dist,) = site_packages(python).glob("nbtoolkit-*.dist-info")
    assert json.loads((dist / "direct_url.json").read_text())["url"] == wheel.as_uri()


def test_the_notebooks_ran_the_hub_models_and_data_offline(colab):
    _, root, _, _ = colab
    meta = {p.stem: json.loads(p.read_text())["meta"] for p in (root / "results").glob("*.json")}
    assert meta["02_causal_tracing"]["model"] == TINY
    assert meta["02_causal_tracing"]["facts"] == "rome known_1000"
    assert meta["05_ccs"]["models"] == [TINY] and "imdb" in meta["05_ccs"]["datasets"]
    assert meta["06_instruction_shift"]["base_model"] == TINY and meta["06_instruction_shift"]["same_family"]
    assert meta["08_selfie_control"]["n_facts"] == 8


def test_the_result_bands_are_not_applicable_to_the_hub_models(colab):
    _, root, _, _ = colab
    bands = {p.stem: json.loads(p.read_text())["bands"] for p in (root / "results").glob("*.json")}
    checked = {name for name, band in bands.items() if band}
    assert checked == set(HEADLINES)
    for name in checked:
        assert not bands[name]["applicable"] and "differ from the CPU preset" in bands[name]["reason"], name
        assert {row["status"] for row in bands[name]["rows"]} == {"not applicable"}, name
