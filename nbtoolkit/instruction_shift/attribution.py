"""Input->output gradient attribution and importance density (Wu et al., arXiv 2310.00492).

    attr = input_output_attribution(lm, prompt, response)   # attr.scores [prompt_tokens, response_tokens]
    levels = quantize_attribution(attr.scores)              # ints 0..10
    density = importance_density(levels)                    # [prompt_tokens], max 1
    score = instruction_score(density, attr.instruction_mask(spans))

``I[n, m] = sum_d dp(y_m | prefix)/dE[x_n]_d * E[x_n]_d``: the gradient of each response token's
softmax probability with respect to the prompt's input embeddings, times the embedding, summed
over hidden dimensions. The text is ``prompt.strip() + " " + response.strip()`` and, as in the
paper, no chat template is applied. A BOS token the tokenizer adds is part of the forward but
not of the prompt tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import require
from ..core.hooks import capture
from ..core.lm import LAST_POSITION, position_ids
from ..core.modes import eval_mode

SUPPORTED_KINDS = ("decoder",)  # gradients of next-token probabilities


@dataclass
class Attribution:
    """One prompt/response pair's attribution matrix and the tokens it is indexed by.

    ``scores``: ``[n_prompt_tokens, n_response_tokens]`` float tensor. ``prompt_offsets``: each
    prompt token's character span ``(start, end)`` in ``prompt_text`` (the stripped prompt).
    """

    scores: torch.Tensor
    prompt_tokens: list[str]
    response_tokens: list[str]
    prompt_offsets: list[tuple[int, int]]
    prompt_text: str
    response_text: str
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.scores.shape)

    def levels(self, levels: int = 10) -> np.ndarray:
        """:func:`quantize_attribution` of the scores, ``[prompt_tokens, response_tokens]`` ints."""
        return quantize_attribution(self.scores, levels)

    def density(self, levels: int = 10, b: int = 7, p: float = 4) -> np.ndarray:
        """Importance density of each prompt token, ``[prompt_tokens]`` (max 1)."""
        return importance_density(self.levels(levels), b=b, p=p)

    def instruction_mask(self, spans: list[str]) -> np.ndarray:
        """Which prompt tokens overlap an instruction span, ``[prompt_tokens]`` bool."""
        return instruction_mask(self.prompt_text, self.prompt_offsets, spans)

    def instruction_score(self, spans: list[str], *, levels: int = 10, b: int = 7,
                          p: float = 4) -> float:
        """The paper's per-sample instruction-word importance."""
        return instruction_score(self.density(levels, b, p), self.instruction_mask(spans))

    def to_frame(self) -> pd.DataFrame:
        """One row per (prompt token, response token): ``prompt_index, prompt_token,
        response_index, response_token, score``."""
        n_prompt, n_response = self.shape
        return pd.DataFrame({
            "prompt_index": np.repeat(range(n_prompt), n_response),
            "prompt_token": np.repeat(self.prompt_tokens, n_response),
            "response_index": np.tile(range(n_response), n_prompt),
            "response_token": np.tile(self.response_tokens, n_prompt),
            "score": self.scores.double().numpy().ravel()})


def _split_tokens(tokenizer, prompt_text: str, response_text: str):
    """Token ids of the full text and which positions are prompt / response tokens."""
    text = prompt_text + " " + response_text
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
    except NotImplementedError as error:
        raise TypeError("input_output_attribution needs a fast tokenizer (offset mapping)") from error
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    special = set(tokenizer.all_special_ids)
    cut = len(prompt_text)
    prompt_pos, response_pos = [], []
    for i, (start, end) in enumerate(offsets):
        if ids[i] in special and start == end:
            if response_pos or prompt_pos:
                raise ValueError(f"tokenizer added special token {ids[i]} inside the text; "
                                 f"only a leading BOS is supported")
            continue  # BOS: in the forward, not a prompt token
        (prompt_pos if start < cut else response_pos).append(i)
    if not prompt_pos or not response_pos:
        raise ValueError(f"prompt and response must both give tokens; got {len(prompt_pos)} prompt "
                         f"and {len(response_pos)} response tokens for {text!r}")
    if prompt_pos != list(range(prompt_pos[0], prompt_pos[-1] + 1)) or \
            response_pos[0] != prompt_pos[-1] + 1:
        raise ValueError(f"prompt and response tokens interleave in {text!r}")
    return ids, offsets, prompt_pos, response_pos


def input_output_attribution(lm, prompt: str, response: str, *, batch_size: int = 16,
                             max_response_tokens: int | None = None,
                             method: str = "batched") -> Attribution:
    """Gradient x input attribution of each response token's probability to each prompt token.

    ``method="batched"``: one forward of prompt + response (cut after the last attributed
    token), then one vectorised backward per ``batch_size`` response tokens
    (``torch.autograd.grad(..., is_grads_batched=True)``): the paper's one-backward-per-token
    loop, vectorised. ``method="copies"``: the text repeated once per response token, each copy
    cut just before its token and left-padded (attention mask and position ids keep it exact),
    the probabilities summed; one backward gives every copy's own gradient (for models whose
    ops do not support vmap). Both are exact. Gradients go through
    ``capture(lm, "embed", grad=True)``; weights get no ``.grad``. The model's train/eval modes
    and ``requires_grad`` flags are left as found (dropout is off during the call).
    ``max_response_tokens`` keeps only the first response tokens (a CPU budget; the paper uses
    all of them, up to 200). Returns an :class:`Attribution` with ``scores`` ``[prompt_tokens, response_tokens]``.
    """
    require(lm.model, "input-output attribution", SUPPORTED_KINDS)
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise TypeError(f"prompt and response must be strings, got {type(prompt).__name__} and "
                        f"{type(response).__name__}")
    if not prompt.strip() or not response.strip():
        raise ValueError(f"prompt and response must be non-empty, got {prompt!r} and {response!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if method not in ("batched", "copies"):
        raise ValueError(f"method must be 'batched' or 'copies', got {method!r}")
    if max_response_tokens is not None and (not isinstance(max_response_tokens, int)
                                            or max_response_tokens < 1):
        raise ValueError(f"max_response_tokens must be None or a positive int, got "
                         f"{max_response_tokens!r}")
    prompt_text, response_text = prompt.strip(), response.strip()
    ids, offsets, prompt_pos, response_pos = _split_tokens(lm.tokenizer, prompt_text, response_text)
    response_pos = response_pos[:max_response_tokens]
    model = lm.model
    input_ids = torch.tensor([ids], device=lm.device)
    n_prompt = prompt_pos[-1] + 1  # forward positions 0..n_prompt-1 hold BOS + prompt
    scores = torch.zeros(len(prompt_pos), len(response_pos), dtype=torch.float64)
    # dropout would make the gradient random
    with eval_mode(model), torch.enable_grad(), capture(lm, "embed", grad=True) as acts:
        run = _batched if method == "batched" else _copies
        run(model, acts, input_ids, response_pos, prompt_pos, n_prompt, batch_size, scores)
    tok = lm.tokenizer
    return Attribution(
        scores=scores.to(model.dtype if model.dtype.is_floating_point else torch.float32),
        prompt_tokens=[tok.decode([ids[i]]) for i in prompt_pos],
        response_tokens=[tok.decode([ids[i]]) for i in response_pos],
        prompt_offsets=[offsets[i] for i in prompt_pos],
        prompt_text=prompt_text, response_text=response_text,
        meta=dict(model=getattr(lm, "name", "model")))


def _batched(model, acts, input_ids, response_pos, prompt_pos, n_prompt, batch_size, scores):
    """One forward; per chunk of response tokens, one vmapped backward (rows of an identity)."""
    length = response_pos[-1]
    batch = input_ids[:, :length]
    logits = model(input_ids=batch, attention_mask=torch.ones_like(batch),
                   logits_to_keep=len(response_pos)).logits[0]  # predicts response_pos
    target = input_ids[0, response_pos]
    probs = logits.softmax(-1).gather(-1, target[:, None])[:, 0]  # [M]
    embed = acts["embed"]
    m = len(response_pos)
    size = min(batch_size, m)
    # every chunk the same size (the last padded with zero rows): a second vmapped backward of
    # another batch size through the same graph fails in torch 2.x
    eye = torch.eye(m, -(-m // size) * size, dtype=probs.dtype, device=probs.device).T
    for lo in range(0, m, size):
        (grad,) = torch.autograd.grad(probs, embed, grad_outputs=eye[lo:lo + size],
                                      is_grads_batched=True, retain_graph=lo + size < m)
        part = (grad * embed)[:, 0, prompt_pos[0]:n_prompt].sum(-1)  # [size, prompt_tokens]
        n = min(size, m - lo)
        scores[:, lo:lo + n] = part[:n].detach().double().T.cpu()


def _copies(model, acts, input_ids, response_pos, prompt_pos, n_prompt, batch_size, scores):
    """Left-padded copies cut before each response token; one backward per chunk of copies."""
    ids0 = int(input_ids[0, 0])
    for lo in range(0, len(response_pos), batch_size):
        chunk = response_pos[lo:lo + batch_size]
        length = max(chunk)  # copy j holds tokens 0..chunk[j]-1
        pads = [length - pos for pos in chunk]
        batch = torch.full((len(chunk), length), ids0, device=input_ids.device)
        mask = torch.zeros_like(batch)
        for j, (pos, pad) in enumerate(zip(chunk, pads)):
            batch[j, pad:] = input_ids[0, :pos]
            mask[j, pad:] = 1
        logits = model(input_ids=batch, attention_mask=mask, position_ids=position_ids(mask),
                       logits_to_keep=LAST_POSITION).logits[:, -1]  # [c, vocab]
        target = input_ids[0, chunk]
        probs = logits.softmax(-1).gather(-1, target[:, None]).sum()
        embed = acts["embed"]
        (grad,) = torch.autograd.grad(probs, embed)
        gx = (grad * embed).sum(-1)  # [c, length]
        for j, pad in enumerate(pads):
            scores[:, lo + j] = gx[j, pad + prompt_pos[0]:pad + n_prompt].detach().double().cpu()


def _as_matrix(x, name: str) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a numeric matrix, got {type(x).__name__}") from error
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [prompt_tokens, response_tokens], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def quantize_attribution(scores, levels: int = 10) -> np.ndarray:
    """Paper step 3: ReLU, divide each response column by its max over the prompt, ceil(levels x value).

    ``scores`` ``[prompt_tokens, response_tokens]`` -> ints in ``0..levels``, same shape.
    A column with no positive entry is all 0.
    """
    if not isinstance(levels, (int, np.integer)) or isinstance(levels, bool) or levels < 1:
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    a = np.maximum(_as_matrix(scores, "scores"), 0.0)
    top = a.max(axis=0, keepdims=True)
    scaled = np.divide(a, top, out=np.zeros_like(a), where=top > 0)
    return np.ceil(levels * scaled).astype(np.int64)


def importance_density(levels, b: int = 7, p: float = 4) -> np.ndarray:
    """Paper steps 4-5: levels <= ``b`` set to 0; S_n = L1 / Lp norm over response tokens; / max_n S_n.

    ``levels`` ``[prompt_tokens, response_tokens]`` -> ``[prompt_tokens]`` in [0, 1]; a row with
    no level above ``b`` has density 0 (and all-zero input gives all zeros).
    """
    if not (isinstance(p, (int, float)) and p > 1):
        raise ValueError(f"p must be a number > 1, got {p!r}")
    if not isinstance(b, (int, float)) or isinstance(b, bool):
        raise TypeError(f"b must be a number, got {type(b).__name__}")
    a = _as_matrix(levels, "levels")
    if (a < 0).any():
        raise ValueError("levels must be non-negative (quantize_attribution output)")
    a = np.where(a <= b, 0.0, a)
    l1 = a.sum(axis=1)
    lp = (a ** p).sum(axis=1) ** (1.0 / p)
    s = np.divide(l1, lp, out=np.zeros_like(l1), where=lp > 0)
    top = s.max() if s.size else 0.0
    return s / top if top > 0 else s


def instruction_score(density, instruction_mask) -> float:
    """Paper step 6: sum of density over instruction tokens / log2(2 + number of instruction tokens)."""
    d = np.asarray(density.detach().cpu() if torch.is_tensor(density) else density, dtype=np.float64)
    m = np.asarray(instruction_mask.cpu() if torch.is_tensor(instruction_mask) else instruction_mask)
    if d.ndim != 1:
        raise ValueError(f"density must be 1-D [prompt_tokens], got shape {d.shape}")
    if m.dtype != bool:
        raise TypeError(f"instruction_mask must be a boolean array, got dtype {m.dtype}")
    if m.shape != d.shape:
        raise ValueError(f"instruction_mask has shape {m.shape}, density has {d.shape}")
    return float(d[m].sum() / math.log2(2 + int(m.sum())))


def instruction_mask(prompt_text: str, offsets: list[tuple[int, int]], spans: list[str]) -> np.ndarray:
    """Prompt tokens whose character span overlaps an instruction span (first occurrence), ``[tokens]`` bool."""
    if isinstance(spans, str):
        raise TypeError("spans must be a list of strings, not one string")
    mask = np.zeros(len(offsets), dtype=bool)
    for span in spans:
        span = span.strip()
        start = prompt_text.find(span) if span else -1
        if start < 0:
            raise ValueError(f"instruction span {span!r} is not in the prompt {prompt_text!r}")
        end = start + len(span)
        for i, (s, e) in enumerate(offsets):
            if max(s, start) < min(e, end):
                mask[i] = True
    return mask
