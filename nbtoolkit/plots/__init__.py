"""Plots: pure functions, data in, matplotlib Figure out. One module per method."""
