"""The pages conf.py writes before a build (all under docs/_generated/, which git ignores):

* the tutorials: each notebook's executed copy from build/notebooks/ (what ``make test`` or
  ``make tutorials`` ran; never executed here), or its source with a visible note when that copy
  is missing, headed by its Colab link and where its exercise version is;
* the generated tables: the family table, the paper presets' table and the lines of user code
  per task and library (benchmarks/count_lines.py).
"""

import importlib.util
import re
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "build" / "notebooks"
EXERCISES = ROOT / "build" / "exercises"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\((?P<url>[^)]*)\)")


def _header(name: str, executed: bool) -> str:
    exercise = EXERCISES / f"{name}.ipynb"
    lines = [f"[Open in Colab]({{url}}) · exercise version: `make exercises` writes "
             f"`build/exercises/{name}.ipynb` (solutions removed, checks kept; "
             f"[teaching](teaching.md))"]
    if exercise.exists():
        lines[0] += f" · {{download}}`download it <exercises/{name}.ipynb>`"
    if not executed:
        lines.append(f"```{{note}}\nThis page shows the notebook without its outputs: "
                     f"build/notebooks/{name}.ipynb is missing (`make tutorials` or `make test` "
                     f"writes it; the site never runs notebooks).\n```")
    return "\n\n".join(lines)


def write_tutorials(out: Path) -> list[str]:
    """out/<name>.ipynb for every tutorial (and out/exercises/ for the student versions); the names."""
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        executed = (EXECUTED / source.name).exists()
        nb = nbformat.read(EXECUTED / source.name if executed else source, as_version=4)
        first = nb.cells[0]
        url = BADGE.search(first.source)["url"]
        first.source = BADGE.sub(_header(source.stem, executed).replace("{url}", url), first.source, count=1)
        if (EXERCISES / source.name).exists():
            (out / "exercises").mkdir(exist_ok=True)
            shutil.copy(EXERCISES / source.name, out / "exercises" / source.name)
        target = out / source.name
        text = nbformat.writes(nb)
        if not target.exists() or target.read_text() != text:  # unchanged pages are not rebuilt
            target.write_text(text)
        names.append(source.stem)
    return names


def lines_of_code_table() -> str:
    """benchmarks/count_lines.py's table (benchmarks/ is not a package: loaded from its path)."""
    spec = importlib.util.spec_from_file_location("count_lines", ROOT / "benchmarks" / "count_lines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.table()


def write_tables(out: Path) -> None:
    """out/family_table.md, out/paper_table.md and out/lines_of_code.md, from the functions that
    make them."""
    from nbtoolkit.tutorials.families import family_table
    from nbtoolkit.tutorials.presets import paper_table

    out.mkdir(parents=True, exist_ok=True)
    for name, text in [("family_table.md", family_table()), ("paper_table.md", paper_table()),
                       ("lines_of_code.md", lines_of_code_table())]:
        if not (out / name).exists() or (out / name).read_text() != text:
            (out / name).write_text(text)
