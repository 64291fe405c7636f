"""Indirect object identification (IOI; Wang et al. 2023, arXiv 2211.00593), written for this
project: "When Mary and John arrived at the store, John handed a book to" → " Mary".

    data = ioi_prompts(32, order="mixed", corruption="abc", seed=0)
    data.prompts[0], data.corrupted[0], data.correct[0], data.wrong[0]
    metric = data.metric(lm)              # logit(IO) − logit(S), [n_pairs]
    data.positions(lm)                    # {"IO": [...], "S1": [...], "S2": [...], "end": [-1, ...]}

Each prompt names two people in a first clause (IO and S, in the order ``ABBA``: IO first, or
``BABA``: S first), then S again (S2) as the subject who gives something "to" someone: the
answer is the indirect object, IO. The names, places and objects are one token each, with their
leading space, in the tokenizers of SmolLM2, Gemma-3 and GPT-2 (the names are among Wang et
al.'s GPT-2 single-token names; tests/test_ioi.py checks the two embedded tokenizers), so a
prompt and its corruption have the same number of tokens. Corruptions (the source prompts):

- ``"abc"``: IO, S1 and S2 replaced by three other names (the paper's p_ABC): no name repeats,
  so nothing says who the indirect object is.
- ``"flip"``: S2 becomes the IO name, so the other name is now the repeated one and the answer
  flips (the paper's "IO ← S2 replacement", Appendix A).
- ``"swap"``: the two names of the first clause trade places (ABBA ↔ BABA, the paper's "IO ↔
  S1 flip"): the same answer, the position of the repeated name inverted.
"""

from __future__ import annotations

import numpy as np

from .pairs import PromptPairs

# Common first names; each also one token in GPT-2's tokenizer (in Wang et al.'s list)
NAMES = ("Mary", "John", "Anna", "David", "Sarah", "James", "Laura", "Michael", "Lisa", "Paul",
         "Emily", "Peter", "Rachel", "Thomas", "Kate", "Kevin", "Jane", "Robert", "Alice",
         "Richard", "Victoria", "Daniel", "Jessica", "Andrew", "Maria", "Steven", "George",
         "Amy", "Frank", "Jennifer", "Eric", "Elizabeth", "Henry", "Jack", "Michelle", "Simon",
         "Adam", "Charles", "Sean", "Tyler")
PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "station", "park",
          "library", "market", "beach", "museum", "kitchen", "bank", "church", "farm")
OBJECTS = ("ring", "book", "bottle", "ball", "key", "letter", "cake", "gift", "phone", "bag",
           "pen", "coin", "hat", "map", "cup", "drink", "snack", "necklace", "computer")

# {A} and {B}: the first clause's names in order; {S2}: the repeated subject; the answer ends it
TEMPLATES = (
    "When {A} and {B} arrived at the {place}, {S2} handed a {object} to",
    "After {A} and {B} left the {place}, {S2} gave a {object} to",
    "Yesterday {A} and {B} visited the {place}, and {S2} passed a {object} to",
    "While {A} and {B} were cleaning the {place}, {S2} threw a {object} to",
    "Later, {A} and {B} walked into the {place}. {S2} offered a {object} to",
    "Once {A} and {B} reached the {place}, {S2} sent a {object} to",
    "On Sunday {A} and {B} met at the {place}, where {S2} sold a {object} to",
    "At the {place}, {A} and {B} found a {object}. {S2} gave it to",
    "As {A} and {B} waited at the {place}, {S2} brought a {object} to",
    "Before {A} and {B} went home from the {place}, {S2} lent a {object} to",
    "Last night {A} and {B} stayed at the {place}, and {S2} showed a {object} to",
    "Then {A} and {B} had lunch at the {place}, and {S2} gave a {object} to",
)
ORDERS = ("ABBA", "BABA")
CORRUPTIONS = ("abc", "flip", "swap")


def fill(template: str, a: str, b: str, s2: str, place: str, obj: str) -> tuple[str, dict]:
    """The prompt and the character spans of its three names ``{"A", "B", "S2"}``."""
    text, spans, i = "", {}, 0
    values = {"A": a, "B": b, "S2": s2, "place": place, "object": obj}
    while i < len(template):
        if template[i] == "{":
            key = template[i + 1:template.index("}", i)]
            if key in ("A", "B", "S2"):
                spans[key] = (len(text), len(text) + len(values[key]))
            text += values[key]
            i += len(key) + 2
        else:
            text += template[i]
            i += 1
    return text, spans


def ioi_prompts(n: int, *, order: str = "mixed", corruption: str = "abc", seed: int = 0,
                templates: tuple[str, ...] = TEMPLATES, names: tuple[str, ...] = NAMES,
                places: tuple[str, ...] = PLACES, objects: tuple[str, ...] = OBJECTS) -> PromptPairs:
    """``n`` IOI prompts and their corruptions (module docstring); ``order``: ``"ABBA"``,
    ``"BABA"`` or ``"mixed"`` (alternating); seeded by ``seed``. Spans ``IO``, ``S1``, ``S2``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if order not in (*ORDERS, "mixed"):
        raise ValueError(f"order must be 'ABBA', 'BABA' or 'mixed', got {order!r}")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {corruption!r}")
    if len(set(names)) < 5:
        raise ValueError(f"need at least 5 distinct names (IO, S and three others for 'abc'), "
                         f"got {len(set(names))}")
    rng = np.random.default_rng(seed)
    pick = lambda pool: pool[int(rng.integers(len(pool)))]  # noqa: E731
    prompts, corrupted, correct, wrong, spans, info = [], [], [], [], [], []
    for i in range(n):
        t = int(rng.integers(len(templates)))
        io, s, *others = (names[j] for j in rng.choice(len(names), size=5, replace=False))
        place, obj = pick(places), pick(objects)
        kind = order if order != "mixed" else ORDERS[i % 2]
        a, b = (io, s) if kind == "ABBA" else (s, io)
        text, where = fill(templates[t], a, b, s, place, obj)
        if corruption == "abc":
            source, _ = fill(templates[t], *others, place, obj)
        elif corruption == "flip":
            source, _ = fill(templates[t], a, b, io, place, obj)
        else:  # swap
            source, _ = fill(templates[t], b, a, s, place, obj)
        prompts.append(text)
        corrupted.append(source)
        correct.append(" " + io)
        wrong.append(" " + s)
        io_key, s1_key = ("A", "B") if kind == "ABBA" else ("B", "A")
        spans.append({"IO": where[io_key], "S1": where[s1_key], "S2": where["S2"]})
        info.append({"io": io, "s": s, "order": kind, "template": t, "place": place,
                     "object": obj})
    return PromptPairs(prompts, corrupted, correct, wrong, spans, info, task="ioi")


__all__ = ["CORRUPTIONS", "NAMES", "OBJECTS", "ORDERS", "PLACES", "TEMPLATES", "fill",
           "ioi_prompts"]
