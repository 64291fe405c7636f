"""What an exercise check says, and the few tools every check uses.

A check runs the student's function on small cases against nbtoolkit's own implementation and
returns a :class:`Feedback`: *passed*, *not done yet* (the untouched stub raised
``NotImplementedError``) or *failed*, saying what differs in the method's own words. While
nbgrader autogrades or validates a notebook it sets ``NBGRADER_EXECUTION``; a check that did not
pass then raises :class:`ExerciseFailed` with the same message, so its grade cell scores 0, and a
check that passed prints its message and returns None (nbgrader would read a displayed value as
a partial score).

Inside a check: :func:`call` runs the student's function (its errors become feedback, not a
traceback), :func:`tensor` / :func:`number` read its answer and check the shape, and
:func:`expect` compares it with the reference, then with the anticipated wrong answers, each
computed only when the answer is wrong. :func:`tiny_lm` and :func:`captured` give the small
model the checks run on and its activations.
"""

from __future__ import annotations

import os
import random
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.modes import one_thread

PASSED, NOT_DONE, FAILED = "passed", "not done yet", "failed"
HEADLINES = {PASSED: "✔ Correct", NOT_DONE: "… Not done yet", FAILED: "✘ Not yet right"}
STUB_HINT = ("replace `raise NotImplementedError()` with your code, run that cell, then run "
             "this check again.")


@dataclass(frozen=True)
class Feedback:
    """A check's verdict on one exercise: ``status`` is passed, not done yet or failed."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self) -> str:
        return f"{HEADLINES[self.status]} (exercise {self.exercise}): {self.message}"

    __repr__ = __str__


class Wrong(Exception):
    """Raised inside a check when the answer is wrong; the message says how, for the student."""


class ExerciseFailed(AssertionError):
    """A check that did not pass while nbgrader grades (the message is the feedback)."""


def run_check(exercise: str, student: Callable, check: Callable[[Callable], str]) -> Feedback | None:
    """Run ``check(student)`` (returns the success message or raises :class:`Wrong`) on one
    thread, leaving the global random state as it was, so a tutorial's later numbers do not move."""
    if not callable(student):
        raise TypeError(f"pass your function itself to the check (e.g. check_x(my_function), "
                        f"without calling it), got a {type(student).__name__}")
    with _kept_state():
        try:
            feedback = Feedback(exercise, PASSED, check(student))
        except NotImplementedError:
            feedback = Feedback(exercise, NOT_DONE, STUB_HINT)
        except Wrong as wrong:
            feedback = Feedback(exercise, FAILED, str(wrong))
    if os.environ.get("NBGRADER_EXECUTION"):
        if not feedback.passed:
            raise ExerciseFailed(str(feedback))
        print(feedback)
        return None
    return feedback


@contextmanager
def _kept_state():
    """One torch thread (checks run tiny ops, which threads only slow down on a busy machine),
    then the caller's thread count and random states back."""
    python, numpy = random.getstate(), np.random.get_state()
    try:
        with one_thread(), torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)


def call(student: Callable, *args, **kwargs):
    """``student(*args, **kwargs)``; an error in the student's code becomes :class:`Wrong`
    naming the error and the line of the student's cell (the stub's NotImplementedError passes)."""
    try:
        return student(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:
        code = getattr(student, "__code__", None)
        lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
                 if code is not None and frame.filename == code.co_filename]
        where = f" (line {lines[-1]} of your function's cell)" if lines else ""
        raise Wrong(f"your function raised {type(error).__name__}: {error}{where}") from None


def tensor(value, what: str, shape: Sequence[int]) -> torch.Tensor:
    """The student's answer as a float64 CPU tensor of ``shape``; :class:`Wrong` otherwise."""
    shape = tuple(shape)
    if isinstance(value, (list, tuple, np.ndarray, np.generic, bool, int, float)):
        try:
            value = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            raise Wrong(f"{what} should be numbers of shape {list(shape)}, got {value!r:.80}") from None
    if not torch.is_tensor(value):
        raise Wrong(f"{what} should be a tensor of shape {list(shape)}, got a "
                    f"{type(value).__name__}")
    if tuple(value.shape) != shape:
        hint = ""
        if tuple(value.shape) == (1, *shape):
            hint = ": drop the batch axis of 1 (take [0])"
        elif value.dim() == 2 and tuple(value.shape) == shape[::-1]:
            hint = ": the two axes are swapped"
        raise Wrong(f"{what} has shape {list(value.shape)}, expected {list(shape)}{hint}")
    value = value.detach().to("cpu", torch.float64)
    if not torch.isfinite(value).all():
        raise Wrong(f"{what} contains NaN or infinite values (a division by zero?)")
    return value


def number(value, what: str) -> float:
    """The student's answer as one float; :class:`Wrong` for anything else."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        size = value.numel() if torch.is_tensor(value) else value.size
        if size != 1:
            raise Wrong(f"{what} should be one number, got an array of shape {list(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise Wrong(f"{what} should be a number, got a {type(value).__name__}")
    if not np.isfinite(value):
        raise Wrong(f"{what} is {value}, not a finite number")
    return float(value)


def unchanged(value: torch.Tensor, copy: torch.Tensor, name: str) -> None:
    """:class:`Wrong` if the student's function changed its input ``name`` in place."""
    if not torch.equal(value, copy):
        raise Wrong(f"you changed `{name}` in place; build a new tensor (torch.where, or "
                    f"{name}.clone() first): the caller still needs its {name}")


def close(a, b, rtol: float = 1e-4, atol: float = 1e-7) -> bool:
    """Equal up to float32 rounding: every |a − b| ≤ rtol · max|b| + atol (the tolerance scales
    with the answer's size, as rounding does; different shapes are not close)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return False
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool(((a - b).abs() <= rtol * scale + atol).all())


def expect(got, want, wrong: Sequence[tuple[Callable[[], object], str]], otherwise: str,
           rtol: float = 1e-4, atol: float = 1e-7) -> None:
    """Return if ``got`` equals ``want``; else raise :class:`Wrong` with the message of the first
    anticipated wrong answer ``(make_value, message)`` that ``got`` equals, or ``otherwise``
    followed by where the answer differs most."""
    if close(got, want, rtol, atol):
        return
    for make, message in wrong:
        if close(got, make(), rtol, atol):
            raise Wrong(message)
    a = torch.as_tensor(got, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(want, dtype=torch.float64).reshape(-1)
    i = int((a - b).abs().argmax())
    at = f" at flat index {i}" if b.numel() > 1 else ""
    raise Wrong(f"{otherwise} (yours: {a[i].item():.6g}, expected {b[i].item():.6g}{at})")


def tiny_lm():
    """A fresh tiny random Llama (3 blocks, d_model 64, byte-level tokens): every check gets its
    own, so a hook a wrong answer left behind cannot leak into the next check."""
    from ..core.tiny import tiny_model

    return tiny_model("llama", seed=0)


def captured(lm, prompt: str, site: str) -> torch.Tensor:
    """The activation at ``site`` while ``lm`` reads ``prompt``, ``[seq, ...]`` (batch axis dropped)."""
    from ..core.hooks import capture

    with torch.no_grad(), capture(lm, site) as acts:
        lm.model(**lm.encode(prompt))
    return acts[site][0]
