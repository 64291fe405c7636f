"""``make exercises``: the student notebooks, generated from the tutorials by nbgrader.

    release(Path("notebooks"), Path("build"))     # python -m nbtoolkit.cli.exercises notebooks build

Each tutorial keeps its exercises' solutions between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` in cells marked as nbgrader solution cells; the check after each is an
nbgrader grade cell. nbgrader's ``generate_assignment`` (one assignment per tutorial) replaces
every solution by ``raise NotImplementedError()``, clears outputs, locks the check cells and
records them in a gradebook. We call nbgrader rather than strip the markers ourselves because it
is also what grades the submissions (``nbgrader autograde``), from the same gradebook.

Writes ``build/classroom/`` (an nbgrader course: ``source/``, ``release/``, ``gradebook.db``,
``nbgrader_config.py``) and ``build/exercises/<notebook>.ipynb``, the student versions. Needs the
``dev`` extra (nbgrader).
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

COURSE_ID = "nbtoolkit"
# Read by nbgrader commands run in the course folder (autograde runs each notebook top to bottom:
# its longest cells take minutes on a CPU, nbgrader's default allows 30 s per cell).
CONFIG = f"""c = get_config()
c.CourseDirectory.course_id = "{COURSE_ID}"
c.Execute.timeout = 900  # seconds per cell, as `make test` gives nbmake
"""


def is_solution(cell) -> bool:
    """An nbgrader solution cell (the exercise's code, solution between the markers)."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def is_check(cell) -> bool:
    """An nbgrader grade cell (the exercise's check)."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


def release(notebooks: Path, build: Path) -> list[Path]:
    """Student versions of every notebook in ``notebooks`` that has exercises, written to
    ``build/exercises/`` through an nbgrader course in ``build/classroom/``; their paths."""
    import nbformat

    notebooks, build = Path(notebooks), Path(build)
    if not notebooks.is_dir():
        raise ValueError(f"{notebooks} is not a folder of notebooks")
    sources = sorted(path for path in notebooks.glob("*.ipynb")
                     if any(map(is_solution, nbformat.read(path, as_version=4).cells)))
    if not sources:
        raise ValueError(f"no notebook in {notebooks} has exercises (nbgrader solution cells)")
    try:
        from nbgrader.apps import NbGraderAPI
        from traitlets.config import Config
    except ImportError as error:
        raise ImportError("make exercises needs nbgrader: pip install 'nbgrader>=0.9' (it is in "
                          "nbtoolkit's dev extra)") from error
    course = build / "classroom"
    shutil.rmtree(course / "source", ignore_errors=True)  # a removed tutorial leaves no assignment
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    for path in sources:
        folder = course / "source" / path.stem
        folder.mkdir(parents=True)
        shutil.copy(path, folder / path.name)
    config = Config()
    config.CourseDirectory.root = str(course.resolve())
    config.CourseDirectory.course_id = COURSE_ID
    with _alembic_on_path():
        result = NbGraderAPI(config=config).generate_assignment("*", force=True, create=True)
    if not result["success"]:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n"
                           f"{result.get('error') or result.get('log')}")
    out = build / "exercises"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        written.append(Path(shutil.copy(course / "release" / path.stem / path.name, out / path.name)))
    return written


@contextmanager
def _alembic_on_path():
    """nbgrader's gradebook runs the ``alembic`` command: find the one installed next to this
    Python even when its folder is not on PATH (``.venv/bin/python -m ...``)."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before])
    try:
        yield
    finally:
        os.environ["PATH"] = before
