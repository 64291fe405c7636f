"""What the lens methods take, checked before any forward: prompts, token positions, tokens."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch


def prompt_list(prompts: str | Sequence[str]) -> tuple[list[str], bool]:
    """``(prompts as a list, whether one string was given)``; ``ValueError``/``TypeError`` for an
    empty list or anything but non-empty strings."""
    if isinstance(prompts, str):
        prompts, single = [prompts], True
    elif isinstance(prompts, (list, tuple)):
        prompts, single = list(prompts), False
    else:
        raise TypeError(f"prompts must be a string or a list of strings, got "
                        f"{type(prompts).__name__}: {prompts!r:.60}")
    if not prompts:
        raise ValueError("prompts is an empty list; give at least one prompt")
    bad = [p for p in prompts if not isinstance(p, str) or not p]
    if bad:
        raise ValueError(f"prompts must be non-empty strings, got {bad[:3]!r}")
    return prompts, single


def token_columns(mask: torch.Tensor, positions: int | Sequence[int] | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each prompt's selected tokens sit in a left-padded batch.

    ``mask`` ``[batch, seq]`` (1 = token); ``positions`` token positions of each prompt (negative:
    from its end) or ``None`` for all of them. Returns ``cols`` ``[batch, n_positions]`` (columns
    of the batch; 0 where a shorter prompt has no such token) and ``valid`` ``[batch,
    n_positions]``. ``ValueError`` names a position outside a prompt."""
    lengths = mask.sum(-1).tolist()
    width = mask.shape[1]
    if positions is None:
        wanted = [list(range(n)) for n in lengths]
    else:
        listed = [positions] if _is_int(positions) else positions
        if not isinstance(listed, (list, tuple)) or not listed or \
                not all(_is_int(p) for p in listed):
            raise TypeError(f"positions must be an int, a non-empty list of ints or None (every "
                            f"token), got {positions!r}")
        wanted = []
        for row, n in enumerate(lengths):
            outside = [p for p in listed if not -n <= p < n]
            if outside:
                raise ValueError(f"position {outside[0]} is outside prompt {row}, which has {n} "
                                 f"tokens (valid positions: {-n}..{n - 1})")
            wanted.append([p % n for p in listed])
    count = max(len(w) for w in wanted)
    cols = torch.zeros(len(lengths), count, dtype=torch.long)
    valid = torch.zeros(len(lengths), count, dtype=torch.bool)
    for row, (n, chosen) in enumerate(zip(lengths, wanted)):
        cols[row, :len(chosen)] = torch.tensor(chosen, dtype=torch.long) + width - n
        valid[row, :len(chosen)] = True
    return cols.to(mask.device), valid.to(mask.device)


def prompt_tokens(lm, batch: dict, row: int) -> list[str]:
    """The tokens of prompt ``row`` of an encoded batch, padding dropped, as strings."""
    ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
    return lm.tokenizer.batch_decode([[i] for i in ids])


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def token_id(lm, token: str | int, what: str = "token") -> int:
    """The id of ``token``: an id, or a text's first token (with a warning naming the token
    used when the text is several tokens, as ``" Eiffel Tower"``)."""
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    if _is_int(token):
        if not 0 <= token < vocab:
            raise ValueError(f"{what} id {token} is outside the vocabulary (0..{vocab - 1})")
        return token
    if not isinstance(token, str):
        raise TypeError(f"{what} must be a string or a token id, got {type(token).__name__}: "
                        f"{token!r}")
    ids = lm.tokenizer(token, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"{what} {token!r} encodes to no tokens")
    if len(ids) > 1:
        pieces = [lm.tokenizer.decode([i]) for i in ids]
        warnings.warn(f"{what} {token!r} is {len(ids)} tokens {pieces}; using its first, "
                      f"{pieces[0]!r}", stacklevel=3)
    return ids[0]
