"""Python docstrings (after Heimersheim & Janiak 2023, "A circuit for Python docstrings in a
4-layer attention-only transformer"), written for this project: the model has read a function's
parameters and the docstring's first ``:param`` lines, and must name the next parameter.

    def load(self, page, files, size, mode):
        \"\"\"tree river stone

        :param page: cloud music
        :param files: paper window
        :param                                  → " size"   (wrong: " mode")

    data = docstring_prompts(16, corruption="random_doc")
    data.metric(lm)       # logit(next parameter) − logit(the parameter after it), [n_pairs]

Every word is one token, with its leading space, in SmolLM2's and Gemma-3's tokenizers, so a
prompt and its corruption have the same length. Corruptions: ``"random_doc"`` (the docstring's
parameter names replaced by other words: nothing says which parameters were documented) and
``"random_answer"`` (the answer parameter renamed in the signature: it cannot be copied).
Spans: ``A1``, ``A2`` (the documented parameters in the signature), ``answer`` (the answer
parameter in the signature), ``D1``, ``D2`` (their names in the docstring).
"""

from __future__ import annotations

import numpy as np

from .pairs import PromptPairs

WORDS = ("page", "files", "size", "mode", "name", "data", "path", "text", "user", "items",
         "value", "count", "color", "width", "limit", "image", "token", "state", "model", "table",
         "query", "field", "label", "level", "order", "score", "index", "range", "source",
         "target")
FILLER = ("tree", "river", "stone", "cloud", "music", "paper", "window", "garden", "market",
          "letter", "summer", "silver", "forest", "island", "bridge", "candle")
FUNCTIONS = ("load", "run", "build", "parse", "check", "update", "render", "send")
CORRUPTIONS = ("random_doc", "random_answer")


def docstring_prompts(n: int, *, corruption: str = "random_doc", seed: int = 0) -> PromptPairs:
    """``n`` docstring prompts and their corruptions (module docstring), seeded by ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {corruption!r}")
    rng = np.random.default_rng(seed)
    prompts, corrupted, correct, wrong, spans, info = [], [], [], [], [], []
    for _ in range(n):
        params = [WORDS[i] for i in rng.choice(len(WORDS), size=7, replace=False)]
        a1, a2, answer, after, new1, new2, new_answer = params
        words = [FILLER[i] for i in rng.choice(len(FILLER), size=7, replace=False)]
        function = FUNCTIONS[int(rng.integers(len(FUNCTIONS)))]
        text, where = _prompt(function, (a1, a2, answer, after), (a1, a2), words)
        if corruption == "random_doc":
            source, _ = _prompt(function, (a1, a2, answer, after), (new1, new2), words)
        else:
            source, _ = _prompt(function, (a1, a2, new_answer, after), (a1, a2), words)
        prompts.append(text)
        corrupted.append(source)
        correct.append(" " + answer)
        wrong.append(" " + after)
        spans.append(where)
        info.append({"function": function, "params": " ".join(params[:4])})
    return PromptPairs(prompts, corrupted, correct, wrong, spans, info, task="docstring")


def _prompt(function: str, params: tuple[str, ...], documented: tuple[str, str],
            words: list[str]) -> tuple[str, dict]:
    """The prompt, and the character spans of the signature's first three parameters and of
    the two documented names."""
    head = f"def {function}(self, "
    spans, text = {}, head
    for i, (key, p) in enumerate(zip(("A1", "A2", "answer", None), params)):
        if key:
            spans[key] = (len(text), len(text) + len(p))
        text += p + (", " if i < len(params) - 1 else "")
    text += f'):\n    """{words[0]} {words[1]} {words[2]}\n\n'
    for key, p, (w1, w2) in zip(("D1", "D2"), documented, (words[3:5], words[5:7])):
        text += "    :param "
        spans[key] = (len(text), len(text) + len(p))
        text += f"{p}: {w1} {w2}\n"
    return text + "    :param", spans


__all__ = ["CORRUPTIONS", "FILLER", "FUNCTIONS", "WORDS", "docstring_prompts"]
