"""Save and load fitted reporters: tensors as safetensors, parameters and fitted numbers as JSON
(no pickle; the class comes from a fixed table, never from the file)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from sklearn.utils.validation import check_is_fitted

from ..core.files import atomic_write, write_json
from .pairs import PairNormalizer
from .registry import make_reporter
from .reporters import NOT_FITTED, Reporter

FORMAT = 2  # 2: Platt scale/bias and a template axis in the normaliser


def save_reporter(reporter: Reporter, path: str | Path) -> Path:
    """Write ``<path>.safetensors`` (fitted tensors) + ``<path>.json`` (kind, parameters, fitted
    numbers): every fitted attribute (name ending in ``_``) that is a tensor, a number or a list."""
    from safetensors.torch import save_file

    path = Path(path)
    check_is_fitted(reporter, "coef_", msg=NOT_FITTED)
    tensors, fitted = {}, {}
    for name, value in vars(reporter).items():
        if not name.endswith("_"):
            continue
        if torch.is_tensor(value):
            tensors[name] = value.contiguous()
        elif isinstance(value, PairNormalizer):
            tensors.update({k: t.contiguous() for k, t in value.state().items()})
        else:
            fitted[name] = value
    meta = {"format": FORMAT, "kind": reporter.kind, "params": reporter.get_params(), "fitted": fitted}
    atomic_write(path.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))
    write_json(path.with_suffix(".json"), meta)
    return path


def load_reporter(path: str | Path) -> Reporter:
    """Inverse of :func:`save_reporter` (classes come from a fixed table, never from the file)."""
    from safetensors.torch import load_file

    path = Path(path)
    for suffix in (".json", ".safetensors"):
        if not path.with_suffix(suffix).is_file():
            raise FileNotFoundError(f"no reporter at {path}: {path.with_suffix(suffix)} is missing")
    meta = json.loads(path.with_suffix(".json").read_text())
    if not isinstance(meta, dict) or not isinstance(meta.get("fitted"), dict):
        raise ValueError(f"{path}: not a reporter file (no 'fitted' numbers)")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: reporter file format {meta.get('format', 1)}, this nbtoolkit "
                         f"reads format {FORMAT}; re-run the elicitation to refit it")
    tensors = load_file(str(path.with_suffix(".safetensors")))
    _check_fitted_values(path, meta["fitted"], tensors)
    r = make_reporter(meta["kind"], **meta["params"])
    for name, value in list(meta["fitted"].items()) + list(tensors.items()):
        if name.startswith("norm."):
            continue
        if not (name.isidentifier() and name.endswith("_")) or name.startswith("_"):
            raise ValueError(f"{path}: {name!r} is not a fitted attribute name")
        setattr(r, name, value)
    if "norm.mean_pos" in tensors:
        r.normalizer_ = PairNormalizer.from_state(r.scale, tensors)
    return r


_PREDICTIVE = ("coef_", "intercept_", "platt_scale_", "platt_bias_", "threshold_")


def _check_fitted_values(path: Path, fitted: dict, tensors: dict[str, torch.Tensor]) -> None:
    """``ValueError`` for a file no fit could have written: a NaN or infinite tensor or number
    that predictions use (diagnostics such as CRC's ``explained_`` may be NaN, e.g. on constant
    embeddings), no direction (``coef_``), or feature vectors of different widths."""
    if "coef_" not in fitted and "coef_" not in tensors:
        raise ValueError(f"{path}: no fitted direction 'coef_'; not a fitted reporter")
    bad = [k for k in _PREDICTIVE if isinstance(fitted.get(k), (int, float))
           and not math.isfinite(fitted[k])]
    bad += [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{path}: NaN or infinite fitted values in {sorted(set(bad))}")
    widths = {k: t.shape[-1] for k, t in tensors.items() if t.dim() and t.shape[-1] != 1}
    if len(set(widths.values())) > 1:
        raise ValueError(f"{path}: fitted vectors of different widths {widths}; the file is "
                         f"corrupt or was edited")
