"""The documentation site (docs/, make docs): every public name has a docstring and a reference
entry (the guides' generated tables: tests/test_families.py, tests/test_presets.py). Marked
``docs_site`` (make test runs them after make docs; skipped while build/docs/ is missing): the built
site's internal links and anchors resolve, every public name has its anchor, and in Debian's
Chromium a reader searches for ``causal_trace`` and lands on its entry, and sees a figure of the
getting-started tutorial."""

import functools
import html.parser
import inspect
import http.server
import re
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from chromium import chromium_page

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "docs"
sys.path.insert(0, str(ROOT / "docs"))
import reference  # noqa: E402



def needs_site(test):
    """Run by make test after make docs (-m docs_site); skipped while the site is not built."""
    return pytest.mark.docs_site(pytest.mark.skipif(
        not (SITE / "index.html").exists(), reason="build/docs/index.html is missing: run make docs")(test))


def _module_of(path: str):
    """A module's own name (``nbtoolkit.tasks.sums`` is documented as itself), else None."""
    obj = reference.resolve(path)
    return obj.__name__ if inspect.ismodule(obj) else None


def test_every_public_name_has_a_docstring():
    missing = [path for path in reference.public_names() if not reference.docstring(path)]
    assert not missing, f"write a docstring (a constant: a #: comment above it) for {missing}"


def test_every_folder_with_public_names_has_a_reference_page():
    folders = {p.parent.name for p in (ROOT / "nbtoolkit").glob("*/__init__.py")} - {"cli", "core"}
    assert folders <= {group for group, _ in reference.GROUPS}, "add the folder to reference.GROUPS"


def test_the_reference_pages_have_an_entry_per_public_name(tmp_path):
    reference.write_pages(tmp_path)
    text = "\n".join(p.read_text() for p in tmp_path.glob("*.md"))
    documented, module = set(), None
    for kind, name in re.findall(r"^(?:```\{py:module\}|\.\. (\S+)::) (\S+)", text, re.M):
        if not kind:
            module = name
        documented.add(f"{module}.{name}" if kind == "py:data" else name)
    missing = [path for path in reference.public_names()
               if path not in documented and _module_of(path) not in documented]
    assert not missing, f"no reference entry for {missing}"


class _Page(html.parser.HTMLParser):
    """A built page's ids and the links it follows (href and src)."""

    def __init__(self, path: Path):
        super().__init__()
        self.ids, self.links = set(), []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        self.links += [attrs[key] for key in ("href", "src") if attrs.get(key)]


@functools.cache
def _page(path: Path) -> _Page:
    return _Page(path)


@needs_site
def test_internal_links_and_anchors_resolve():
    broken = []
    for page in sorted(p for p in SITE.rglob("*.html") if "_static" not in p.parts):
        for link in _page(page).links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # external: never fetched (offline)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(SITE)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _page(target).ids:
                broken.append(f"{page.relative_to(SITE)}: {link} (no such anchor)")
    assert not broken, "\n".join(broken[:50])


@needs_site
def test_every_public_name_has_an_anchor_in_the_built_reference():
    ids = set().union(*(_page(p).ids for p in (SITE / "reference").glob("*.html")))
    missing = [path for path in reference.public_names()
               if path not in ids and f"module-{_module_of(path)}" not in ids]
    assert not missing, f"not in the built reference: {missing}"


@pytest.fixture(scope="module")
def site():
    """build/docs/ served on 127.0.0.1 (search loads its index over HTTP, as on a real host)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def page(site):
    with chromium_page() as page:
        yield page


@needs_site
@pytest.mark.browser
def test_search_for_causal_trace_lands_on_its_reference_entry(site, page):
    page.goto(f"{site}/index.html")
    page.click("button.search-button__button")
    page.fill("input[name=q]:visible", "causal_trace")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search.html?q=causal_trace*")
    first = page.locator("#search-results li a").first
    first.wait_for(timeout=60_000)
    assert first.get_attribute("href").endswith("reference/tracing.html#nbtoolkit.tracing.causal_trace")
    first.click()
    page.wait_for_url("**/reference/tracing.html#nbtoolkit.tracing.causal_trace")
    entry = page.locator('[id="nbtoolkit.tracing.causal_trace"]')
    assert entry.is_visible() and "causal_trace" in entry.inner_text()


@needs_site
@pytest.mark.browser
@pytest.mark.skipif(not (ROOT / "build" / "notebooks" / "00_getting_started.ipynb").exists(),
                    reason="the site shows figures only of executed notebooks: make tutorials first")
def test_the_getting_started_tutorial_shows_its_figures(site, page):
    page.goto(f"{site}/tutorials/00_getting_started.html")
    figure = page.locator(".cell_output img").first
    figure.scroll_into_view_if_needed()
    assert figure.is_visible()
    assert figure.evaluate("img => img.complete && img.naturalWidth > 100")
    assert page.locator("a", has_text="Open in Colab").count() == 1
