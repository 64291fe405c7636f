"""The folders are the architecture: imports point one way (core -> data/tasks -> methods -> viz ->
exercises/tutorials -> cli -> the package's face), there are no import cycles, no module lies loose
at the top, and only the anatomy names model internals."""

import ast
import graphlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nbtoolkit"

# The rank of each folder: a module may import only modules of its own rank or lower. Every method
# is a folder of rank METHOD.
METHOD = 2
RANKS = {"core": 0, "data": 1, "tasks": 1,
         **dict.fromkeys(["interchange", "tracing", "das", "probes", "ccs", "instruction_shift",
                          "selfie", "lens", "circuits"], METHOD),
         "viz": 3, "exercises": 4, "tutorials": 4, "cli": 5, "__init__": 6}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(module: str) -> int:
    parts = module.split(".")
    return RANKS["__init__"] if len(parts) == 1 else RANKS[parts[1]]


def imports(path: Path) -> set[str]:
    """Every nbtoolkit module ``path`` imports (module-level and inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from . import probes` imports a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {m for m in found if m == "nbtoolkit" or m.startswith("nbtoolkit.")}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_folder_is_a_known_part():
    unknown = {m.split(".")[1] for m in MODULES if "." in m} - set(RANKS)
    assert not unknown, f"give {sorted(unknown)} a rank in RANKS (and a line in docs/guides/architecture.md)"


def test_the_top_level_is_the_public_face_only():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"{loose} lie loose at the top of nbtoolkit/: put each in its folder"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert all((PACKAGE / f / "__init__.py").exists() for f in folders), \
        "every folder of nbtoolkit/ is a package with an __init__ that lists its exports"


def test_command_lines_live_in_cli():
    mains = sorted(m for m, p in MODULES.items()
                   if p.name == "__main__.py" or ("__name__ == \"__main__\"" in p.read_text()
                                                  and not m.startswith("nbtoolkit.cli.")))
    assert not mains, f"{mains} are command lines: move them to nbtoolkit/cli/"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_one_way(module):
    wrong = [m for m in imports(MODULES[module]) if m in MODULES and rank(m) > rank(module)]
    assert not wrong, f"{module} (rank {rank(module)}) imports {wrong}: arrows point core -> " \
                      f"data/tasks -> methods -> viz -> exercises/tutorials -> cli, never back"


def test_no_import_cycles():
    graph = {m: {i for i in imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    # a package's __init__ re-exports its submodules; the cycle that matters is between modules
    graph = {m: {i for i in deps if not (i == m.rpartition(".")[0] or m == i.rpartition(".")[0]
                                         and MODULES[m].name == "__init__.py")}
             for m, deps in graph.items()}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


# names of model internals that only nbtoolkit/core/anatomy.py (and kv_cache.py for the cache)
# may spell: module paths, weight names, config keys, cache internals
INTERNALS = [r"\.self_attn\b", r"\.mlp\.", r"\bq_proj\b", r"\bk_proj\b", r"\bo_proj\b",
             r"\bdown_proj\b", r"\binput_layernorm\b", r"\bq_norm\b", r"\bk_norm\b",
             r"post_feedforward_layernorm", r"\bnum_attention_heads\b", r"\bnum_hidden_layers\b",
             r"\bnum_key_value_heads\b", r"\bhidden_size\b", r"\bn_embd\b",
             r"\bmax_position_embeddings\b", r"\bbatch_repeat_interleave\b",
             r"\bbatch_select_indices\b", r"\bpast_key_values\b", r"\.model\.layers\b",
             r"\btransformer\.h\b"]
ALLOWED = {"nbtoolkit.core.anatomy", "nbtoolkit.core.kv_cache"}


@pytest.mark.parametrize("module", sorted(set(MODULES) - ALLOWED))
def test_only_the_anatomy_names_model_internals(module):
    text = MODULES[module].read_text()
    found = sorted({m.group(0) for pattern in INTERNALS for m in re.finditer(pattern, text)})
    assert not found, f"{module} names model internals {found}: ask nbtoolkit.core.anatomy " \
                      f"(site_name, weight, config_value) or nbtoolkit.core.kv_cache instead"


def test_site_names_are_built_in_one_place():
    pattern = re.compile(r"""f["']layer\.\{""")
    offenders = [m for m, p in MODULES.items()
                 if m != "nbtoolkit.core.anatomy" and pattern.search(p.read_text())]
    assert not offenders, f"{offenders} format site names by hand; use site_name()"


def test_every_folder_is_reachable_as_an_attribute_of_the_package():
    import nbtoolkit

    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert folders == nbtoolkit._SUBMODULES
    assert nbtoolkit.circuits.head_patching and nbtoolkit.lens.logit_lens
