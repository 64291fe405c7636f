"""Widgets re-render with the new data when a control changes (asserted on the figure's data)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from nbtoolkit.viz.widgets import TrainingMonitor, explore, layer_curve_explorer, token_view


def test_explore_rerenders_on_every_control():
    calls = []

    def plot(name, layer, flip):
        calls.append((name, layer, flip))
        fig, ax = plt.subplots()
        ax.plot([layer, -layer if flip else layer])
        return fig

    explorer = explore(plot, name=["a", "b"], layer=range(0, 10, 2), flip=False)
    assert calls == [("a", 0, False)]
    explorer.controls["layer"].value = 4
    explorer.controls["flip"].value = True
    explorer.controls["name"].value = "b"
    assert calls[-1] == ("b", 4, True) and len(calls) == 4
    assert list(explorer.figure.axes[0].lines[0].get_ydata()) == [4, -4]
    assert explorer.controls["layer"].max == 8


def test_layer_curve_explorer_filters_rows():
    frame = pd.DataFrame({"layer": [0, 1, 0, 1], "auroc": [0.5, 0.6, 0.7, 0.9],
                          "dataset": ["a", "a", "b", "b"]})
    explorer = layer_curve_explorer(frame, "auroc", by=["dataset"])
    np.testing.assert_array_equal(explorer.figure.axes[0].lines[0].get_ydata(), [0.5, 0.6])
    explorer.controls["dataset"].value = "b"
    np.testing.assert_array_equal(explorer.figure.axes[0].lines[0].get_ydata(), [0.7, 0.9])
    with pytest.raises(ValueError, match="columns \\['reporter'\\] not in the frame"):
        layer_curve_explorer(frame, "auroc", by=["reporter"])


def test_training_monitor_tracks_history_and_redraws():
    monitor = TrainingMonitor(["loss", "iia"])
    monitor.update(0, loss=2.0)
    monitor.update(1, loss=1.0, iia=0.5)
    assert monitor.history["loss"].tolist() == [2.0, 1.0]
    np.testing.assert_array_equal(monitor.figure.axes[0].lines[0].get_ydata(), [2.0, 1.0])
    with pytest.raises(ValueError, match="unknown metrics \\['acc'\\]"):
        monitor.update(2, acc=1.0)


def test_token_view_colours_by_score():
    view = token_view(["The", " <cat>"], [0.0, 2.0])
    assert "&lt;cat&gt;" in view.value and 'title="2"' in view.value
    with pytest.raises(ValueError, match=r"2 tokens but scores of shape \(1,\); expected \[2\]"):
        token_view(["a", "b"], [1.0])
    with pytest.raises(TypeError, match="control 'x'"):
        explore(lambda x: plt.figure(), x=3.5)


# ---------------------------------------------------------------- reading the residual stream

@pytest.fixture(scope="module")
def lens_results():
    from nbtoolkit import tiny_model
    from nbtoolkit.lens import attention_patterns, logit_lens

    lm = tiny_model("llama")
    prompts = ["Hello there", "Hi"]
    return logit_lens(lm, prompts, target="e"), attention_patterns(lm, prompts)


def test_lens_explorer_shows_the_chosen_prompt_and_value(lens_results):
    from nbtoolkit.viz.lens_widgets import lens_explorer

    result, _ = lens_results
    explorer = lens_explorer(result)
    shown = explorer.figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown[::-1], np.exp(result.top_logprobs[0, :, :11, 0].numpy()), rtol=1e-6)
    texts = [t.get_text() for t in explorer.figure.axes[0].texts]
    assert texts[-1] == repr(result.top_tokens[0, 0, 10, 0])[1:-1][:8]  # bottom row: embed
    explorer.controls["value"].value = "target_rank"
    np.testing.assert_array_equal(explorer.figure.axes[0].images[0].get_array()[::-1],
                                  result.target_ranks[0, :, :11].numpy())
    explorer.controls["prompt"].value = 1
    shown = explorer.figure.axes[0].images[0].get_array()
    assert shown.shape == (4, 2)
    np.testing.assert_array_equal(shown[::-1], result.target_ranks[1, :, :2].numpy())
    assert [t.get_text() for t in explorer.figure.axes[0].get_xticklabels()] == ["H", "i"]


def test_attention_viewer_shows_where_a_token_attends(lens_results):
    from nbtoolkit.viz.lens_widgets import attention_viewer

    _, patterns = lens_results
    viewer = attention_viewer(patterns)
    assert len(viewer.figure.axes) == 4  # one panel per head
    np.testing.assert_allclose(viewer.figure.axes[2].images[0].get_array(),
                               patterns[0][0, 2, :11, :11].numpy())
    viewer.controls["layer"].value = 2
    viewer.controls["token"].value = 5
    heights = [bar.get_height() for bar in viewer.figure.axes[1].patches]
    np.testing.assert_allclose(heights, patterns[2][0, 1, 5, :6].numpy(), rtol=1e-6)
    viewer.controls["prompt"].value = 1  # the token list follows the prompt
    assert viewer.values["token"] is None and len(viewer.controls["token"].options) == 3
    viewer.controls["token"].value = 1
    heights = [bar.get_height() for bar in viewer.figure.axes[0].patches]
    np.testing.assert_allclose(heights, patterns[2][1, 0, 1, :2].numpy(), rtol=1e-6)
