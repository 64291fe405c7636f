"""Machine-checkable instruction constraints for the instruction-following dataset.

The dataset (``data/instructions/prompts.jsonl``) attaches a list of checks to
each prompt; a response *followed* the prompt iff every check passes.  This
replaces the human "followed / not followed" ratings of Wu et al. 2023
("From Language Modeling to Instruction Following", arXiv 2310.00492) with
code, so labels are reproducible.

Each check is ``{"kind": <name>, **params}``.  Every kind is a small function
registered in :data:`CHECKS` (kind -> function) with its required parameters in
:data:`PARAMS` (kind -> tuple of names).  Responses are normalised leniently:
surrounding whitespace is stripped, and answer-style checks ignore case,
wrapping quotes/markdown and trailing punctuation.
"""

from __future__ import annotations

import json
import math
import re
import string
from pathlib import Path
from typing import Callable

from .files import data_path

__all__ = [
    "CHECKS",
    "PARAMS",
    "DEFAULT_PROMPTS_PATH",
    "check_response",
    "failed_checks",
    "run_check",
    "validate_check",
    "parse_instruct_context",
    "load_instruction_prompts",
    "count_words",
    "split_sentences",
]

DEFAULT_PROMPTS_PATH = data_path("instructions", "prompts.jsonl")

CHECKS: dict[str, Callable[..., bool]] = {}
PARAMS: dict[str, tuple[str, ...]] = {}

# Punctuation (plus typographic quotes) stripped from the ends of short answers.
_EDGE_PUNCT = string.punctuation + "\u201c\u201d\u2018\u2019\u2026\u00ab\u00bb"
_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?")
_NUMBER_SEARCH_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")
_BULLET_RE = re.compile(r"^\s*[-*\u2022]\s+\S")
_NUMBERED_RE = re.compile(r"^\s*\d+[.)]\s+\S")
_SENTENCE_END_RE = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)\]]))\s+")
_FENCE_RE = re.compile(r"^```[A-Za-z]*\s*\n?(.*?)\n?```$", re.S)


def _register(kind: str, *params: str):
    """Register a check function under ``kind`` with its required params."""

    def deco(fn: Callable[..., bool]) -> Callable[..., bool]:
        CHECKS[kind] = fn
        PARAMS[kind] = params
        return fn

    return deco


# ----------------------------------------------------------------- helpers
def _strip_edges(text: str) -> str:
    """Strip whitespace and edge punctuation/quotes/markdown from ``text``."""
    return text.strip().strip(_EDGE_PUNCT + " \t\n").strip()


def _norm_answer(text: str) -> str:
    """Lower-case, collapse whitespace and strip edge punctuation."""
    return " ".join(_strip_edges(text).lower().split())


def count_words(text: str) -> int:
    """Number of words (alphanumeric runs, allowing inner ' and -)."""
    return len(_WORD_RE.findall(text))


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences on . ! ? followed by whitespace or end."""
    parts = _SENTENCE_END_RE.split(text.strip())
    return [p for p in (s.strip() for s in parts) if _WORD_RE.search(p)]


def _phrase_re(phrase: str) -> re.Pattern[str]:
    """Case-insensitive regex matching ``phrase`` as a whole word/phrase."""
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", re.I)


def _as_number(text: str) -> float | None:
    """Parse ``text`` (e.g. '1,250' or '-3.5') as a float, else None."""
    text = text.strip()
    if not text or not _NUMBER_RE.fullmatch(text) or not re.search(r"\d", text):
        return None
    return float(text.replace(",", ""))


def _unfence(text: str) -> str:
    """Remove a surrounding markdown code fence, if any."""
    text = text.strip()
    m = _FENCE_RE.match(text)
    return m.group(1).strip() if m else text


# ------------------------------------------------------------ format checks
@_register("all_caps")
def _all_caps(text: str) -> bool:
    """Every cased letter is upper-case (and there is at least one)."""
    return any(c.isupper() for c in text) and not any(c.islower() for c in text)


@_register("all_lowercase")
def _all_lowercase(text: str) -> bool:
    """Every cased letter is lower-case (and there is at least one)."""
    return any(c.islower() for c in text) and not any(c.isupper() for c in text)


@_register("quoted")
def _quoted(text: str) -> bool:
    """Response is wrapped in double quotes (straight or curly)."""
    t = text.strip()
    return len(t) >= 2 and t[0] in "\"\u201c" and t[-1] in "\"\u201d"


@_register("no_commas")
def _no_commas(text: str) -> bool:
    """Response contains no comma."""
    return bool(text.strip()) and "," not in text and "\uff0c" not in text


@_register("json")
def _json(text: str) -> bool:
    """Response (optionally inside a markdown code fence) parses as JSON."""
    try:
        json.loads(_unfence(text))
    except ValueError:
        return False
    return True


@_register("json_keys", "keys")
def _json_keys(text: str, keys: list[str]) -> bool:
    """Response parses as a JSON object containing all ``keys``."""
    try:
        obj = json.loads(_unfence(text))
    except ValueError:
        return False
    return isinstance(obj, dict) and all(k in obj for k in keys)


@_register("bullet_points", "n")
def _bullet_points(text: str, n: int) -> bool:
    """Exactly ``n`` lines start with a '-', '*' or '•' bullet."""
    return sum(bool(_BULLET_RE.match(line)) for line in text.splitlines()) == n


@_register("numbered_list", "n")
def _numbered_list(text: str, n: int) -> bool:
    """Exactly ``n`` lines start with '1.' / '2)' style numbering."""
    return sum(bool(_NUMBERED_RE.match(line)) for line in text.splitlines()) == n


@_register("n_paragraphs", "n")
def _n_paragraphs(text: str, n: int) -> bool:
    """Exactly ``n`` non-empty paragraphs separated by blank lines."""
    return len([p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]) == n


# ------------------------------------------------------------ length checks
@_register("one_word")
def _one_word(text: str) -> bool:
    """Response is a single word, ignoring edge punctuation and case."""
    core = _strip_edges(text)
    return bool(core) and len(core.split()) == 1 and count_words(core) == 1


@_register("max_words", "n")
def _max_words(text: str, n: int) -> bool:
    """At most ``n`` words (and at least one)."""
    return 1 <= count_words(text) <= n


@_register("min_words", "n")
def _min_words(text: str, n: int) -> bool:
    """At least ``n`` words."""
    return count_words(text) >= n


@_register("n_sentences", "n")
def _n_sentences(text: str, n: int) -> bool:
    """Exactly ``n`` sentences."""
    return len(split_sentences(text)) == n


@_register("max_sentences", "n")
def _max_sentences(text: str, n: int) -> bool:
    """Between one and ``n`` sentences."""
    return 1 <= len(split_sentences(text)) <= n


# ----------------------------------------------------------- lexical checks
@_register("starts_with", "word")
def _starts_with(text: str, word: str) -> bool:
    """First word(s), ignoring leading punctuation and case, equal ``word``."""
    core = text.strip().lstrip(_EDGE_PUNCT + " \t\n")
    return _phrase_re(word).match(core) is not None


@_register("ends_with", "text")
def _ends_with(response: str, text: str) -> bool:
    """Ends with ``text`` (case-insensitive; trailing punctuation ignored unless ``text`` has some)."""
    target = text.strip().lower()
    body = response.strip().rstrip("\"\u201d*_ \t\n").lower()
    if target[-1:] not in _EDGE_PUNCT:
        body = body.rstrip(_EDGE_PUNCT + " \t\n")
    if not target or not body.endswith(target):
        return False
    before = body[: len(body) - len(target)]
    return not (before[-1:].isalnum() and target[0].isalnum())


@_register("contains", "word")
def _contains(text: str, word: str) -> bool:
    """``word`` occurs as a whole word/phrase (case-insensitive)."""
    return _phrase_re(word).search(text) is not None


@_register("not_contains", "word")
def _not_contains(text: str, word: str) -> bool:
    """``word`` does not occur as a whole word/phrase; response is non-empty."""
    return bool(text.strip()) and _phrase_re(word).search(text) is None


@_register("same_words", "text")
def _same_words(response: str, text: str) -> bool:
    """Same words as ``text`` in the same order, ignoring case and punctuation."""
    want = [w.lower() for w in _WORD_RE.findall(text)]
    return [w.lower() for w in _WORD_RE.findall(response)] == want


# ------------------------------------------------------------ answer checks
@_register("answer_in", "options")
def _answer_in(text: str, options: list[str]) -> bool:
    """Normalised answer, or its first word, is one of ``options`` (case-insensitive)."""
    opts = {_norm_answer(o) for o in options}
    norm = _norm_answer(text)
    first = _norm_answer(norm.split()[0]) if norm else ""
    return norm in opts or first in opts


@_register("number")
def _number(text: str) -> bool:
    """Whole response is one number (sign, thousands commas, decimals, '$', final '.' allowed)."""
    core = text.strip().strip("\"'*`\u201c\u201d ").rstrip(".!").strip()
    return _as_number(core.replace("$", "", 1)) is not None


@_register("equals_number", "value")
def _equals_number(text: str, value: float) -> bool:
    """The first number in the response equals ``value``."""
    m = _NUMBER_SEARCH_RE.search(text)
    return m is not None and math.isclose(float(m.group().replace(",", "")), float(value))


# --------------------------------------------------------------------- API
def validate_check(check: dict) -> None:
    """Raise ValueError if ``check`` has an unknown kind or wrong parameters."""
    if not isinstance(check, dict) or "kind" not in check:
        raise ValueError(f"check must be a dict with a 'kind' key, got {check!r}")
    kind = check["kind"]
    if kind not in CHECKS:
        raise ValueError(
            f"unknown check kind {kind!r}; valid kinds: {', '.join(sorted(CHECKS))}"
        )
    missing = [p for p in PARAMS[kind] if p not in check]
    if missing:
        raise ValueError(f"check {kind!r} is missing parameter(s): {', '.join(missing)}")
    extra = sorted(set(check) - {"kind"} - set(PARAMS[kind]))
    if extra:
        raise ValueError(f"check {kind!r} got unexpected parameter(s): {', '.join(extra)}")


def run_check(response: str, check: dict) -> bool:
    """Run one check (``{"kind": ..., **params}``) on ``response``."""
    validate_check(check)
    params = {k: v for k, v in check.items() if k != "kind"}
    return bool(CHECKS[check["kind"]](response, **params))


def failed_checks(response: str, checks: list[dict]) -> list[str]:
    """Kinds of the checks that ``response`` fails (empty list = followed)."""
    if not checks:
        raise ValueError("checks must be a non-empty list")
    return [c["kind"] for c in checks if not run_check(response, c)]


def check_response(response: str, checks: list[dict]) -> bool:
    """True iff ``response`` passes every check (i.e. followed the prompt)."""
    return not failed_checks(response, checks)


def parse_instruct_context(field: str) -> tuple[list[str], str]:
    """Split the paper's 'inst1|||inst2&&&context' field into (spans, context)."""
    if not isinstance(field, str) or "&&&" not in field:
        raise ValueError(f"malformed Instruct&Context field (no '&&&'): {field!r}")
    instructions, _, context = field.partition("&&&")
    spans = [s.strip() for s in instructions.split("|||") if s.strip()]
    if not spans:
        raise ValueError(f"malformed Instruct&Context field (no instruction span): {field!r}")
    return spans, context.strip()


_REQUIRED_FIELDS = ("id", "group", "prompt", "instruct_context", "checks")


def _validate_record(rec: dict, where: str) -> None:
    """Raise ValueError (naming the record) if ``rec`` is malformed."""
    rid = rec.get("id", "?") if isinstance(rec, dict) else "?"
    try:
        if not isinstance(rec, dict):
            raise ValueError("record is not a JSON object")
        missing = [f for f in _REQUIRED_FIELDS if f not in rec]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        spans, context = parse_instruct_context(rec["instruct_context"])
        for span in spans + ([context] if context else []):
            if span not in rec["prompt"]:
                raise ValueError(f"span not found verbatim in prompt: {span!r}")
        if not isinstance(rec["checks"], list) or not rec["checks"]:
            raise ValueError("'checks' must be a non-empty list")
        for check in rec["checks"]:
            validate_check(check)
    except ValueError as err:
        raise ValueError(f"record {rid!r} ({where}): {err}") from None


def load_instruction_prompts(path: str | Path | None = None) -> list[dict]:
    """Load and validate the instruction prompts jsonl (default: repo data file)."""
    path = Path(path) if path is not None else DEFAULT_PROMPTS_PATH
    records: list[dict] = []
    seen_ids: set[str] = set()
    seen_prompts: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid JSON: {err}") from None
            _validate_record(rec, where)
            if rec["id"] in seen_ids:
                raise ValueError(f"record {rec['id']!r} ({where}): duplicate id")
            if rec["prompt"] in seen_prompts:
                raise ValueError(f"record {rec['id']!r} ({where}): duplicate prompt")
            seen_ids.add(rec["id"])
            seen_prompts.add(rec["prompt"])
            records.append(rec)
    return records
