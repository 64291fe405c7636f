"""Widgets for reading the residual stream, core ipywidgets only (they work on Colab):

    lens_explorer(result)          # the layer × token grid of a logit or tuned lens; pick the
                                   # prompt and what the colour shows
    attention_viewer(patterns)     # one layer's heads as small multiples; pick a token to see
                                   # where it attends (core widgets have no hover: a dropdown)
"""

from __future__ import annotations

import ipywidgets as w

from .lens import LENS_VALUES, plot_attention, plot_lens
from .widgets import Explorer, explore

ALL_TOKENS = "every token"


def lens_explorer(result) -> Explorer:
    """:func:`~nbtoolkit.viz.lens.plot_lens` with a prompt (for a batch) and a value control."""
    prompts = {"prompt": list(range(len(result.tokens)))} if not result.single else {}

    def plot(value, prompt=0):
        return plot_lens(result, prompt, value)

    return explore(plot, value=list(LENS_VALUES), **prompts)


def attention_viewer(patterns, heads=None) -> Explorer:
    """:func:`~nbtoolkit.viz.lens.plot_attention` with layer, prompt and token controls; the token
    list follows the chosen prompt."""
    prompts = list(range(len(patterns.tokens)))

    def options(prompt: int) -> list[tuple[str, object]]:
        return [(ALL_TOKENS, None)] + [(f"{i}: {t!r}", i) for i, t in enumerate(patterns.tokens[prompt])]

    controls = {"layer": w.Dropdown(options=patterns.layers, value=patterns.layers[0],
                                    description="layer"),
                "prompt": w.Dropdown(options=prompts, value=0, description="prompt"),
                "token": w.Dropdown(options=options(0), value=None, description="token")}

    def plot(layer, prompt, token):
        return plot_attention(patterns, layer, prompt, query=token, heads=heads)

    def follow(change):  # observed before the explorer's own re-render, so it sees a valid token
        controls["token"].options = options(change["new"])
        controls["token"].value = None
    controls["prompt"].observe(follow, names="value")
    return Explorer(plot, controls)
