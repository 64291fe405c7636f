"""A dataset of prompt pairs for circuit sweeps: base prompts, their corrupted (source) twins of
the same token length, each base prompt's correct and wrong answer, and named character spans
(IOI's IO, S1, S2) that become token positions for any tokenizer.

    data = ioi.ioi_prompts(16, corruption="abc")
    head_patching(lm, data.prompts, data.corrupted, data.metric(lm), positions=data.positions(lm))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..core.lm import token_indices
from ..core.sweeps import AnswerDifference, logit_difference


@dataclass
class PromptPairs:
    """``prompts[i]`` (base) and ``corrupted[i]`` (source) of pair i; ``correct[i]`` /
    ``wrong[i]`` the base prompt's answers with their leading space (``" Mary"``); ``spans[i]``
    ``{name: (start, end)}`` character spans in ``prompts[i]``; ``info[i]`` what generated it."""

    prompts: list[str]
    corrupted: list[str]
    correct: list[str]
    wrong: list[str]
    spans: list[dict[str, tuple[int, int]]]
    info: list[dict] = field(default_factory=list)
    task: str = ""

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index) -> "PromptPairs":
        """The pairs ``index`` selects (a slice or a list of indices)."""
        rows = list(range(len(self)))[index] if isinstance(index, slice) else list(index)
        pick = lambda xs: [xs[i] for i in rows] if xs else []  # noqa: E731
        return PromptPairs(pick(self.prompts), pick(self.corrupted), pick(self.correct),
                           pick(self.wrong), pick(self.spans), pick(self.info), self.task)

    def metric(self, lm) -> AnswerDifference:
        """Logit difference, correct − wrong answer of each base prompt ``[n_pairs]``."""
        return logit_difference(lm, self.correct, self.wrong)

    def positions(self, lm, end: bool = True) -> dict[str, list[int]]:
        """Token position of each named span in each base prompt (``end``: also the last
        token, ``"end"``), for ``positions=`` of the sweeps."""
        out = {name: [] for name in self.spans[0]} if self.spans else {}
        for prompt, spans in zip(self.prompts, self.spans):
            for name, (start, stop) in spans.items():
                out[name].append(token_indices(lm, prompt, prompt[start:stop], start)[-1])
        if end:
            out["end"] = [-1] * len(self)
        return out

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"prompt": self.prompts, "corrupted": self.corrupted,
                             "correct": self.correct, "wrong": self.wrong,
                             **({k: [i[k] for i in self.info] for k in self.info[0]}
                                if self.info else {})})
