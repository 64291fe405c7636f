"""Safe files: every write is atomic (a temporary file in the same folder, then a rename), so a
reader sees the old file or the new one, never half of one; and names made safe for paths."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable


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
