"""Figures (data in, matplotlib Figure out) and widgets; methods never draw. Each module is
imported on its own (matplotlib and ipywidgets load with it):

figures            new_figure, heatmap, layer and training curves: the shared plotting pieces
interchange        plot_interchange
tracing            ROME's traces, averages and severing figures
das                IIA bars and heatmaps, training histories
probes             CCS layer curves, transfer heatmaps, Table 1 bars
instruction_shift  attribution heatmaps and HTML, instruction scores, concepts by layer
selfie             relevancy grids, interpretation bars, steering curves
widgets            explore, layer_curve_explorer, token_view, TrainingMonitor (core ipywidgets)
"""
