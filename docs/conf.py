"""Sphinx configuration: MyST pages, the tutorials as executed (never run here), the API reference
from the docstrings. Offline: no intersphinx, no downloads. ``make docs`` builds it with -W."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import pages  # noqa: E402
import reference  # noqa: E402

import nbtoolkit  # noqa: E402

project = "nbtoolkit"
release = version = nbtoolkit.__version__
copyright = "the nbtoolkit authors"

extensions = ["myst_nb", "sphinx.ext.autodoc"]
exclude_patterns = ["_generated", "reference.py", "pages.py", "tutorials/exercises"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# A notebook may go from its title (H1) to an H3; its executed copy is what it is.
suppress_warnings = ["myst.header"]

# The tutorials are rendered from the copies make test / make tutorials executed: never run again.
nb_execution_mode = "off"
nb_merge_streams = True

# Every cross-reference must resolve (-W turns a dangling one into an error); names of other
# libraries (no intersphinx: offline) are plain text.
nitpicky = True
nitpick_ignore_regex = [("py:.*", r"(torch|np|numpy|pd|pandas|transformers|sklearn|matplotlib|plt|"
                                  r"ipywidgets|collections|typing|t|pathlib|os|datasets)(\..*)?"),
                        ("py:class", r"(Path|Tensor|DataFrame|Figure|Axes|Module|PreTrainedModel|"
                                     r"PreTrainedTokenizerBase|Callable|Iterable|Sequence|Iterator|"
                                     r"Mapping|Any|optional|array-like|ndarray|nn\.Module)")]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
add_module_names = False

html_theme = "pydata_sphinx_theme"
html_title = "nbtoolkit"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []



def skip_foreign(app, what, name, obj, skip, options):
    """Members a class inherits from scikit-learn or matplotlib (set_fit_request, Figure.set)."""
    module = getattr(obj, "__module__", None) or ""
    return True if module and not module.startswith("nbtoolkit") and callable(obj) else None


def internal_as_code(app, env, node, contnode):
    """A reference to a public name by its defining module's path (``nbtoolkit.core.loading.
    load_model``) links to its entry (``nbtoolkit.load_model``); one to a real name the reference
    does not document (a private helper, a column list) is shown as code. Anything else warns."""
    if node.get("refdomain") != "py":
        return None
    target, context = node["reftarget"], node.get("py:module") or ""
    candidates = [target] if target.startswith("nbtoolkit") else [f"{context}.{target}"] + \
        [f"{m}.{target}" for m in sorted(sys.modules) if m.startswith("nbtoolkit.")]
    for path in candidates:
        obj = reference.resolve(path)
        if obj is not reference.MISSING:
            public = reference.public_path(obj)
            if public and public != path:
                found = env.get_domain("py").resolve_any_xref(env, node["refdoc"], app.builder,
                                                             public, node, contnode)
                return found[0][1] if found else contnode
            return contnode
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_foreign)
    app.connect("missing-reference", internal_as_code)


pages.write_tutorials(HERE / "tutorials")
pages.write_tables(HERE / "_generated")
reference.write_pages(HERE / "reference")
