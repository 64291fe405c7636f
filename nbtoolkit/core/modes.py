"""Leave the user's world as it was found: train/eval flags and ``requires_grad`` are saved on
entry and put back on exit (also on errors), module by module; so is torch's thread count."""

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
