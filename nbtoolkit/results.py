"""Save reproduction tables under ``build/results/`` (paper beside ours, with the run's metadata)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd


def results_dir() -> Path:
    """``NBTOOLKIT_RESULTS``, else ``build/results`` in the repo holding the current folder."""
    if os.environ.get("NBTOOLKIT_RESULTS"):
        return Path(os.environ["NBTOOLKIT_RESULTS"])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "nbtoolkit").is_dir():
            return folder / "build" / "results"
    return here / "build" / "results"


def save_results(name: str, table: pd.DataFrame, **meta) -> Path:
    """Write ``table`` and ``meta`` (model, sample sizes, ...) to ``<results_dir>/<name>.json``
    (and the table as ``<name>.csv``); returns the JSON path. Written atomically."""
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {"name": name, "meta": meta, "table": json.loads(table.to_json(orient="records"))}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)
    table.to_csv(folder / f"{name}.csv", index=False)
    return path
