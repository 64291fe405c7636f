"""Leave the user's world as it was found: train/eval flags, ``requires_grad`` and the attention
implementation are saved on entry and put back on exit (also on errors), module by module; so is
torch's thread count; and a training run that fails or diverges (:func:`check_loss`) gives its
weights back (:func:`restored_on_error`)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch


@contextmanager
def training_mode(model: torch.nn.Module, training: bool):
    """Every module in train (``True``) or eval mode inside; each module's own flag restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


def eval_mode(model: torch.nn.Module):
    """Dropout off inside (:func:`training_mode` with ``False``)."""
    return training_mode(model, False)


@contextmanager
def frozen(model: torch.nn.Module):
    """:func:`eval_mode` and no parameter requiring gradients inside; both restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model):
        try:
            for p, _ in flags:
                p.requires_grad_(False)
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


@contextmanager
def eager_attention(model: torch.nn.Module):
    """transformers' ``"eager"`` attention inside (the implementation that computes the attention
    weights, so ``output_attentions=True`` returns them; SDPA and flash attention do not); every
    config's own implementation put back after."""
    configs = _attention_configs(model)
    saved = [(config, config._attn_implementation_internal) for config in configs]
    try:
        if any(value != "eager" for _, value in saved):
            model.set_attn_implementation("eager")
        yield model
    finally:
        # written back attribute by attribute: set_attn_implementation would re-check and
        # re-dispatch, and could normalise a value the user had set
        for config, value in saved:
            config._attn_implementation_internal = value


def _attention_configs(model: torch.nn.Module) -> list:
    """Every config of ``model``'s (sub)models and their sub-configs that names an attention
    implementation."""
    found, stack = {}, [getattr(m, "config", None) for m in model.modules()]
    while stack:
        config = stack.pop()
        if config is None or id(config) in found or \
                not hasattr(config, "_attn_implementation_internal"):
            continue
        found[id(config)] = config
        stack += [getattr(config, key, None) for key in getattr(config, "sub_configs", {})]
    if not found or not callable(getattr(model, "set_attn_implementation", None)):
        raise TypeError(f"{type(model).__name__} is not a transformers model with a selectable "
                        f"attention implementation, so its attention weights cannot be read")
    return list(found.values())


@contextmanager
def one_thread():
    """Run torch single-threaded inside, then restore the caller's setting.

    For thousands of tiny ops (probe fits, exercise checks): intra-op threads only add
    synchronisation, and on a busy machine they made a probe's step 100x slower (24 ms vs 0.3 ms
    measured on 2 shared cores; 170 s vs 60 s for a CCS sweep of one dataset).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TrainingDiverged(FloatingPointError):
    """A training loss became NaN or infinite; the weights were restored before this was raised."""


def check_loss(loss, step: int, what: str, fix: str) -> None:
    """Raise :class:`TrainingDiverged` naming ``what``, the ``step`` and ``fix`` when ``loss`` (a
    number or 0-d tensor) is not finite."""
    value = float(loss.detach() if torch.is_tensor(loss) else loss)
    if not math.isfinite(value):
        raise TrainingDiverged(f"{what} diverged at step {step}: the loss is {value}; the weights "
                               f"before training are restored. {fix}")


@contextmanager
def restored_on_error(module: torch.nn.Module):
    """Every parameter and buffer of ``module`` put back (in place, copied from the CPU) if the
    block raises, e.g. :class:`TrainingDiverged`."""
    saved = {name: t.detach().to("cpu", copy=True) for name, t in module.state_dict().items()}
    try:
        yield module
    except BaseException:
        with torch.no_grad():
            for name, t in module.state_dict(keep_vars=True).items():
                t.copy_(saved[name])
        raise
