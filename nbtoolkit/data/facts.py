"""Known facts in ROME's known_1000 layout: the project's own, and ROME's (downloaded once).

    facts = load_facts()                    # 589 records of data/facts/known_facts.json
    facts = load_rome_known_1000()          # ROME's 1,209 (downloaded into the cache, never bundled)
    known = filter_known(lm, facts)         # the ones the model completes correctly
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..core.files import atomic_write
from ..core.loading import cache_dir
from .files import data_path, read_json

#: The fields of one known fact, in ROME's known_1000 layout.
FACT_FIELDS = ("known_id", "subject", "attribute", "template", "prompt", "relation_id")
#: Where ROME publishes known_1000.json (1,209 facts), fetched on request.
ROME_KNOWN_URL = "https://rome.baulab.info/data/dsets/known_1000.json"


def load_facts(path: str | Path | None = None) -> list[dict]:
    """Known facts as a list of dicts with ROME's fields (``known_id, subject, attribute,
    template, prompt, relation_id``); default: ``data/facts/known_facts.json``."""
    path = Path(path) if path is not None else data_path("facts", "known_facts.json")
    if not path.exists():
        raise ValueError(f"no facts file at {str(path)!r}; the project's facts live in "
                         f"{str(data_path('facts', 'known_facts.json'))!r}")
    return check_facts(read_json(path, "Fix the file or pass another path."), repr(str(path)))


def check_facts(records, source: str) -> list[dict]:
    """``records`` if it is a list of fact records with at least ``subject``, ``attribute`` and
    ``prompt``; else ``ValueError`` naming ``source`` and the first bad record."""
    if not isinstance(records, list) or not records:
        raise ValueError(f"{source} must hold a non-empty JSON list of fact records")
    for i, record in enumerate(records):
        missing = [f for f in ("subject", "attribute", "prompt")
                   if not isinstance(record, dict) or not isinstance(record.get(f), str)]
        if missing:
            raise ValueError(f"{source}: record {i} lacks the fields {missing} (text); expected "
                             f"{list(FACT_FIELDS)}")
    return records


def rome_known_1000_path(url: str = ROME_KNOWN_URL) -> Path:
    """Where the download of ``url`` is kept: ``<NBTOOLKIT_CACHE>/rome/<hash of url>/known_1000.json``."""
    return cache_dir() / "rome" / hashlib.sha256(url.encode()).hexdigest()[:12] / "known_1000.json"


def load_rome_known_1000(url: str = ROME_KNOWN_URL, timeout: float = 30.0) -> list[dict]:
    """ROME's own ``known_1000.json`` (1,209 facts GPT-2 XL knows; fields as :func:`load_facts`
    plus ``prediction``), downloaded from ``url`` once into :func:`rome_known_1000_path` and read
    from there afterwards, offline too. Checked before it is kept; ``ValueError`` naming the URL
    when it cannot be fetched or is not a list of facts.
    """
    from urllib.request import urlopen

    path = rome_known_1000_path(url)
    if path.exists():  # a damaged copy (truncated, empty, ...) is named with its fix
        fix = f"Delete the cached copy ({path}) and it is downloaded again."
        records = read_json(path, fix)
        try:
            return check_facts(records, repr(str(path)))
        except ValueError as error:
            raise ValueError(f"{error}. {fix}") from None
    try:
        with urlopen(url, timeout=timeout) as response:  # noqa: S310 (ROME's https URL by default)
            data = response.read()
        records = check_facts(json.loads(data.decode("utf-8")), url)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot fetch ROME's known_1000.json from {url} ({error}); it is "
                         f"downloaded once into {path.parent}; offline, use load_facts() (the "
                         f"project's own facts, same layout)") from error
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return records


@torch.no_grad()
def filter_known(lm, facts: list[dict], batch_size: int = 32) -> list[dict]:
    """The facts whose greedy next token (after ``prompt``) begins ``attribute``.

    The token is compared with its surrounding whitespace removed: ``" Par"`` begins
    ``"Paris"``; a whitespace-only token never counts. Returns the records unchanged, in order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    kept = []
    for start in range(0, len(facts), batch_size):
        chunk = facts[start:start + batch_size]
        top = lm.next_token_probs([f["prompt"] for f in chunk]).argmax(-1).tolist()
        for fact, token_id in zip(chunk, top):
            token = lm.tokenizer.decode([token_id]).strip()
            if token and fact["attribute"].startswith(token):
                kept.append(fact)
    return kept
