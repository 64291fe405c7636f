"""Checks for notebook 08 (SelfIE control): the supervised loss, the reinforcement loss with its
stop-gradient, and the edited block's state computed from the cached stream entering it, against
:mod:`nbtoolkit.selfie.control`."""

from __future__ import annotations

import torch

from ..core.anatomy import residual_site, site_name, weight
from ..core.blocks import body, run_blocks
from ..core.hooks import capture
from ..selfie.control import reinforcement_loss
from .feedback import Feedback, Wrong, call, captured, expect, run_check, tensor, tiny_lm

PROMPT = "The Eiffel Tower is in Paris"


def _loss(value, what: str) -> torch.Tensor:
    """The student's loss: one number that a backward() can go through."""
    if not torch.is_tensor(value) or value.numel() != 1:
        raise Wrong(f"{what} should be a one-number tensor (a loss to call .backward() on), got "
                    f"{type(value).__name__}{list(value.shape) if torch.is_tensor(value) else ''}")
    if not value.requires_grad:
        raise Wrong(f"{what} carries no gradient: keep it a torch expression of `states` (no "
                    f".item(), .detach(), numpy or torch.no_grad()), or the optimiser learns nothing")
    return value.reshape(())


def _value_and_gradient(loss_fn, states: torch.Tensor, *args) -> torch.Tensor:
    """``[loss, *d loss / d states]`` of ``loss_fn(states, *args)`` for a fresh leaf copy of states."""
    leaf = states.detach().clone().requires_grad_(True)
    loss = _loss(loss_fn(leaf, *args), "your loss")
    (gradient,) = torch.autograd.grad(loss, leaf, allow_unused=True)
    gradient = torch.zeros_like(leaf) if gradient is None else gradient
    return torch.cat([loss.detach()[None], gradient.reshape(-1)]).double()


# ---------------------------------------------------------------- 08.1

def check_supervised_loss(supervised_loss) -> Feedback | None:
    """Exercise 08.1: ``supervised_loss(states, token, target)``: the squared error
    ``mean((h − target)²)`` between the state ``h = states[token]`` (states ``[T, d]``) and
    ``target`` ``[d]``."""
    return run_check("08.1", supervised_loss, _supervised_loss)


def _supervised_loss(student) -> str:
    g = torch.Generator().manual_seed(0)
    states, target = torch.randn(6, 8, generator=g), torch.randn(8, generator=g)
    for token in (2, -1):
        want = _value_and_gradient(lambda h, t, v: ((h[t] - v) ** 2).mean(), states, token, target)
        got = _value_and_gradient(lambda h, t, v: call(student, h, t, v), states, token, target)
        expect(got, want, [
            (lambda: _value_and_gradient(lambda h, t, v: ((h - v) ** 2).mean(), states, token, target),
             "the loss reads one state, states[token]: you averaged over every token of the prompt"),
            (lambda: _value_and_gradient(lambda h, t, v: ((h[t] - v) ** 2).sum(), states, token, target),
             "average the squared error over the d_model coordinates (mean, as the repo's MSELoss "
             "does), not sum"),
            (lambda: _value_and_gradient(lambda h, t, v: (h[t] - v).norm(), states, token, target),
             "the loss is the squared error mean((h − target)²), not the distance ‖h − target‖"),
            (lambda: _value_and_gradient(lambda h, t, v: ((h[-1] - v) ** 2).mean(), states, token,
                                         target),
             f"you used the last token's state; the edited state is the one at `token` ({token})"),
        ], f"your loss (first entry) or its gradient differs for token {token}")
    return ("the state of one token is pulled to its target by the squared error; only block ℓ's "
            "MLP moves, so everything below it stays as it was.")


# ---------------------------------------------------------------- 08.2

def check_reinforcement_loss(reinforcement_loss_fn) -> Feedback | None:
    """Exercise 08.2: ``reinforcement_loss(states, rewards)`` = ``−mean_i r_i · h_i·sg(h_i) /
    ‖sg(h_i)‖²`` (states ``[n, d]``, rewards ``[n]``, sg = stop-gradient)."""
    return run_check("08.2", reinforcement_loss_fn, _reinforcement_loss)


def _reinforcement_loss(student) -> str:
    g = torch.Generator().manual_seed(0)
    states = torch.randn(5, 8, generator=g) * torch.tensor([0.5, 1, 2, 4, 8])[:, None]
    rewards = torch.tensor([1.0, -1.0, 1.0, 0.0, -1.0])
    want = _value_and_gradient(reinforcement_loss, states, rewards)
    got = _value_and_gradient(lambda h, r: call(student, h, r.clone()), states, rewards)

    def variant(loss):
        return lambda: _value_and_gradient(loss, states, rewards)

    def dot(h, other): return (h * other).sum(-1)
    expect(got, want, [
        (variant(lambda h, r: -(r * dot(h, h) / dot(h, h)).mean()),
         "without the stop-gradient h·h / ‖h‖² is 1 for every h: its gradient is zero and nothing "
         "is learned. Detach one factor of the numerator and the denominator: h·sg(h) / ‖sg(h)‖²"),
        (variant(lambda h, r: -(r * dot(h, h) / dot(h, h.detach()).detach()).mean()),
         "the numerator is h·sg(h): with h·h its gradient doubles"),
        (variant(lambda h, r: (r * dot(h, h.detach()) / dot(h, h).detach()).mean()),
         "the sign: the loss is −r·…, so minimising it grows a rewarded state (r = +1) and "
         "shrinks a punished one"),
        (variant(lambda h, r: -(r * dot(h, h.detach()) / dot(h, h).detach()).sum()),
         "average over the states (mean), not sum"),
        (variant(lambda h, r: -(r * dot(h, h.detach())).mean()),
         "divide by ‖sg(h)‖²: each state is pushed along itself by an amount that does not "
         "depend on its size"),
    ], "your loss (first entry) or its gradient in the states differs")
    return ("the value is always −mean(r); only the gradient matters: −r_i · h_i / (n ‖h_i‖²) "
            "grows each rewarded state along itself and shrinks each punished one.")


# ---------------------------------------------------------------- 08.3

def check_block_state(block_state) -> Feedback | None:
    """Exercise 08.3: ``block_state(lm, entering, layer)``: the hidden states at ``layer``
    ``[T, d_model]`` from the stream entering block ``layer`` ``[1, T, d_model]``, by running
    block ``layer`` alone, differentiable in its weights."""
    return run_check("08.3", block_state, _block_state)


def _edited_mlp_gradient(lm, layer: int, run) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``run()``'s states ``[T, d]`` and the gradient of their sum in block ``layer``'s MLP
    weights (None if it has none); every parameter's gradient is cleared before and after."""
    lm.model.zero_grad(set_to_none=True)
    states = run()
    mlp = next(weight(lm.model, layer, "mlp_weights").parameters())
    if torch.is_tensor(states) and states.requires_grad:
        states.sum().backward()
    gradient = None if mlp.grad is None else mlp.grad.clone()
    lm.model.zero_grad(set_to_none=True)
    return states, gradient


def _reference_state(lm, entering: torch.Tensor, start: int, end: int) -> torch.Tensor:
    site = site_name(end - 1)
    with torch.enable_grad(), capture(lm, site, grad=True) as acts, run_blocks(lm, start, end):
        body(lm)(inputs_embeds=entering, use_cache=False)
    return acts[site][0]


def _block_state(student) -> str:
    lm = tiny_lm()
    g = torch.Generator().manual_seed(0)
    for layer in (1, 2):
        # a stream no prompt produces: only block `layer` run on it gives the reference
        entering = captured(lm, PROMPT, residual_site(layer - 1))[None]
        entering = entering + 0.1 * torch.randn(entering.shape, generator=g)
        want, want_gradient = _edited_mlp_gradient(
            lm, layer, lambda: _reference_state(lm, entering, layer, layer + 1))
        got, gradient = _edited_mlp_gradient(
            lm, layer, lambda: call(student, lm, entering.clone(), layer))
        got = tensor(got, "your states", want.shape)
        expect(got, want.detach(), [
            (lambda: entering[0], f"you returned the stream entering block {layer} (layer "
                                  f"{layer - 1}); run block {layer} on it"),
            (lambda: _reference_state(lm, entering, 0, layer + 1).detach(),
             f"you ran blocks 0…{layer} on a stream that has already passed blocks 0…{layer - 1}:"
             f" run block {layer} alone (run_blocks(lm, {layer}, {layer + 1}))"),
            (lambda: _reference_state(lm, entering, layer, layer + 2).detach(),
             f"this is the output of block {layer + 1}; layer {layer} leaves block {layer}"),
        ], f"your states at layer {layer} differ from block {layer} run on the entering stream")
        if gradient is None:
            raise Wrong(f"your states carry no gradient into block {layer}'s MLP: capture with "
                        f"grad=True and do not use torch.no_grad(), or the control cannot train it")
        expect(gradient, want_gradient, [], f"the gradient in block {layer}'s MLP weights differs")
    return ("one block's forward and backward per step: nothing below the edited MLP changes, so "
            "the stream entering its block is computed once and reused.")
