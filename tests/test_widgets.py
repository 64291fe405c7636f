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
