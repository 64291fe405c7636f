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
``dev`` extra (nbgrader). Writes only what it generates: an instructor's own assignment in
``source/``, extra files beside a tutorial's copy and an edited ``nbgrader_config.py`` survive
every release (:func:`kept` lists them).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from ..core.files import write_json, write_text

COURSE_ID = "nbtoolkit"
GENERATED = ".nbtoolkit-generated.json"  # in build/classroom: the notebooks release copied
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
    _write_source(course, sources)
    config = Config()
    config.CourseDirectory.root = str(course.resolve())
    config.CourseDirectory.course_id = COURSE_ID
    api = NbGraderAPI(config=config)
    with _alembic_on_path():
        for path in sources:  # ours only: an instructor's own assignments are theirs to generate
            result = api.generate_assignment(path.stem, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(f"nbgrader generate_assignment {path.stem} failed:\n"
                                   f"{result.get('error') or result.get('log')}")
    out = build / "exercises"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        written.append(Path(shutil.copy(course / "release" / path.stem / path.name, out / path.name)))
    return written


def _write_source(course: Path, sources: list[Path]) -> None:
    """Copy the tutorials into ``course/source/<stem>/`` and write ``nbgrader_config.py``,
    touching only what we generate: a tutorial removed since the last release loses its copied
    notebook (listed in ``GENERATED``), nothing else; other files and folders are kept
    (:func:`kept`), and so is an ``nbgrader_config.py`` that someone edited."""
    source = course / "source"
    source.mkdir(parents=True, exist_ok=True)
    record = course / GENERATED
    before = set(json.loads(record.read_text())) if record.exists() else set()
    now = [f"{path.stem}/{path.name}" for path in sources]
    for name in sorted(before - set(now)):
        folder = (source / name).parent
        (source / name).unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    for path in sources:
        (source / path.stem).mkdir(exist_ok=True)
        shutil.copy(path, source / path.stem / path.name)
    write_json(record, now)
    config = course / "nbgrader_config.py"
    if not config.exists():
        write_text(config, CONFIG)


def kept(build: Path) -> list[Path]:
    """What :func:`release` found in ``build/classroom`` and left alone because it did not write
    it: files and folders in ``source/`` other than the tutorials' copies, and an edited
    ``nbgrader_config.py``."""
    course = Path(build) / "classroom"
    record = course / GENERATED
    ours = set(json.loads(record.read_text())) if record.exists() else set()
    found = [path for folder in sorted((course / "source").glob("*"))
             for path in (sorted(folder.rglob("*")) if folder.is_dir() else [folder])
             if path.is_file() and path.relative_to(course / "source").as_posix() not in ours]
    config = course / "nbgrader_config.py"
    if config.exists() and config.read_text() != CONFIG:
        found.append(config)
    return found


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
