"""Leave the user's model as it was found: train/eval flags and ``requires_grad`` are saved on
entry and put back on exit (also on errors), module by module."""

from __future__ import annotations

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
