"""The reporters by name, for the pipeline, the command line and saved files."""

from __future__ import annotations

from .reporters import CCS, CRC, LogisticProbe, Reporter
from .vinc import VINC

#: The reporters by name: ``make_reporter(name)`` builds one.
REPORTERS = {"ccs": CCS, "crc": CRC, "vinc": VINC, "lr": LogisticProbe}


def make_reporter(kind: str, **kwargs) -> Reporter:
    """``"ccs"``, ``"crc"``, ``"vinc"`` or ``"lr"`` -> a new reporter."""
    if kind not in REPORTERS:
        raise ValueError(f"unknown reporter {kind!r}; choose from {', '.join(REPORTERS)}")
    return REPORTERS[kind](**kwargs)
