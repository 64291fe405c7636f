"""Command lines: ``python -m nbtoolkit.cli.ccs`` (the elk-style CCS runner)."""
