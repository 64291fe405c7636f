"""An installed wheel carries the datasets: every loader works outside the repository."""

import json
import subprocess

import pytest

from installed import clean_env, installed_python

CHECK = """
import json, nbtoolkit
from nbtoolkit.data import data_path, load_facts
from nbtoolkit.data.contrast import load_contrast, local_datasets
from nbtoolkit.data.instructions import load_instruction_prompts
assert "site-packages" in nbtoolkit.__file__, nbtoolkit.__file__
facts = load_facts()
sets = {name: load_contrast(name, templates=0, n=8)[0] for name in local_datasets()}
prompts = load_instruction_prompts()
print(json.dumps({"facts": len(facts), "contrast": sorted(sets), "prompts": len(prompts),
                  "readme": data_path("README.md").read_text().startswith("#"),
                  "build_scripts": sorted(str(p) for p in data_path().rglob("build.py"))}))
"""


@pytest.fixture(scope="module")
def python(tmp_path_factory):
    return installed_python(tmp_path_factory.mktemp("wheel"))


def test_installed_wheel_loads_every_dataset(python, tmp_path):
    run = subprocess.run([str(python), "-c", CHECK], cwd=tmp_path, capture_output=True, text=True,
                         env=clean_env())
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["facts"] > 500 and found["prompts"] > 200 and found["readme"]
    assert found["contrast"] == ["animals", "arithmetic", "capitals", "comparisons", "sentiment"]
    assert found["build_scripts"] == []  # the scripts that wrote the data stay in the repository
