"""Safe files: every write is atomic (a temporary file or folder beside the target, then a rename),
so a reader sees the old file or the new one, never half of one; names made safe for paths; the
default output folder (``build/``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

STALE = "-stale-"  # an old folder renamed aside by replace_folder: .{name}-stale-*/{name}


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, then rename it onto
    ``path``; the temporary file is removed if ``write`` fails. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def replace_folder(finished: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Rename the finished folder ``finished`` onto ``folder`` (same file system). An existing
    ``folder`` is first renamed aside into ``.{name}-stale-*`` (:func:`stale_asides`; a folder
    cannot be replaced by one rename), then removed, so a reader sees the old folder or the new
    one; if the last rename fails, the old folder is put back (unless another writer's folder
    took its place meanwhile). Returns ``folder``."""
    finished, folder = Path(finished), Path(folder)
    if not finished.is_dir():
        raise FileNotFoundError(f"no finished folder at {finished}")
    aside = None
    if folder.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}{STALE}", dir=folder.parent))
        os.replace(folder, aside / folder.name)
    try:
        os.replace(finished, folder)
    except BaseException:
        if aside is not None:
            try:
                os.replace(aside / folder.name, folder)
            except OSError:
                pass  # another writer's folder took the place meanwhile: keep it, raise ours
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return folder


def stale_asides(folder: str | os.PathLike) -> list[Path]:
    """What a :func:`replace_folder` onto ``folder`` that was killed midway left beside it
    (``folder``'s name may be a glob pattern, e.g. ``shard-*``)."""
    folder = Path(folder)
    return list(folder.parent.glob(f".{folder.name}{STALE}*"))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (non-JSON values as ``str``)."""
    return write_text(path, json.dumps(obj, indent=1, default=str))


def slug(text: str, max_length: int = 80) -> str:
    """``text`` as a file or folder name: runs of characters other than letters, digits, ``-``,
    ``_`` and ``.`` become ``_``; at most the last ``max_length`` characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[-max_length:]


def build_dir() -> Path:
    """``build/`` in the repository holding the current folder (a folder with ``pyproject.toml``
    and ``nbtoolkit/``); outside one, ``build/`` in the current folder. Where command lines and
    the tutorials write by default."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "nbtoolkit").is_dir():
            return folder / "build"
    return here / "build"
