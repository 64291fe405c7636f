"""What every patching sweep over prompt pairs shares; it knows no method.

    pairs = encode_pairs(lm, base, source)     # pair i = (base[i], source[i]), left-padded batches
    groups = position_groups(pairs, "last")    # which token columns a patch covers, per pair
    metric = logit_difference(lm, " Mary", " John")
    values = check_metric(metric, logits)      # [n_pairs] from the last position's logits
    SweepResult(per_pair, base_scores, source_scores, axes=("layer", "head")).scores

The sweep convention: inputs are strings or token ids, a batch of prompt pairs whose two prompts
have the same number of tokens (so positions align); the source's activation is patched into the
base run; ``metric(logits [n_pairs, vocab]) -> [n_pairs]`` reads the logits of each pair's last
token, row i belonging to pair i; results are indexed ``[layer, ...]``, the mean over pairs in
``.scores`` and the per-pair values in ``.per_pair`` ``[n_pairs, layer, ...]``.

Positions (``position_groups``): ``"all"`` (every column, the whole activation), ``"last"``,
an int or a list of ints (token positions of each prompt, negative from its end, all patched
together), ``"each"`` (one result per position; needs prompts of one length) or a dict
``{name: position or [one position per pair]}`` (one result per name: IOI's IO, S1, S2, end).

Method-agnostic on purpose: ``interchange_sweep`` (``nbtoolkit.interchange``) and the circuit
sweeps (``nbtoolkit.circuits``) are written with it; ``patch_cells`` is the one intervention they
share (each block of batch rows patched from the source at its own columns, and heads).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .lm import forward_inputs

Metric = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------- prompt pairs

@dataclass
class Pairs:
    """Base and source prompts of ``n`` pairs as left-padded forward inputs ``[n, width]``.

    ``lengths[i]``: the tokens of pair i (the same in its base and source prompt); ``pads[i]``
    its padding columns (``width - lengths[i]``); ``tokens[i]`` its base prompt's tokens."""

    base: dict[str, torch.Tensor]
    source: dict[str, torch.Tensor]
    lengths: list[int]
    tokens: list[list[str]]

    @property
    def n(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return self.base["input_ids"].shape[1]

    @property
    def pads(self) -> list[int]:
        return [self.width - n for n in self.lengths]

    def tiled(self, inputs: dict[str, torch.Tensor], copies: int) -> dict[str, torch.Tensor]:
        """``inputs`` repeated ``copies`` times, block-major: row ``k·n + i`` is pair i."""
        return {key: value.repeat(copies, *([1] * (value.dim() - 1))) for key, value in inputs.items()}


def _ids(lm, prompts, what: str) -> list[list[int]]:
    """Token ids of each prompt: strings are tokenized (with the tokenizer's special tokens),
    ids are taken as they are."""
    if isinstance(prompts, str) or torch.is_tensor(prompts) and prompts.dim() == 1:
        prompts = [prompts]
    if torch.is_tensor(prompts):
        if prompts.dtype not in (torch.int64, torch.int32) or prompts.dim() != 2:
            raise TypeError(f"{what} as a tensor must be token ids [n_pairs, n_tokens], got "
                            f"dtype {prompts.dtype} and shape {tuple(prompts.shape)}")
        prompts = prompts.tolist()
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(f"{what} must be a string, a list of strings or token ids, got "
                        f"{type(prompts).__name__}")
    if not prompts:
        raise ValueError(f"{what} is empty: a sweep needs at least one prompt pair")
    out = []
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            if not prompt.strip():
                raise ValueError(f"{what}[{i}] is an empty string")
            out.append(lm.tokenizer(prompt)["input_ids"])
        elif isinstance(prompt, (list, tuple)) and prompt and \
                all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            vocab = lm.model.get_input_embeddings().num_embeddings
            bad = [t for t in prompt if not 0 <= t < vocab]
            if bad:
                raise ValueError(f"{what}[{i}] has token ids outside the vocabulary "
                                 f"(0..{vocab - 1}): {bad[:5]}")
            out.append(list(prompt))
        else:
            raise TypeError(f"{what}[{i}] must be a non-empty string or a list of token ids, "
                            f"got {prompt!r}")
    return out


def encode_pairs(lm, base, source) -> Pairs:
    """Pair i = (base[i], source[i]): strings or token ids, one pair or a list of pairs. The two
    prompts of a pair must have the same number of tokens; pairs may differ in length (left
    padding, with an attention mask and per-row position ids)."""
    base_ids, source_ids = _ids(lm, base, "base"), _ids(lm, source, "source")
    if len(base_ids) != len(source_ids):
        raise ValueError(f"base has {len(base_ids)} prompts but source has {len(source_ids)}: "
                         f"a sweep takes pairs (base[i], source[i])")
    for i, (b, s) in enumerate(zip(base_ids, source_ids)):
        if len(b) != len(s):
            raise ValueError(f"pair {i}: base has {len(b)} tokens but source has {len(s)}; the "
                             f"prompts of a pair must align token by token: "
                             f"{_decoded(lm, b)} vs {_decoded(lm, s)}")
    lengths = [len(b) for b in base_ids]
    width = max(lengths)
    lm._check_length(width)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0

    def batch(rows):
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=lm.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=lm.device)
        return forward_inputs(lm.model, ids, mask)

    tokens = [[lm.tokenizer.decode([t]) for t in b] for b in base_ids]
    return Pairs(batch(base_ids), batch(source_ids), lengths, tokens)


def _decoded(lm, ids: list[int]) -> list[str]:
    return [lm.tokenizer.decode([t]) for t in ids]


# ---------------------------------------------------------------- positions

@dataclass
class PositionGroup:
    """One set of patched token columns: ``columns`` ``[n_pairs, k]`` (``None``: every column,
    the whole activation) and its ``label`` on the results' position axis."""

    label: str
    columns: torch.Tensor | None


def position_groups(pairs: Pairs, positions) -> tuple[list[PositionGroup], bool]:
    """The column groups of ``positions`` (see the module docstring) and whether they form an
    axis of their own (``"each"``, a dict) rather than one patch (``"all"``, ``"last"``, ints)."""
    if isinstance(positions, str):
        if positions == "all":
            return [PositionGroup("all", None)], False
        if positions == "last":
            return [PositionGroup("last", _columns(pairs, [[-1]] * pairs.n, "last"))], False
        if positions == "each":
            if len(set(pairs.lengths)) != 1:
                raise ValueError(f"positions='each' needs prompts of one length, got lengths "
                                 f"{sorted(set(pairs.lengths))}; name the positions of each "
                                 f"pair instead: positions={{'S2': [...], 'end': [...]}}")
            labels = [f"{p} {t!r}" for p, t in enumerate(pairs.tokens[0])]
            return [PositionGroup(label, _columns(pairs, [[p]] * pairs.n, label))
                    for p, label in enumerate(labels)], True
        raise ValueError(f"positions must be 'all', 'last', 'each', an int, a list of ints or "
                         f"a dict {{name: positions per pair}}, got {positions!r}")
    if isinstance(positions, dict):
        if not positions:
            raise ValueError("positions is an empty dict; name at least one position")
        groups = []
        for name, at in positions.items():
            per_pair = _per_pair(at, pairs.n, f"positions[{name!r}]")
            groups.append(PositionGroup(str(name), _columns(pairs, per_pair, str(name))))
        return groups, True
    listed = [positions] if _is_int(positions) else positions
    if not isinstance(listed, (list, tuple)) or not listed or not all(map(_is_int, listed)):
        raise (ValueError if isinstance(listed, (list, tuple)) and not listed else TypeError)(
            f"positions must be 'all', 'last', 'each', an int, a non-empty list of ints or a "
            f"dict {{name: positions per pair}}, got {positions!r}")
    label = ",".join(map(str, listed))
    return [PositionGroup(label, _columns(pairs, [list(listed)] * pairs.n, label))], False


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _per_pair(at, n: int, what: str) -> list[list[int]]:
    if _is_int(at):
        return [[at]] * n
    if isinstance(at, (list, tuple, np.ndarray)) or torch.is_tensor(at):
        at = [int(a) if isinstance(a, (np.integer, torch.Tensor)) else a for a in list(at)]
        if len(at) != n or not all(map(_is_int, at)):
            raise ValueError(f"{what} must be an int or one int per pair ({n}), got {at!r}")
        return [[a] for a in at]
    raise TypeError(f"{what} must be an int or one int per pair, got {at!r}")


def _columns(pairs: Pairs, per_pair: list[list[int]], what: str) -> torch.Tensor:
    """Token positions of each pair (negative: from its end) as columns ``[n_pairs, k]``."""
    rows = []
    for i, (positions, n, pad) in enumerate(zip(per_pair, pairs.lengths, pairs.pads)):
        bad = [p for p in positions if not -n <= p < n]
        if bad:
            raise ValueError(f"position {bad[0]} ({what}) is out of range for pair {i}, whose "
                             f"prompts have {n} tokens (valid: {-n}..{n - 1})")
        rows.append([pad + (p % n) for p in positions])
    return torch.tensor(rows, device=pairs.base["input_ids"].device)


def patch_cells(source: torch.Tensor, cells: list[tuple[int, int | None, torch.Tensor | None]],
                n: int):
    """An intervention for a site ``[rows, width, ...]`` (per-head: ``[rows, width, heads,
    d_head]``): condition k's rows get ``source``'s head h (``None``: the whole activation) at
    columns ``cols`` (``[n, k]``; ``None``: all), for each ``(k, h, cols)`` of ``cells``.
    ``source`` ``[n, width, ...]`` (the same for every condition) or ``[conditions·n, width,
    ...]`` (one block of rows per condition, read at the condition's own rows)."""
    width = source.shape[1]
    rows, columns, heads, pair_rows = [], [], [], []
    device = source.device
    for k, head, cols in cells:
        cols = torch.arange(width, device=device).expand(n, width) if cols is None else cols
        pair = torch.arange(n, device=device)[:, None].expand_as(cols)
        rows.append((k * n + pair).reshape(-1))
        pair_rows.append(pair.reshape(-1))
        columns.append(cols.reshape(-1))
        heads.append(torch.full((cols.numel(),), -1 if head is None else head, device=device))
    rows, columns, heads, pair_rows = map(torch.cat, (rows, columns, heads, pair_rows))
    whole = bool((heads < 0).all())
    read = pair_rows if source.shape[0] == n else rows

    def edit(act, ctx):
        out = act.clone()
        if whole:
            out[rows, columns] = source[read, columns].to(act.dtype)
        else:
            out[rows, columns, heads] = source[read, columns, heads].to(act.dtype)
        return out
    return edit


# ---------------------------------------------------------------- metrics

class AnswerDifference:
    """``metric(logits [n_pairs, vocab]) -> [n_pairs]``: the logit of pair i's correct answer's
    first token minus its wrong answer's (``logit_difference``)."""

    def __init__(self, correct: torch.Tensor, wrong: torch.Tensor, names=None):
        self.correct, self.wrong, self.names = correct, wrong, names

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        n = len(self.correct)
        if logits.dim() != 2 or n != 1 and logits.shape[0] != n:
            raise ValueError(f"this metric has answers for {len(self.correct)} pairs but got "
                             f"logits of shape {tuple(logits.shape)}; expected "
                             f"[{len(self.correct)}, vocab]")
        rows = torch.arange(logits.shape[0], device=logits.device)
        correct = self.correct.to(logits.device).expand(logits.shape[0])
        wrong = self.wrong.to(logits.device).expand(logits.shape[0])
        return logits[rows, correct] - logits[rows, wrong]

    def __repr__(self):
        return f"logit_difference({self.names!r})" if self.names else "logit_difference(...)"


def logit_difference(lm, correct, wrong) -> AnswerDifference:
    """Metric: logit(correct) − logit(wrong) at the last position, each answer read at its first
    token (``" Mary"``, with the leading space the prompt leaves out). ``correct``/``wrong``: one
    answer for every pair or one per pair (strings or token ids). Warns when a pair's two
    answers share their first token: their difference is then 0 whatever is patched."""
    correct_ids, wrong_ids = _answer_ids(lm, correct, "correct"), _answer_ids(lm, wrong, "wrong")
    if len(correct_ids) != len(wrong_ids) and 1 not in (len(correct_ids), len(wrong_ids)):
        raise ValueError(f"{len(correct_ids)} correct answers but {len(wrong_ids)} wrong ones; "
                         f"give one answer for all pairs or one per pair")
    n = max(len(correct_ids), len(wrong_ids))
    correct_ids, wrong_ids = (ids * n if len(ids) == 1 else ids for ids in (correct_ids, wrong_ids))
    same = [i for i, (c, w) in enumerate(zip(correct_ids, wrong_ids)) if c == w]
    if same:
        text = lambda x, i: x if isinstance(x, str) else x[i] if isinstance(x, (list, tuple)) else x  # noqa: E731
        warnings.warn(f"the correct and wrong answers of pair(s) {same[:5]} share their first "
                      f"token ({lm.tokenizer.decode([correct_ids[same[0]]])!r}, e.g. "
                      f"{text(correct, same[0])!r} vs {text(wrong, same[0])!r}): their logit "
                      f"difference is 0 whatever is patched", stacklevel=2)
    names = (correct, wrong) if isinstance(correct, str) and isinstance(wrong, str) else None
    return AnswerDifference(torch.tensor(correct_ids), torch.tensor(wrong_ids), names)


def _answer_ids(lm, answers, what: str) -> list[int]:
    listed = [answers] if isinstance(answers, str) or _is_int(answers) else answers
    if not isinstance(listed, (list, tuple)) or not listed:
        raise TypeError(f"{what} answers must be a string, a token id or a non-empty list of "
                        f"them, got {answers!r}")
    vocab = lm.model.get_input_embeddings().num_embeddings
    ids = []
    for answer in listed:
        if isinstance(answer, str):
            ids.append(lm.token_id(answer))
        elif _is_int(answer) and 0 <= answer < vocab:
            ids.append(answer)
        else:
            raise ValueError(f"{what} answer {answer!r} is neither a string nor a token id in "
                             f"0..{vocab - 1}")
    return ids


def check_metric(metric: Metric, logits: torch.Tensor) -> torch.Tensor:
    """``metric(logits)`` ``[n]`` for logits ``[n, vocab]``; a scalar, another shape or a
    non-tensor is refused with what a metric must return."""
    if not callable(metric):
        raise TypeError(f"metric must be a callable logits [n_pairs, vocab] -> [n_pairs], got "
                        f"{type(metric).__name__}")
    values = metric(logits)
    n = logits.shape[0]
    if not torch.is_tensor(values):
        raise TypeError(f"metric {metric!r} returned {type(values).__name__}; it must return a "
                        f"tensor with one value per pair, shape [{n}]")
    if values.dim() == 0:
        raise ValueError(f"metric {metric!r} returned a scalar; it must return one value per pair "
                         f"(shape [{n}]), e.g. logits[:, a] - logits[:, b] without .mean(): the "
                         f"sweep averages over pairs itself and keeps each pair's value")
    if tuple(values.shape) != (n,):
        raise ValueError(f"metric {metric!r} returned shape {tuple(values.shape)}; it must return "
                         f"one value per pair, shape [{n}] (logits are [{n}, vocab], the last "
                         f"position's)")
    return values


def metric_values(metric: Metric, logits: torch.Tensor, n: int) -> torch.Tensor:
    """The metric of stacked blocks of ``n`` rows (block-major) ``[rows, vocab]`` -> ``[blocks, n]``:
    the metric sees one batch of pairs at a time, row i = pair i."""
    blocks = logits.shape[0] // n
    return torch.stack([metric(logits[k * n:(k + 1) * n]) for k in range(blocks)])


# ---------------------------------------------------------------- results

@dataclass
class SweepResult:
    """A sweep's metric after each patch, per pair and averaged.

    ``per_pair`` ``[n_pairs, *shape]`` with axes named ``axes`` (``("layer", "head")``, ...) and
    tick labels ``labels[axis]`` where they are not 0, 1, 2 ...; ``base_scores`` /
    ``source_scores`` ``[n_pairs]``: the metric of the unpatched base and source runs.
    ``scores`` is the mean over pairs, ``std`` the spread across pairs."""

    per_pair: np.ndarray
    base_scores: np.ndarray
    source_scores: np.ndarray
    axes: tuple[str, ...]
    labels: dict[str, list] = field(default_factory=dict)
    method: str = ""

    @property
    def scores(self) -> np.ndarray:
        return self.per_pair.mean(0)

    @property
    def std(self) -> np.ndarray:
        return self.per_pair.std(0)

    @property
    def base_score(self) -> float:
        return float(np.mean(self.base_scores))

    @property
    def source_score(self) -> float:
        return float(np.mean(self.source_scores))

    @property
    def n_pairs(self) -> int:
        return self.per_pair.shape[0]

    def normalized(self) -> np.ndarray:
        """``(scores − base) / (source − base)``: 0 = no effect, 1 = the source's whole effect."""
        gap = self.source_score - self.base_score
        if gap == 0:
            raise ValueError("base and source scores are equal: nothing to normalise by")
        return (self.scores - self.base_score) / gap

    def effects(self) -> np.ndarray:
        """``scores − base_score``: what each patch changed."""
        return self.scores - self.base_score

    def top(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` cells whose patch changed the metric most (by absolute effect)."""
        frame = self.to_frame()
        order = (frame["score"] - self.base_score).abs().sort_values(ascending=False).index
        return frame.loc[order[:k]].reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        """One row per cell: its index on each axis (and label), score, std, effect."""
        shape = self.per_pair.shape[1:]
        index = np.indices(shape).reshape(len(shape), -1)
        frame = pd.DataFrame({axis: index[k] for k, axis in enumerate(self.axes)})
        for axis, ticks in self.labels.items():
            frame[f"{axis}_label"] = np.asarray(ticks, dtype=object)[frame[axis]]
        frame["score"] = self.scores.ravel()
        frame["std"] = self.std.ravel()
        frame["effect"] = frame["score"] - self.base_score
        frame["base_score"], frame["source_score"] = self.base_score, self.source_score
        if self.method:
            frame.insert(0, "method", self.method)
        return frame
