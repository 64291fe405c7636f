"""Save reproduction tables under ``build/results/`` (paper beside ours, with the run's metadata)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..core.files import atomic_write, build_dir, write_json
from .bands import BandCheck


def results_dir() -> Path:
    """``NBTOOLKIT_RESULTS``, else ``build/results`` in the repo holding the current folder."""
    if os.environ.get("NBTOOLKIT_RESULTS"):
        return Path(os.environ["NBTOOLKIT_RESULTS"])
    return build_dir() / "results"


def save_results(name: str, table: pd.DataFrame, *, bands: BandCheck | None = None, **meta) -> Path:
    """Write ``table``, the check of its result ``bands`` (:func:`~nbtoolkit.tutorials.bands.check_bands`)
    and ``meta`` (model, sample sizes, ...) to ``<results_dir>/<name>.json`` (and the table as
    ``<name>.csv``); returns the JSON path. Written atomically."""
    folder = results_dir()
    path = folder / f"{name}.json"
    payload = {"name": name, "meta": meta, "bands": bands.to_dict() if bands else None,
               "table": json.loads(table.to_json(orient="records"))}
    write_json(path, payload)
    atomic_write(folder / f"{name}.csv", lambda tmp: table.to_csv(tmp, index=False))
    return path
