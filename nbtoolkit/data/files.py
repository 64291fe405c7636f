"""Where the datasets written for nbtoolkit live: the repository's ``data/`` folder, installed
inside the package as ``nbtoolkit._data`` (so a wheel carries them)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """A file or folder of the bundled datasets, e.g. ``data_path("facts", "known_facts.json")``."""
    path = Path(str(files("nbtoolkit._data").joinpath(*parts)))
    if not path.exists():
        raise ValueError(f"no bundled data at {'/'.join(parts)!r} (looked in {path}); bundled: "
                         f"{sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []}")
    return path


def read_json(path: Path, fix: str):
    """The JSON in ``path``; else ``ValueError`` naming the file, what is wrong with it (missing,
    empty, not text, not valid JSON: where) and ``fix``, what to do about it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}. {fix}") from None
    if not data.strip():
        raise ValueError(f"{path} is empty. {fix}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not text (not UTF-8: a binary file?). {fix}") from None
    except json.JSONDecodeError as error:
        end = " (the file ends there: truncated?)" if error.pos >= len(data.rstrip()) - 1 else ""
        raise ValueError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column "
                         f"{error.colno}{end}. {fix}") from None
