"""Where the datasets written for nbtoolkit live: the repository's ``data/`` folder, installed
inside the package as ``nbtoolkit._data`` (so a wheel carries them)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """A file or folder of the bundled datasets, e.g. ``data_path("facts", "known_facts.json")``."""
    path = Path(str(files("nbtoolkit._data").joinpath(*parts)))
    if not path.exists():
        raise ValueError(f"no bundled data at {'/'.join(parts)!r} (looked in {path}); bundled: "
                         f"{sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []}")
    return path
