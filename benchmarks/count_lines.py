"""Lines of user code for the same task in nbtoolkit and in each peer: the snippets in
``benchmarks/user_code/<library>/<task>.py``, written as a user of that library would, all
starting from the same inputs (``user_code/inputs.py``). Counted: every line that holds code,
not blank lines, comments, docstrings or the ``from inputs import ...`` of the shared inputs.

    python benchmarks/count_lines.py          # prints the table (the docs build writes it too)
    python benchmarks/count_lines.py --run    # first runs every snippet and checks that each
                                              # library's ``result`` equals nbtoolkit's
                                              # (the peers need the bench extra; make bench FULL=1)
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import io
import runpy
import sys
import tokenize
import traceback
from pathlib import Path

USER_CODE = Path(__file__).resolve().parent / "user_code"
LIBRARIES = ("nbtoolkit", "pyvene", "nnsight", "transformer_lens")
TASKS = {
    "interchange": "interchange end to end (capture the source run, patch one block)",
    "capture": "capture every block's output (30 layers)",
    "interchange_cached": "interchange from a pre-captured source",
    "interchange_every_block": "30 interchanges (every block) in one forward",
    "steering": "steered generation (a vector added at one block, 20 greedy tokens)",
    "causal_trace": "causal trace (ROME, the hidden grid)",
    "head_patching": "head-patching sweep (every head's output, IOI pairs)",
    "logit_lens": "logit lens (every block, last position)",
}
TOLERANCE = 1e-3  # float32 results of equivalent kernels (eager vs sdpa attention)
NO_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
           tokenize.ENCODING, tokenize.ENDMARKER}


def count(path: Path) -> int:
    """Lines of ``path`` that hold code: not blank, a comment, a docstring or the shared import."""
    text = path.read_text()
    lines = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(text).readline)
             if token.type not in NO_CODE}
    for node in ast.walk(ast.parse(text)):
        shared = isinstance(node, ast.ImportFrom) and node.module == "inputs"
        docstring = (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, str))
        if shared or docstring:
            lines -= set(range(node.lineno, node.end_lineno + 1))
    return len(lines)


def table() -> str:
    """The markdown table: one row per task, the lines each library needs ("–": no snippet)."""
    rows = ["| task | " + " | ".join(LIBRARIES) + " |", "|---|" + "---|" * len(LIBRARIES)]
    totals = dict.fromkeys(LIBRARIES, 0)
    for task, what in TASKS.items():
        cells = []
        for library in LIBRARIES:
            path = USER_CODE / library / f"{task}.py"
            n = count(path) if path.exists() else None
            totals[library] += n or 0
            cells.append("–" if n is None else f"[{n}](https://github.com/nbtoolkit/nbtoolkit/"
                                                   f"blob/main/benchmarks/user_code/{library}/{task}.py)")
        rows.append(f"| {what} | " + " | ".join(cells) + " |")
    rows.append("| **all eight** | " + " | ".join(f"**{totals[lib]}**" for lib in LIBRARIES) + " |")
    return "\n".join(rows) + "\n"


def run_snippet(library: str, task: str, model=None):
    """The ``result`` of ``user_code/<library>/<task>.py``, run without gradients on ``model``
    (default: a fresh copy of the shared model; TransformerLens's bridge rewires the model it
    wraps)."""
    import torch

    inputs = shared_inputs()
    inputs.model = copy.deepcopy(inputs.pristine) if model is None else model
    with torch.no_grad():
        return runpy.run_path(str(USER_CODE / library / f"{task}.py"))["result"]


def run_all() -> list[str]:
    """Run every snippet; the failures (an error, or a result that is not nbtoolkit's)."""
    close = shared_inputs().close
    failures = []
    for task in TASKS:
        expected = None
        for library in LIBRARIES:
            if library != "nbtoolkit" and not _installed(library):
                print(f"{task:>24} {library:>16}: not installed, skipped", flush=True)
                continue
            try:
                result = run_snippet(library, task)
            except Exception:
                failures.append(f"{library}/{task}.py raised:\n{traceback.format_exc()}")
                continue
            if library == "nbtoolkit":
                expected, diff = result, 0.0
            elif expected is None:
                failures.append(f"{library}/{task}.py: no nbtoolkit result to compare with")
                continue
            else:
                diff = close(result, expected)
            verdict = "equal" if diff <= TOLERANCE else "DIFFERS"
            print(f"{task:>24} {library:>16}: {verdict} (max |Δ| {diff:.1e})", flush=True)
            if diff > TOLERANCE:
                failures.append(f"{library}/{task}.py: result differs from nbtoolkit's by {diff:.2e}")
    return failures


def shared_inputs():
    """``user_code/inputs.py`` imported once as ``inputs``, for the snippets' ``from inputs
    import`` (the folder itself is not put on ``sys.path``: its folders are named like the
    libraries); ``.pristine`` keeps the model as loaded."""
    if "inputs" not in sys.modules:
        spec = importlib.util.spec_from_file_location("inputs", USER_CODE / "inputs.py")
        module = sys.modules["inputs"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.pristine = module.model
    return sys.modules["inputs"]


def _installed(library: str) -> bool:
    return importlib.util.find_spec(library) is not None


if __name__ == "__main__":
    if "--run" in sys.argv[1:]:
        failed = run_all()
        print("\n".join(failed) or "every snippet gives nbtoolkit's result")
        if failed:
            sys.exit(1)
    print(table())
