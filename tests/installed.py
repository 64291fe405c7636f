"""The package as users get it: a wheel built from this checkout, installed (not editable) into a
fresh virtualenv outside the repository. The virtualenv sees this environment's dependencies
(pip among them) through a ``.pth`` line, so torch & co. are not installed twice and no older
setuptools of its own shadows them, but not the checkout: the editable install's finder lives in
a ``.pth`` file of its own, which a ``.pth``-added folder does not run."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(out: Path) -> Path:
    """``nbtoolkit-*.whl`` built from the checkout into ``out``."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True)
    (wheel,) = out.glob("nbtoolkit-*.whl")
    return wheel


def clean_env() -> dict:
    """This process's environment without ``PYTHONPATH``: nothing may point back at the checkout."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def fresh_python(folder: Path) -> Path:
    """A virtualenv in ``folder`` that sees this environment's dependencies but not nbtoolkit;
    returns its python."""
    env = folder / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    Path(site_packages(python), "nbtoolkit-test-deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    return python


def site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=clean_env()).stdout.strip())


def installed_python(folder: Path) -> Path:
    """A virtualenv in ``folder`` with the wheel installed; returns its python."""
    wheel = build_wheel(folder / "dist")
    python = fresh_python(folder)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, env=clean_env())
    return python
