"""The API reference's inventory: every public name, grouped as the package's folders are, and the
reference pages written from it (conf.py calls write_pages; tests/test_docs.py checks both).

A folder whose ``__init__`` has an ``__all__`` is documented by it; viz and exercises, whose
modules load on their own, by each module's ``__all__`` (else its own public functions and classes);
core by the top-level ``nbtoolkit.__all__``.
"""

import ast
import functools
import importlib
import inspect
import pkgutil
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer

# (folder, title): the order of the reference's pages
GROUPS = [("core", "core: models, sites, capture and patch"), ("data", "data"), ("tasks", "tasks"),
          ("interchange", "interchange"), ("tracing", "tracing"), ("das", "das"),
          ("probes", "probes"), ("ccs", "ccs"), ("instruction_shift", "instruction_shift"),
          ("selfie", "selfie"), ("lens", "lens"), ("circuits", "circuits"), ("viz", "viz"),
          ("exercises", "exercises"),
          ("tutorials", "tutorials")]
BY_MODULE = {"viz", "exercises"}  # no __all__ in the __init__: one section per module


def _own_names(module) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(n for n, obj in vars(module).items() if not n.startswith("_")
                  and (inspect.isfunction(obj) or inspect.isclass(obj))
                  and obj.__module__ == module.__name__)


def sections(folder: str) -> dict[str, list[str]]:
    """{module: [public names]} of one folder; the names are documented as ``module.name``."""
    if folder == "core":
        return {"nbtoolkit": list(importlib.import_module("nbtoolkit").__all__)}
    package = importlib.import_module(f"nbtoolkit.{folder}")
    if folder not in BY_MODULE:
        return {package.__name__: list(package.__all__)}
    modules = [importlib.import_module(f"{package.__name__}.{m.name}")
               for m in pkgutil.iter_modules(package.__path__)]
    return {m.__name__: _own_names(m) for m in modules}


@functools.cache
def public_names() -> tuple[str, ...]:
    """Every public name's dotted path, as the reference documents it."""
    return tuple(f"{module}.{name}" for folder, _ in GROUPS
                 for module, names in sections(folder).items() for name in names)


MISSING = object()


def resolve(path: str):
    """The object a dotted path names (a module, or attributes of one), else MISSING."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return MISSING
        return obj
    return MISSING


def public_path(obj) -> str | None:
    """The path the reference documents ``obj`` under (a public name or a method of one)."""
    for path in public_names():
        found = resolve(path)
        if found is obj and (callable(obj) or inspect.ismodule(obj)):
            return path
        if inspect.isclass(found):
            for attr, value in vars(found).items():
                if getattr(value, "fget", value) is getattr(obj, "fget", obj):
                    return f"{path}.{attr}"
    return None


def _defined_in(module: str, name: str) -> str:
    """The module that assigns ``name``, which ``module`` imports it from (or ``module`` itself)."""
    path = importlib.import_module(module).__file__
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
            base = module if path.endswith("__init__.py") else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            return _defined_in(f"{base}.{node.module}" if node.level else node.module, name)
    return module


def docstring(path: str) -> str:
    """A public name's documentation: its docstring, or for a constant its ``#:`` comment."""
    module, _, name = path.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    if callable(obj) or inspect.ismodule(obj):
        return inspect.getdoc(obj) or ""
    source = _defined_in(module, name)
    return "\n".join(ModuleAnalyzer.for_module(source).find_attr_docs().get(("", name), [])).strip()


def _entry(module: str, name: str) -> str:
    obj = getattr(importlib.import_module(module), name)
    if inspect.ismodule(obj):
        return f"```{{eval-rst}}\n.. automodule:: {obj.__name__}\n   :members:\n```\n"
    if callable(obj):
        kind, options = ("autoclass", "\n   :members:") if inspect.isclass(obj) else ("autofunction", "")
        return f"```{{eval-rst}}\n.. {kind}:: {module}.{name}{options}\n```\n"
    value = repr(obj)
    value = f"\n   :value: {value}" if len(value) <= 80 else f"\n   :type: {type(obj).__name__}"
    doc = "\n".join("   " + line for line in docstring(f"{module}.{name}").splitlines())
    return f"```{{eval-rst}}\n.. py:data:: {name}{value}\n\n{doc}\n```\n"


def write_pages(folder: Path) -> None:
    """docs/reference/<folder>.md, one per group, with a summary table and an entry per name."""
    folder.mkdir(exist_ok=True)
    index = ("# API reference\n\nEvery public name, from its docstring, grouped as the package's folders "
             "are: ``import nbtoolkit as nb`` gives the core; each method is a folder (``nb.tracing``, "
             "``from nbtoolkit.das import train_das``).\n\n```{toctree}\n:maxdepth: 1\n\n"
             + "".join(f"{group}\n" for group, _ in GROUPS) + "```\n")
    pages = {"index": index}
    for group, title in GROUPS:
        lines = [f"# {title}\n"]
        for module, names in sections(group).items():
            if group in BY_MODULE:
                lines.append(f"## {module}\n")
            doc = inspect.getdoc(importlib.import_module(module)) or ""
            links = " · ".join(f"{{py:obj}}`{name} <{module}.{name}>`" for name in names)
            lines.append(f"```{{py:module}} {module}\n```\n\n````text\n{doc}\n````\n\n{links}\n")
            lines += [_entry(module, name) for name in names]
        pages[group] = "\n".join(lines)
    for name, text in pages.items():
        path = folder / f"{name}.md"
        if not path.exists() or path.read_text() != text:  # unchanged pages are not rebuilt
            path.write_text(text)
