"""Known facts in ROME's known_1000 layout: the project's own, and ROME's when online.

    facts = load_facts()                    # 589 records of data/facts/known_facts.json
    known = filter_known(lm, facts)         # the ones the model completes correctly
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .files import data_path

FACT_FIELDS = ("known_id", "subject", "attribute", "template", "prompt", "relation_id")
ROME_KNOWN_URL = "https://rome.baulab.info/data/dsets/known_1000.json"


def load_facts(path: str | Path | None = None) -> list[dict]:
    """Known facts as a list of dicts with ROME's fields (``known_id, subject, attribute,
    template, prompt, relation_id``); default: ``data/facts/known_facts.json``."""
    path = Path(path) if path is not None else data_path("facts", "known_facts.json")
    if not path.exists():
        raise ValueError(f"no facts file at {str(path)!r}; the project's facts live in "
                         f"{str(data_path('facts', 'known_facts.json'))!r}")
    records = json.loads(path.read_text())
    if not isinstance(records, list):
        raise ValueError(f"{str(path)!r} must hold a JSON list of fact records")
    for i, record in enumerate(records):
        missing = [f for f in ("subject", "attribute", "prompt") if f not in record]
        if missing:
            raise ValueError(f"{str(path)!r}: record {i} lacks the fields {missing}; expected "
                             f"{list(FACT_FIELDS)}")
    return records


def load_rome_known_1000(url: str = ROME_KNOWN_URL, timeout: float = 30.0) -> list[dict]:
    """ROME's own ``known_1000.json`` (1,209 facts about GPT-2 XL) from its public URL.

    Online only; raises ``ValueError`` naming the URL when it cannot be fetched.
    """
    from urllib.request import urlopen

    try:
        with urlopen(url, timeout=timeout) as response:  # noqa: S310 (a fixed https URL)
            records = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot fetch ROME's known_1000.json from {url} ({error}); offline, "
                         f"use load_facts() (the project's own facts, same layout)") from error
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
