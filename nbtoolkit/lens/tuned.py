"""The tuned lens (Belrose et al. 2023): an affine translator per layer, trained so that the read-out
of the translated stream matches the model's final distribution.

    tuned = TunedLens(steps=30).fit(lm)          # the package's own text, or fit(lm, texts)
    tuned(lm, "The Eiffel Tower is in")          # a LensResult, as logit_lens gives
    lens_kl(lm, tuned=tuned)                     # KL per layer: tuned vs logit lens
    tuned.save("lenses/smollm2");  TunedLens.load("lenses/smollm2")

Layer ℓ's stream ``h`` is read as ``unembed(h + W_ℓ h + b_ℓ)``; ``W_ℓ = 0, b_ℓ = 0`` at the start
(the identity: the logit lens), then trained by minimising KL(final ‖ lens) summed over layers
(each translator on its own layer), with the tuned-lens project's optimiser: Nesterov SGD at
learning rate 1 in its units (0.1 in torch's, momentum 0.9), weight decay 1e-3, the gradient norm
clipped at 1, the learning rate decaying linearly to 0. (Measured on SmolLM2, 30 steps of 48
tokens: without the clipping this SGD diverges at so few tokens per step; with it, KL at layer 4
falls from 13.8 nats to 5.0.) ``layers`` picks the layers to train (default −1 …
n − 2; the last layer needs no translator: its lens is the model's output): the cost is one
unembedding per token and layer, forward and backward.

Files: ``tuned_lens.json`` (format, model, sizes, layers, settings) and
``tuned_lens.safetensors`` (``weight`` ``[layers, d, d]``, ``bias`` ``[layers, d]``), checked on
load (names, shapes, finite values). The tuned-lens project's released lenses are a
``config.json`` and a ``params.pt``: that file is a pickle (``torch.save``), which nbtoolkit never
loads (a pickle can run code; even ``torch.load(weights_only=True)`` is a restricted unpickler
with a history of bypasses, e.g. CVE-2025-32434). Convert it yourself, once, if you trust it::

    import torch, safetensors.torch
    safetensors.torch.save_file(torch.load("params.pt", weights_only=True), "params.safetensors")

and :meth:`TunedLens.from_tuned_lens_project` reads the folder (``config.json`` +
``params.safetensors``; translator ``i`` reads Hugging Face's ``hidden_states[i]``, our layer
``i − 1``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import NotFittedError

from ..core.anatomy import (check_layers, config_entry, config_value, hf_model, n_layers_of,
                            require)
from ..core.files import atomic_write, write_json
from ..core.modes import frozen
from .logit_lens import SUPPORTED_KINDS, LensResult, read_lens
from .readout import unembed
from .texts import check_texts, lens_texts, residual_batches

FORMAT = 1
CONFIG_FILE, TENSOR_FILE = "tuned_lens.json", "tuned_lens.safetensors"
PROJECT_CONFIG, PROJECT_PICKLE, PROJECT_TENSORS = "config.json", "params.pt", "params.safetensors"
SETTINGS = ("layers", "steps", "tokens_per_step", "lr", "momentum", "weight_decay", "seed")
CLIP = 1.0  # the tuned-lens project's gradient-norm clipping


class TunedLens:
    """An affine translator per layer (see the module docstring). ``__init__`` only stores the
    training settings; :meth:`fit` checks them and trains (scikit-learn's rule).

    ``layers`` to train (``None``: −1 … n − 2); ``steps`` optimiser steps of ``tokens_per_step``
    tokens each (every layer trains on them); ``lr`` in the tuned-lens project's units (torch's
    SGD gets ``lr · (1 − momentum)``), ``momentum``, ``weight_decay``; ``seed`` orders the text. Fitted: ``weight_`` ``[layers, d, d]``, ``bias_`` ``[layers, d]`` (float32),
    ``layers_``, ``model_``, ``d_model_``, ``n_layers_``, ``unembed_hash_``, ``history_`` (mean
    KL over the layers per step) and ``seconds_`` (training time, wall clock)."""

    def __init__(self, *, layers: Sequence[int] | None = None, steps: int = 30,
                 tokens_per_step: int = 48, lr: float = 1.0, momentum: float = 0.9,
                 weight_decay: float = 1e-3, seed: int = 0):
        self.layers, self.steps, self.tokens_per_step = layers, steps, tokens_per_step
        self.lr, self.momentum, self.weight_decay, self.seed = lr, momentum, weight_decay, seed

    def __repr__(self) -> str:
        state = f"fitted on {self.model_!r}" if hasattr(self, "weight_") else "not fitted"
        return f"TunedLens(steps={self.steps}, tokens_per_step={self.tokens_per_step}, {state})"

    # ------------------------------------------------------------ training

    def fit(self, lm, texts: Sequence[str] | None = None, *, progress: bool = False) -> TunedLens:
        """Train one translator per layer on ``texts`` (default the bundled train split)."""
        self._check_settings()
        model = hf_model(lm)
        require(model, "tuned lens", SUPPORTED_KINDS)
        n, d = n_layers_of(model), config_value(model, "d_model")
        layers = self._trained_layers(model, n)
        texts = lens_texts("train") if texts is None else check_texts(texts)
        weight = torch.zeros(len(layers), d, d, device=lm.device, requires_grad=True)
        bias = torch.zeros(len(layers), d, device=lm.device, requires_grad=True)
        optimiser = torch.optim.SGD([weight, bias], lr=self.lr * (1 - self.momentum),
                                    momentum=self.momentum, nesterov=True,
                                    weight_decay=self.weight_decay)
        from transformers import get_linear_schedule_with_warmup
        schedule = get_linear_schedule_with_warmup(optimiser, 0, self.steps)
        stream = _token_stream(lm, texts, [*layers, n - 1], self.tokens_per_step, self.seed)
        history, started = [], time.perf_counter()
        steps = range(self.steps)
        if progress:
            from tqdm.auto import tqdm
            steps = tqdm(steps, desc="tuned lens")
        with frozen(model):
            for _ in steps:
                rows = next(stream)  # [layers + 1, tokens, d]: the trained layers, the last
                with torch.no_grad():
                    final = unembed(lm, rows[-1]).float().log_softmax(-1)
                optimiser.zero_grad()
                history.append(_backward(lm, rows[:-1], final, weight, bias) / len(layers))
                torch.nn.utils.clip_grad_norm_([weight, bias], CLIP)
                optimiser.step()
                schedule.step()
        self.seconds_ = time.perf_counter() - started
        self.weight_, self.bias_ = weight.detach().cpu(), bias.detach().cpu()
        self.layers_ = layers
        self.model_, self.d_model_, self.n_layers_ = getattr(lm, "name", "model"), d, n
        self.unembed_hash_ = unembed_hash(lm)
        self.history_ = pd.DataFrame({"step": range(1, len(history) + 1), "kl": history})
        return self

    def _check_settings(self) -> None:
        for name in ("steps", "tokens_per_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name, high in (("lr", math.inf), ("momentum", 1), ("weight_decay", math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 <= value < high or name == "lr" and value == 0:
                raise ValueError(f"{name} must be a finite number in [0, {high})"
                                 f"{' and not 0' if name == 'lr' else ''}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}")

    def _trained_layers(self, model, n: int) -> list[int]:
        if self.layers is None:
            return list(range(-1, n - 1))
        layers = sorted(check_layers(model, self.layers))
        if n - 1 in layers:
            raise ValueError(f"layer {n - 1} is the last: its lens is the model's output and needs "
                             f"no translator; train layers -1..{n - 2}")
        return layers

    # ------------------------------------------------------------ reading

    def translate(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s stream ``[..., d_model]`` translated (the last layer: unchanged)."""
        self._check_fitted()
        if layer == self.n_layers_ - 1:
            return hidden
        if layer not in self.layers_:
            raise ValueError(f"layer {layer!r} has no translator; trained layers: {self.layers_} "
                             f"(and {self.n_layers_ - 1}, the last, read as it is)")
        i = self.layers_.index(layer)
        w, b = self.weight_[i].to(hidden.device), self.bias_[i].to(hidden.device)
        h = hidden.float()
        return (h + h @ w.T + b).to(hidden.dtype)

    def __call__(self, lm, prompts, **options) -> LensResult:
        """The tuned lens of ``prompts``: :func:`~nbtoolkit.lens.logit_lens`'s options and result
        (no ``components``: the translators read the residual stream)."""
        if options.pop("components", False):
            raise ValueError("the tuned lens translates the residual stream; components=True "
                             "(attention and MLP terms alone) is the logit lens's option")
        self.check_model(lm)
        return read_lens(lm, prompts, self.translate, "tuned lens",
                         translated_layers=[*self.layers_, self.n_layers_ - 1], **options)

    def check_model(self, lm) -> None:
        """``ValueError`` unless ``lm`` has this lens's sizes; a warning if its unembedding differs
        from the one the lens was trained with."""
        self._check_fitted()
        model = hf_model(lm)
        require(model, "tuned lens", SUPPORTED_KINDS)
        sizes = (n_layers_of(model), config_value(model, "d_model"))
        if sizes != (self.n_layers_, self.d_model_):
            raise ValueError(f"this tuned lens was trained on {self.model_!r} ({self.n_layers_} "
                             f"layers, d_model {self.d_model_}); {getattr(lm, 'name', 'the model')} "
                             f"has {sizes[0]} layers, d_model {sizes[1]}")
        if self.unembed_hash_ and unembed_hash(lm) != self.unembed_hash_:
            import warnings
            warnings.warn(f"the unembedding of {getattr(lm, 'name', 'this model')} differs from "
                          f"the one this lens was trained with ({self.model_!r})", stacklevel=3)

    def _check_fitted(self) -> None:
        if not hasattr(self, "weight_"):
            raise NotFittedError("this TunedLens is not fitted yet: call fit(lm) or "
                                 "TunedLens.load(folder)")

    # ------------------------------------------------------------ files

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``tuned_lens.json`` and ``tuned_lens.safetensors`` into ``folder`` (atomically)."""
        from safetensors.torch import save_file

        self._check_fitted()
        folder = Path(folder)
        tensors = {"weight": self.weight_.contiguous(), "bias": self.bias_.contiguous()}
        atomic_write(folder / TENSOR_FILE, lambda tmp: save_file(tensors, tmp))
        write_json(folder / CONFIG_FILE, {
            "format": FORMAT, "kind": "tuned_lens", "model": self.model_,
            "d_model": self.d_model_, "n_layers": self.n_layers_, "layers": self.layers_,
            "unembed_sha256": self.unembed_hash_,
            "settings": {k: getattr(self, k) for k in SETTINGS}})
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TunedLens:
        """A lens written by :meth:`save`; ``ValueError`` for a missing file, another format, or
        tensors with other names, shapes or non-finite values."""
        folder = Path(folder)
        meta = _read_json(folder / CONFIG_FILE)
        if meta.get("format") != FORMAT or meta.get("kind") != "tuned_lens":
            raise ValueError(f"{folder / CONFIG_FILE}: not a tuned lens of format {FORMAT} "
                             f"(format {meta.get('format')!r}, kind {meta.get('kind')!r})")
        n, d = _size(meta, "n_layers", folder), _size(meta, "d_model", folder)
        layers = meta.get("layers")
        if not isinstance(layers, list) or not layers or layers != sorted(set(layers)) or \
                not all(isinstance(x, int) and not isinstance(x, bool) and -1 <= x < n - 1
                        for x in layers):
            raise ValueError(f"{folder / CONFIG_FILE}: layers must be increasing ints in "
                             f"-1..{n - 2}, got {layers!r}")
        k = len(layers)
        tensors = _read_tensors(folder / TENSOR_FILE, {"weight": (k, d, d), "bias": (k, d)})
        settings = meta.get("settings") or {}
        lens = cls(**{key: value for key, value in settings.items() if key in SETTINGS})
        return lens._fitted(tensors["weight"], tensors["bias"], layers,
                            meta.get("model", "model"), d, n, meta.get("unembed_sha256"))

    @classmethod
    def from_tuned_lens_project(cls, folder: str | os.PathLike) -> TunedLens:
        """A lens released by the tuned-lens project (``config.json`` + ``params.safetensors``
        converted from its ``params.pt``: see the module docstring for why the pickle is refused)."""
        folder = Path(folder)
        if not (folder / PROJECT_TENSORS).exists() and (folder / PROJECT_PICKLE).exists():
            raise ValueError(f"{folder / PROJECT_PICKLE} is a pickle, which nbtoolkit does not "
                             f"load (it can run code). If you trust it, convert it once: "
                             f"safetensors.torch.save_file(torch.load('params.pt', "
                             f"weights_only=True), 'params.safetensors'), then load the folder")
        meta = _read_json(folder / PROJECT_CONFIG)
        if meta.get("lens_type", "linear_tuned_lens") != "linear_tuned_lens":
            raise ValueError(f"{folder / PROJECT_CONFIG}: lens_type {meta['lens_type']!r} is not "
                             f"a linear tuned lens")
        n = _size({"n_layers": config_entry(meta, "n_layers")}, "n_layers", folder)
        d = _size(meta, "d_model", folder)
        with_bias = meta.get("bias", True)
        shapes = {f"{i}.weight": (d, d) for i in range(n)}
        shapes |= {f"{i}.bias": (d,) for i in range(n)} if with_bias else {}
        tensors = _read_tensors(folder / PROJECT_TENSORS, shapes)
        weight = torch.stack([tensors[f"{i}.weight"] for i in range(n)])
        bias = torch.stack([tensors[f"{i}.bias"] for i in range(n)]) if with_bias else \
            torch.zeros(n, d)
        return cls()._fitted(weight, bias, list(range(-1, n - 1)),
                             meta.get("base_model_name_or_path", "model"), d, n, None)

    def _fitted(self, weight, bias, layers: list[int], model: str, d: int, n: int,
                unembed: str | None) -> TunedLens:
        self.weight_, self.bias_ = weight.float(), bias.float()
        self.layers_, self.model_, self.d_model_, self.n_layers_ = layers, model, d, n
        self.unembed_hash_, self.history_, self.seconds_ = unembed, None, None
        return self


def _backward(lm, hidden: torch.Tensor, final: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor) -> float:
    """Backward of KL(final ‖ tuned lens) summed over layers ``hidden`` ``[layers, tokens, d]``,
    one layer at a time (the logits of every layer at once would not fit); returns the summed KL.
    The loss is the cross-entropy with the final distribution (torch's fused kernel), whose
    gradient is the KL's: they differ by the final distribution's entropy, a constant."""
    p = final.exp()
    entropy = float(-(p * final).sum(-1).mean())
    total = 0.0
    for i in range(hidden.shape[0]):
        h = hidden[i].float()
        translated = (h + h @ weight[i].T + bias[i]).to(hidden.dtype)
        loss = torch.nn.functional.cross_entropy(unembed(lm, translated).float(), p)
        loss.backward()
        total += loss.item() - entropy
    return total


def _token_stream(lm, texts: list[str], layers: list[int], tokens: int, seed: int):
    """Endless batches of exactly ``tokens`` token rows ``[len(layers), tokens, d]``, the texts
    reshuffled (``seed``) at every pass."""
    rng = np.random.default_rng(seed)
    pending = None
    while True:
        order = [texts[i] for i in rng.permutation(len(texts))]
        for rows in residual_batches(lm, order, layers, batch_size=8):
            pending = rows if pending is None else torch.cat([pending, rows], dim=1)
            while pending.shape[1] >= tokens:
                yield pending[:, :tokens]
                pending = pending[:, tokens:]


def unembed_hash(lm) -> str:
    """sha256 of the unembedding matrix (float32 bytes): which read-out a lens was trained for."""
    weight = hf_model(lm).get_output_embeddings().weight.detach().float().cpu().contiguous()
    return hashlib.sha256(weight.numpy().tobytes()).hexdigest()


def _read_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no {path.name} in {path.parent}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _size(meta: dict, key: str, folder: Path) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{folder}: {key} must be a positive int, got {value!r}")
    return value


def _read_tensors(path: Path, shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, which must be exactly ``shapes``, finite floats."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except FileNotFoundError:
        raise ValueError(f"no {path.name} in {path.parent}") from None
    except Exception as error:  # truncated or not safetensors
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    missing, extra = sorted(set(shapes) - set(tensors)), sorted(set(tensors) - set(shapes))
    if missing or extra:
        raise ValueError(f"{path}: tensors missing {missing[:4]}, unexpected {extra[:4]}")
    for name, shape in shapes.items():
        t = tensors[name]
        if tuple(t.shape) != shape or not t.is_floating_point():
            raise ValueError(f"{path}: {name} has shape {tuple(t.shape)} and dtype {t.dtype}; "
                             f"expected floats of shape {shape}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{path}: {name} has non-finite values")
    return tensors
