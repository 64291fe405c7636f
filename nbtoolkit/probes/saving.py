"""Save and load fitted reporters: tensors as safetensors, parameters as JSON (no pickle; the
class comes from a fixed table, never from the file)."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.files import atomic_write, write_json
from .pairs import PairNormalizer
from .reporters import CCS, CRC, LogisticProbe, Reporter, make_reporter


def save_reporter(reporter: Reporter, path: str | Path) -> Path:
    """Write ``<path>.safetensors`` (tensors) + ``<path>.json`` (class and parameters)."""
    from safetensors.torch import save_file

    path = Path(path)
    reporter._check_fitted()
    tensors = {"coef": reporter.coef_.contiguous()}
    meta = {"kind": reporter.kind, "params": reporter.get_params(),
            "intercept": reporter.intercept_, "flipped": getattr(reporter, "flipped_", False)}
    if isinstance(reporter, (CCS, CRC)):
        tensors.update({k: v.contiguous() for k, v in reporter.normalizer_.state().items()})
    if isinstance(reporter, CRC):
        meta["proj_std"] = reporter.proj_std_
    if isinstance(reporter, LogisticProbe):
        tensors["mean"], tensors["std"] = reporter.mean_.contiguous(), reporter.std_.contiguous()
    atomic_write(path.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))
    write_json(path.with_suffix(".json"), meta)
    return path


def load_reporter(path: str | Path) -> Reporter:
    """Inverse of :func:`save_reporter` (classes come from a fixed table, never from the file)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    tensors = load_file(str(path.with_suffix(".safetensors")))
    r = make_reporter(meta["kind"], **meta["params"])
    r.coef_, r.intercept_, r.flipped_ = tensors["coef"], meta["intercept"], meta["flipped"]
    if isinstance(r, (CCS, CRC)):
        r.normalizer_ = PairNormalizer.from_state(r.scale, tensors)
    if isinstance(r, CRC):
        r.proj_std_ = meta["proj_std"]
    if isinstance(r, LogisticProbe):
        r.mean_, r.std_ = tensors["mean"], tensors["std"]
    return r
