"""The notebooks' machinery (not a method): what every tutorial notebook imports besides methods.

presets   the cpu and paper presets of every notebook (use_preset, describe, paper_table)
papers    every published number a notebook prints, with its source
results   save_results: paper-vs-ours tables under build/results/
bands     check_bands: each reproduction's headline numbers against their measured bands
families  which methods run on which families: the README's family table (family_table)
runner    run_notebooks, write_index, notebook_parameters: what make tutorials and make test run

The runner's command line is :mod:`nbtoolkit.cli.tutorials`, the bands' :mod:`nbtoolkit.cli.bands`. ``families`` and ``runner`` are
imported on their own (they load every method, and papermill).
"""

from . import papers
from .bands import check_bands
from .presets import NOTEBOOKS, PRESETS, describe, paper_table, use_preset
from .results import results_dir, save_results

__all__ = ["NOTEBOOKS", "PRESETS", "check_bands", "describe", "paper_table", "papers", "results_dir",
           "save_results", "use_preset"]
