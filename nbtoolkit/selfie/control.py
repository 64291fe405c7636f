"""SelfIE control (Chen et al. 2024, §5): edit one block's MLP so that what SelfIE reads from a
hidden state changes, then see what else changed.

    with supervised_control(lm, prompt, token=5, layer=6, target=v) as edit:
        interpret(lm, prompt, tokens=[5], layers=[6])   # the edited model speaks
    # the original weights are back here, bit for bit
    edit = reinforcement_control(lm, prompt, layer=6, judge=keyword_judge(["bomb"]))
    edit.restore()                                        # or edit.keep() inside a `with`

Layer ℓ's hidden state (site ``layer.{ℓ}``) is the residual stream after block ℓ: its attention
output plus its MLP output plus what came in. Both controls train the weights of block ℓ's MLP
only (the SelfIE repo's ``layers[source_layer - 1].mlp``: its ``hidden_states[ℓ + 1]`` is our
layer ℓ), with Adam (lr 3e-4), and compute the states by running block ℓ alone on the
residual stream entering it (cached once: nothing below the edited MLP changes), so each step
costs one block's forward and backward.

- **Supervised**: the state h of one token moves to a target vector (e.g. another prompt's state
  that SelfIE reads as "a type of drink"): loss ``mean((h − target)²)``, ≤ 20 steps.
- **Reinforcement**: each step SelfIE interprets the states of the prompt's tokens under the
  current weights, a judge (any callable ``text -> reward``, e.g. −1 harmful / +1 harmless)
  scores each interpretation, and the loss ``−mean_i r_i · h_i·sg(h_i) / ‖sg(h_i)‖²`` (sg =
  stop-gradient) pushes each state along itself: grows it when rewarded, shrinks it when
  punished. h is the hidden state the interpretation reads (MLP output + residual), as the
  authors' notebook computes it; its value is always −mean(r), only its gradient matters.

Edits are reversible: the returned :class:`MLPEdit` holds the original weights; ``restore()``
writes them back, and as a context manager it restores on exit (also after an exception) unless
``keep()`` was called. A failed training run restores before it raises. ``requires_grad`` and
train/eval modes are put back after training.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import (families_with, family_of, require, residual_site, site_name,
                            weight)
from ..core.blocks import body, run_blocks
from ..core.hooks import capture
from ..core.lm import LAST_POSITION
from ..core.modes import frozen
from .interpretation import SUPPORTED_KINDS, check_indices, interpret_vectors

LEARNING_RATE = 3e-4  # the SelfIE repo's Adam learning rate, both controls


class MLPEdit:
    """A reversible edit of block ``layer``'s MLP weights (``module``).

    ``original``: a copy of the weights before the edit; ``restore()`` writes them back bit for
    bit. ``history``: one row per optimisation step (``step, loss`` and, for reinforcement,
    ``mean_reward`` and the interpretations the rewards came from); :meth:`to_frame` is it as a
    table.
    """

    def __init__(self, module: torch.nn.Module, layer: int):
        self.module, self.layer = module, layer
        self.original = {name: t.detach().clone() for name, t in module.state_dict().items()}
        self.history: list[dict] = []
        self._keep = False

    def restore(self) -> None:
        """Put the original weights back (idempotent)."""
        with torch.no_grad():
            for name, tensor in self.module.state_dict(keep_vars=True).items():
                tensor.copy_(self.original[name])

    def keep(self) -> None:
        """Leave the edited weights in place when the ``with`` block ends."""
        self._keep = True

    def to_frame(self) -> pd.DataFrame:
        """The history, one row per step: columns step, loss (and, for reinforcement,
        mean_reward, interpretations, rewards); columns step, loss and no rows before any step."""
        return pd.DataFrame(self.history) if self.history else pd.DataFrame(columns=["step", "loss"])

    def __enter__(self) -> "MLPEdit":
        return self

    def __exit__(self, *exc) -> bool:
        if not self._keep:
            self.restore()
        return False

    def __repr__(self):
        return f"MLPEdit(layer={self.layer}, steps={len(self.history)})"


def supervised_control(lm, prompt: str, *, token: int, layer: int, target: torch.Tensor,
                       steps: int = 20, lr: float = LEARNING_RATE) -> MLPEdit:
    """Train block ``layer``'s MLP so that the hidden state at (``token``, ``layer``) of
    ``prompt`` becomes ``target`` ``[d_model]``: loss ``mean((h − target)²)``, ``steps`` Adam
    steps. The model is edited in place; the returned :class:`MLPEdit` restores it.
    ``history``: the loss before each step and, last, after the final one."""
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"token must be one token index (an int), got {token!r}")
    target = _check_target(target, lm.d_model)
    _check_steps(steps, lr)
    state = _layer_state(lm, prompt, layer)
    t = check_indices("token", token, state.n_tokens, allow_negative=True)[0]
    edit = MLPEdit(_mlp_module(lm, layer), layer)

    def loss_of_step(step):
        h = state()[t]
        loss = torch.nn.functional.mse_loss(h.float(), target.to(h.device, torch.float32))
        edit.history.append(dict(step=step, loss=float(loss.detach())))
        return loss
    _train(lm, edit, loss_of_step, steps, lr)
    return edit


def reinforcement_control(lm, prompt: str, *, layer: int, judge: Callable[[str], float],
                          tokens: Sequence[int] | None = None, steps: int = 11,
                          lr: float = LEARNING_RATE, insert_layer: int = 2,
                          template: str | None = None, max_new_tokens: int = 30) -> MLPEdit:
    """Train block ``layer``'s MLP with rewards from ``judge`` on SelfIE's interpretations of the
    states of ``tokens`` (default all) at ``layer``: each step interprets the current states
    (:func:`~nbtoolkit.selfie.interpretation.interpret_vectors` with ``insert_layer``, ``template``,
    ``max_new_tokens``; the repo's control notebooks insert at block 2), takes r_i =
    ``judge(text_i)`` (a finite number: ±1, 0 for no opinion) and one Adam step on
    :func:`reinforcement_loss`. ``history``: per step the loss, mean reward, rewards and
    interpretations, and a last row with those of the edited states."""
    if not callable(judge):
        raise TypeError(f"judge must be a callable text -> reward (e.g. keyword_judge([...])), "
                        f"got {type(judge).__name__}")
    _check_steps(steps, lr)
    state = _layer_state(lm, prompt, layer)
    rows = check_indices("token", tokens, state.n_tokens, allow_negative=True)
    edit = MLPEdit(_mlp_module(lm, layer), layer)

    def loss_of_step(step):
        states = state()[rows]
        texts = interpret_vectors(lm, states, insert_layer=insert_layer, template=template,
                                  max_new_tokens=max_new_tokens)
        rewards = torch.tensor([_reward(judge, text) for text in texts])
        loss = reinforcement_loss(states, rewards)
        edit.history.append(dict(step=step, loss=float(loss.detach()), mean_reward=float(rewards.mean()),
                                 interpretations=texts, rewards=rewards.tolist()))
        return loss
    _train(lm, edit, loss_of_step, steps, lr)
    return edit


def reinforcement_loss(states: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """SelfIE's reinforcement loss ``−mean_i r_i · h_i·sg(h_i) / ‖sg(h_i)‖²`` of ``states``
    ``[n, d]`` and ``rewards`` ``[n]``; its gradient in h_i is ``−r_i · h_i / (n ‖h_i‖²)``."""
    fixed = states.detach().float()
    along = (states.float() * fixed).sum(-1) / fixed.pow(2).sum(-1)
    return -(rewards.to(along.device, along.dtype) * along).mean()


def keyword_judge(words: Sequence[str], *, found: float = -1.0,
                  absent: float = 1.0) -> Callable[[str], float]:
    """An offline judge: ``found`` (−1) when the text contains a word beginning with any of
    ``words`` (case-insensitive: ``"explos"`` matches "Explosives"), ``absent`` (+1) otherwise."""
    words = [words] if isinstance(words, str) else list(words)
    if not words or any(not isinstance(w, str) or not w.strip() for w in words):
        raise ValueError(f"keyword_judge needs non-empty strings, got {words!r}")
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w.strip()) for w in words) + ")",
                         re.IGNORECASE)

    def judge(text: str) -> float:
        return found if pattern.search(text) else absent
    judge.words = words
    return judge


def chat_judge(judge_lm, question: str, *, yes: float = -1.0, no: float = 1.0,
               max_new_tokens: int = 5) -> Callable[[str], float]:
    """A judge asking a chat model ``question`` (with ``{text}`` where the interpretation goes,
    answered 1 for yes, 0 for no, as the SelfIE repo's evaluator): ``yes`` when the answer
    contains "1" before any "0", ``no`` when "0" comes first, 0 when it has neither."""
    if "{text}" not in question:
        raise ValueError(f"question must contain '{{text}}' where the interpretation goes, "
                         f"got {question!r}")

    def judge(text: str) -> float:
        messages = [{"role": "user", "content": question.format(text=text)}]
        prompt = judge_lm.tokenizer.apply_chat_template(messages, tokenize=False,
                                                        add_generation_prompt=True)
        answer = judge_lm.generate(prompt, max_new_tokens=max_new_tokens)[0]
        digits = re.findall(r"[01]", answer)
        return 0.0 if not digits else yes if digits[0] == "1" else no
    return judge


FACT_COLUMNS = ["prompt", "subject", "attribute", "response", "correct"]


@dataclass
class FactCheck:
    """The known-fact check of one model: per fact its ``prompts``, ``subjects``, ``attributes``,
    the model's ``responses`` and whether each is ``correct`` (``[n_facts]`` bool)."""

    prompts: list[str]
    subjects: list[str | None]
    attributes: list[str]
    responses: list[str]
    correct: np.ndarray

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def accuracy(self) -> float:
        """The share of facts answered correctly."""
        return float(self.correct.mean())

    def to_frame(self) -> pd.DataFrame:
        """One row per fact: ``prompt, subject, attribute, response, correct``."""
        return pd.DataFrame(dict(prompt=self.prompts, subject=self.subjects,
                                 attribute=self.attributes, response=self.responses,
                                 correct=self.correct), columns=FACT_COLUMNS)


@torch.no_grad()
def fact_accuracy(lm, facts: Sequence[dict], *, max_new_tokens: int = 8,
                  batch_size: int = 32) -> FactCheck:
    """The SelfIE repo's known-fact check: a fact is correct when its ``attribute`` occurs
    (case-insensitive) in the greedy continuation of its ``prompt`` (``max_new_tokens``).
    Returns :class:`FactCheck`, one entry per fact."""
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size}, "
                         f"{max_new_tokens}")
    responses = []
    for start in range(0, len(facts), batch_size):
        chunk = facts[start:start + batch_size]
        responses += lm.generate([f["prompt"] for f in chunk], max_new_tokens=max_new_tokens)
    attributes = [f["attribute"] for f in facts]
    return FactCheck(prompts=[f["prompt"] for f in facts], subjects=[f.get("subject") for f in facts],
                     attributes=attributes, responses=responses,
                     correct=np.array([a.lower() in r.lower() for a, r in zip(attributes, responses)],
                                      dtype=bool))


# ---------------------------------------------------------------- internals

class _LayerState:
    """``state()``: the hidden states ``[T, d_model]`` at ``layer`` of a prompt, differentiable
    in block ``layer``'s weights: block ``layer`` runs alone on the cached residual stream that
    enters it (an edit of its MLP changes nothing below)."""

    def __init__(self, lm, prompt: str, layer: int):
        self.lm, self.site = lm, site_name(layer)
        self.layer = layer
        with torch.no_grad(), capture(lm, [residual_site(layer - 1)]) as acts:
            lm.model(input_ids=lm.encode(prompt)["input_ids"], use_cache=False,
                     logits_to_keep=LAST_POSITION)
        self.entering = acts[residual_site(layer - 1)]  # [1, T, d]
        self.n_tokens = self.entering.shape[1]

    def __call__(self) -> torch.Tensor:
        with torch.enable_grad(), capture(self.lm, [self.site], grad=True) as acts, \
                run_blocks(self.lm, self.layer, self.layer + 1):
            body(self.lm)(inputs_embeds=self.entering, use_cache=False)
        return acts[self.site][0]


def _layer_state(lm, prompt: str, layer) -> _LayerState:
    require(lm.model, "SelfIE control", SUPPORTED_KINDS)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    n = lm.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise ValueError(f"layer {layer!r} is out of range: the edited MLP is block ℓ's, "
                         f"ℓ in 0..{n - 1}")
    return _LayerState(lm, prompt, layer)


def _mlp_module(lm, layer: int) -> torch.nn.Module:
    """The module holding block ``layer``'s own MLP weights (the anatomy's ``mlp_weights``)."""
    module = weight(lm.model, layer, "mlp_weights")
    if module is None:
        raise ValueError(f"SelfIE control trains one module holding the MLP's weights; family "
                         f"{family_of(lm.model)!r} keeps them in separate modules and has none "
                         f"(families with one: {', '.join(families_with(('mlp_weights',)))})")
    return module


def _train(lm, edit: MLPEdit, loss_of_step: Callable[[int], torch.Tensor], steps: int,
           lr: float) -> None:
    """``steps`` Adam steps on the edit's MLP (everything else frozen, eval mode), then one more
    loss for the history. On any error the weights are restored before it propagates."""
    try:
        with frozen(lm.model):
            params = list(edit.module.parameters())
            for p in params:
                p.requires_grad_(True)
            optimizer = torch.optim.Adam(params, lr=lr)
            for step in range(steps):
                optimizer.zero_grad()
                loss_of_step(step).backward()
                optimizer.step()
            with torch.no_grad():
                loss_of_step(steps)
    except BaseException:
        edit.restore()
        raise


def _check_target(target, d_model: int) -> torch.Tensor:
    if not torch.is_tensor(target):
        raise TypeError(f"target must be a torch.Tensor [d_model={d_model}] (e.g. a hidden state "
                        f"from nbtoolkit.selfie.hidden_states), got {type(target).__name__}")
    if tuple(target.shape) != (d_model,) or not torch.isfinite(target).all():
        raise ValueError(f"target must be a finite vector of shape ({d_model},), got shape "
                         f"{tuple(target.shape)}")
    return target.detach()


def _check_steps(steps, lr) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
            or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _reward(judge, text: str) -> float:
    reward = judge(text)
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or \
            not math.isfinite(reward):
        raise TypeError(f"judge must return a finite number (e.g. -1 or +1), got {reward!r} "
                        f"for {text!r}")
    return float(reward)
