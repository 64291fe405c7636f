"""Checks for notebook 07 (SelfIE): a hidden state by nbtoolkit's layer number, the overlay of
a state onto activations, and the insertion into an interpretation prompt, against
:mod:`nbtoolkit.selfie` and :class:`nbtoolkit.Overlay`; the layer-numbering mistakes are
:mod:`~nbtoolkit.exercises.layers`."""

from __future__ import annotations

import torch

from ..core.anatomy import residual_site, site_name
from ..core.hooks import patch
from ..core.interventions import Overlay, PatchContext, Set
from ..selfie.interpretation import InterpretationPrompt, hidden_states, insertion
from .feedback import Feedback, call, captured, expect, run_check, tensor, tiny_lm
from .layers import layer_mistakes

PROMPT = "The Eiffel Tower is in Paris"


# ---------------------------------------------------------------- 07.1

def check_hidden_state(hidden_state) -> Feedback | None:
    """Exercise 07.1: ``hidden_state(lm, prompt, layer, token)`` is the hidden state ``[d_model]``
    at (layer, token) in nbtoolkit's numbering: layer ℓ leaves block ℓ, layer −1 = embeddings."""
    return run_check("07.1", hidden_state, _hidden_state)


def _hidden_state(student) -> str:
    lm = tiny_lm()
    last = lm.n_layers - 1
    for layer, token in ((-1, 3), (1, -1), (last, 2)):
        want = hidden_states(lm, PROMPT, [layer])[layer][token]
        got = tensor(call(student, lm, PROMPT, layer, token), "your hidden state", (lm.d_model,))
        expect(got, want, layer_mistakes(lm, PROMPT, layer, token),
               f"your state at (layer {layer}, token {token}) differs from site "
               f"{residual_site(layer)}")
    return ("one numbering everywhere: layer ℓ is the residual stream leaving block ℓ, layer −1 "
            "the embeddings; the SelfIE paper's hidden_states[ℓ + 1] is our layer ℓ.")


# ---------------------------------------------------------------- 07.2

def check_overlay(overlay) -> Feedback | None:
    """Exercise 07.2: ``overlay(h, v, strength, mode)``: ``"normalized"`` gives s·v + (1 − s)·h,
    ``"addition"`` gives h + s·v (h ``[n, d]``, v ``[d]``)."""
    return run_check("07.2", overlay, _overlay)


def _overlay(student) -> str:
    g = torch.Generator().manual_seed(0)
    h, v = torch.randn(5, 8, generator=g), 3 * torch.randn(8, generator=g)
    for mode, s in (("normalized", 0.25), ("addition", 2.0), ("normalized", 1.0)):
        want = Overlay(v, strength=s, mode=mode)(h[None], PatchContext(site="layer.0.in"))[0]
        got = tensor(call(student, h.clone(), v.clone(), s, mode), "your overlaid activations",
                     h.shape)
        rescaled = v * h.norm(dim=-1, keepdim=True) / v.norm()
        expect(got, want, [
            (lambda: s * h + (1 - s) * v,
             "s is the share of the inserted vector: s·v + (1 − s)·h, so s = 1 writes v alone"),
            (lambda: s * rescaled + (1 - s) * h,
             "despite its name, SelfIE's 'normalized' mode rescales nothing: s·v + (1 − s)·h"),
            (lambda: s * v + (1 - s) * h,
             "in 'addition' mode the vector is added to the activation: h + s·v"),
            (lambda: h + v, "'addition' scales the vector by the strength: h + s·v"),
            (lambda: v.expand_as(h), "with strength s < 1, 'normalized' keeps (1 − s) of the "
                                     "activation: s·v + (1 − s)·h"),
        ], f"your overlay differs in mode {mode!r}, strength {s}")
    return ("SelfIE's two insertion modes: 'normalized' interpolates (s = 1 replaces), "
            "'addition' adds s·v; nbtoolkit's Overlay intervention does both.")


# ---------------------------------------------------------------- 07.3

def check_insert(insert) -> Feedback | None:
    """Exercise 07.3: ``insert(lm, input_ids, positions, vector, insert_layer)`` gives the
    next-token probabilities ``[vocab]`` of the interpretation prompt with ``vector`` written
    over every placeholder position of the stream entering block ``insert_layer``."""
    return run_check("07.3", insert, _insert)


def _insert(student) -> str:
    lm = tiny_lm()
    text = "What is _ _ _ ?"
    ids = torch.tensor(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    positions = [i for i, c in enumerate(text) if c == "_"]  # one byte, one token
    interp = InterpretationPrompt(text, ids, positions)
    vector = captured(lm, PROMPT, site_name(2))[-1]
    vocab = len(lm.tokenizer)

    def probs(edits) -> torch.Tensor:
        with torch.no_grad(), patch(lm, edits):
            return lm.model(input_ids=ids[None]).logits[0, -1].softmax(-1)

    def written(site, at):
        return probs({site: Set(vector, at=at)})

    for layer in (1, 2):
        want = probs(insertion(interp, vector[None], insert_layer=layer))
        got = tensor(call(student, lm, ids.clone(), list(positions), vector.clone(), layer),
                     "your probabilities", (vocab,))
        entering = site_name(layer, "in")
        expect(got, want, [
            (lambda: written(site_name(layer), positions),
             f"you wrote v into the output of block {layer} (site {site_name(layer)}); SelfIE "
             f"writes it into the stream entering block {layer}, site {entering}, so that block "
             f"{layer} reads it"),
            (lambda: written(entering, positions[:1]),
             "you wrote v over the first placeholder only; the same v goes over every "
             "placeholder"),
            (lambda: written(entering, None),
             "you wrote v over every position of the prompt; only the placeholders get it"),
            (lambda: probs({entering: Overlay(vector, at=positions, mode="addition")}),
             "you added v to the placeholders' states; SelfIE's default ('normalized', s = 1) "
             "replaces them: nb.Overlay(v, at=positions) or nb.Set"),
            (lambda: probs({}), "these are the prompt's own probabilities: nothing was inserted "
                                "(was the forward inside `with nb.patch(...)`?)"),
        ], f"your distribution differs from SelfIE's insertion before block {layer}")
    return ("SelfIE's insertion: v written over the placeholders as block k reads them. interpret "
            "does this on the prompt pass and lets the model generate its description.")


__all__ = ["check_hidden_state", "check_insert", "check_overlay"]
