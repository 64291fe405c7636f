"""Command lines, each ``python -m nbtoolkit.cli.<name>``:

ccs        the elk-style CCS runner: elicit, eval (transfer), sweep, plot
tutorials  make tutorials: run every notebook (papermill parameters), write build/
exercises  make exercises: the student notebooks and an nbgrader course
bands      make bands: measure the reproductions' result bands
execute    papermill, with kernel replies read in short slices (what the runner calls)
"""
