"""A real browser: JupyterLab headless on localhost, the getting-started notebook run in Debian's
Chromium through Playwright, a widget control moved, the plot checked to change."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = "00_getting_started.ipynb"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab on 127.0.0.1 serving a copy of the notebook (so nothing is saved into the repo)."""
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, tmp_path / NOTEBOOK)
    port, token = _free_port(), "nbtoolkit-test"
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield f"{url}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_all(page, attempts: int = 3) -> None:
    """Restart the kernel and run every cell (toolbar button + confirm); retry until a cell runs."""
    for _ in range(attempts):
        page.locator(".jp-Notebook").first.click()
        page.click("[data-command='notebook:restart-run-all']", timeout=30_000)
        page.click(".jp-Dialog .jp-mod-accept", timeout=30_000)
        try:
            page.wait_for_selector(".jp-InputPrompt:has-text('[*]'), .jp-InputPrompt:has-text('[1]')",
                                   state="attached", timeout=60_000)
            return
        except Exception:
            continue
    pytest.fail("JupyterLab did not start running the notebook")


def test_notebook_runs_and_widget_responds_in_chromium(jupyterlab):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    shots = ROOT / "build" / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(jupyterlab)
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=300_000)
            run_all(page)
            # cells outside the viewport may be virtualised: wait for attachment, then scroll
            dropdown = page.wait_for_selector(".widget-dropdown select", state="attached",
                                              timeout=600_000)
            dropdown.scroll_into_view_if_needed()
            output = page.locator(".widget-output img").first
            output.wait_for(state="attached", timeout=120_000)
            before = output.get_attribute("src")
            dropdown.select_option("mlp")
            page.wait_for_function(
                "src => { const img = document.querySelector('.widget-output img');"
                " return img && img.getAttribute('src') !== src; }", arg=before, timeout=60_000)
            after = page.locator(".widget-output img").first.get_attribute("src")
            dropdown.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "00_getting_started.png"))
        finally:
            browser.close()
    assert before and after and before != after
