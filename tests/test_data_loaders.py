"""The papers' data loaders on small files written in each source's format, fetched the way users
fetch them: Burns et al.'s datasets through `datasets` from a stand-in hub on 127.0.0.1 (then
again offline, from the cache that download left), ROME's known_1000.json and the
instruction-shift paper's released files over HTTP and file:// URLs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_hub import FakeHub, FileServer
from hub_repos import REPOS, dataset_rows, rome_known_1000, write_dataset_repos, write_file
from nbtoolkit.instruction_shift import released
from nbtoolkit.data import load_facts
from nbtoolkit.data.contrast import HF_DATASETS
from nbtoolkit.data.facts import load_rome_known_1000, rome_known_1000_path

ROOT = Path(__file__).resolve().parents[1]
N = 8

LOAD_ALL = f"""
import json
from nbtoolkit.data.contrast import HF_DATASETS, load_contrast
print(json.dumps({{name: [dict(template=s.template_id, prompts=s.prompts, labels=s.labels.tolist(),
                               rows=s.row_ids.tolist(), choices=list(s.choices))
                          for s in load_contrast(name, n={N}, seed=0)]
                  for name in HF_DATASETS}}))
"""


def run_python(code: str, env: dict) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**base, "PYTHONPATH": str(ROOT), **env}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Every hub dataset loaded online from the stand-in hub, then offline from the cache."""
    root = tmp_path_factory.mktemp("hub")
    hf_home = root / "hf"
    with FakeHub({"dataset": write_dataset_repos(root / "repos")}) as hub:
        online = run_python(LOAD_ALL, hub.env(hf_home))
        requests = list(hub.requests)
    offline = run_python(LOAD_ALL, {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    return online, offline, requests


def source_rows(name: str) -> list[dict]:
    """The rows load_contrast indexes: the table's split, "a+b" concatenated as `datasets` does."""
    return [row for split in HF_DATASETS[name]["split"].split("+") for row in dataset_rows(name, split)]


def test_every_hub_dataset_downloads_through_the_hub_api_and_loads_again_offline(loaded):
    online, offline, requests = loaded
    assert online == offline  # the second run read the cache the first one left
    for repo in REPOS:
        assert f"GET /api/datasets/{repo}/revision/main" in requests or \
            any(r.startswith(f"GET /api/datasets/{repo}/") for r in requests), repo
        assert any(r.startswith(f"GET /datasets/{repo}/resolve/") and r.endswith(".parquet")
                   for r in requests), f"{repo}: no data file downloaded"


@pytest.mark.parametrize("name", sorted(HF_DATASETS))
def test_contrast_pairs_match_the_source_rows(loaded, name):
    info, rows = HF_DATASETS[name], source_rows(name)
    sets = loaded[0][name]
    assert [s["template"] for s in sets] == list(range(len(info["templates"])))
    for s in sets:
        assert s["choices"] == info["choices"] and sum(s["labels"]) == N // 2  # balanced
        assert s["rows"] == sets[0]["rows"] and len(set(s["rows"])) == N  # same examples each template
        template = info["templates"][s["template"]]
        for prompt, label, row in zip(s["prompts"], s["labels"], s["rows"]):
            fields = {key: str(rows[row][column]).strip() for key, column in info["fields"].items()}
            if "label_words" not in info:
                assert label == int(rows[row][info["label"]])
                assert prompt == template.format(**fields)
                continue
            words = info["label_words"]
            true = words[rows[row]["label"]]
            others = [w for w in words if w != true]  # Burns: the true class and one other
            orders = [(o, true) if label else (true, o) for o in others]
            assert any(prompt == template.format(**fields, choice1=a, choice2=b) for a, b in orders)


def test_rome_known_1000_downloads_once_and_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTOOLKIT_CACHE", str(tmp_path / "cache"))
    records = rome_known_1000(load_facts()[:5])
    served = write_file(tmp_path / "site" / "data" / "dsets" / "known_1000.json", json.dumps(records))
    with FileServer(tmp_path / "site") as site:
        url = f"{site.url}/data/dsets/known_1000.json"
        assert load_rome_known_1000(url) == records
    assert rome_known_1000_path(url).read_bytes() == served.read_bytes()
    assert load_rome_known_1000(url) == records  # the server is gone: the cached download
    assert load_rome_known_1000(served.as_uri()) == records  # a file:// URL too


def test_rome_known_1000_refuses_what_is_not_a_fact_list(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTOOLKIT_CACHE", str(tmp_path / "cache"))
    write_file(tmp_path / "site" / "page.json", json.dumps({"error": "moved"}))
    write_file(tmp_path / "site" / "broken.json", json.dumps([{"subject": "France"}]))
    write_file(tmp_path / "site" / "page.html", "<html>not json</html>")
    with FileServer(tmp_path / "site") as site:
        for name, message in [("page.json", "non-empty JSON list"), ("page.html", "Expecting value"),
                              ("broken.json", r"record 0 lacks the fields \['attribute', 'prompt'\]"),
                              ("missing.json", "404")]:
            url = f"{site.url}/{name}"
            with pytest.raises(ValueError, match=f"cannot fetch ROME's known_1000.json from {url}"):
                load_rome_known_1000(url)
            with pytest.raises(ValueError, match=message):
                load_rome_known_1000(url)
            assert not rome_known_1000_path(url).exists()  # nothing half-written is kept


def test_the_released_instruction_shift_files_download_over_http(tmp_path):
    """The files as the authors' repository serves them (raw URLs), cut into parts mid-line."""
    header = "\t".join(released.BILINEAR_COLUMNS)
    rows = [header,
            "\t".join(["vicuna", "7B", "0", "QK", "0", "0", "1", "0.5", "essay=write|||dog=cat"]),
            "\t".join(["llama", "7B", "0", "QK", "0", "0", "1", "0.4", "Write=Essay"])]
    text = "\n".join(rows) + "\n"
    site = tmp_path / "site" / released.REPOSITORY / released.COMMIT
    for part, (a, b) in zip(released.BILINEAR_PARTS, [(0, 70), (70, len(text))] + [(0, 0)] * 21):
        write_file(site / part, text[a:b])
    label_row = "\t".join(["coding", "1", "Words: a.", "code", "vicuna", "7B", "3", "FFN", "0", "2",
                           "0.1", "a|||b"])
    for kind in released.ANNOTATION_KINDS:
        for seed in released.SEEDS:
            write_file(site / released.annotation_path(kind, seed),
                       "\t".join(released.ANNOTATION_COLUMNS) + "\n" + label_row + "\n")
    with FileServer(tmp_path / "site") as server:
        folder = released.download_released(
            tmp_path / "cache", raw_url=server.url + "/{repository}/{commit}/{path}")
    for path in released.released_files():
        assert (folder / path).read_bytes() == (site / path).read_bytes(), path
    pairs = released.load_bilinear_pairs(folder, words=["write"])
    assert sorted(pairs.dropna().itertuples(index=False)) == [("llama", 0, 0, 0, "essay=write"),
                                                               ("vicuna", 0, 0, 0, "essay=write")]
    tasks = released.load_annotations("task", folder)
    assert len(tasks) == 5 and set(tasks.label) == {"coding"} and set(tasks.layer) == {3}
