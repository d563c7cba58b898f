"""`xling-probe report` on the tiny models: every expected file, a self-contained page, clean bad input."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from xling_probe.cli import main
from xling_probe.plots import find_chromium
from xling_probe.report import build_report

SMALL = dict(langs=["en", "de", "fr", "zh"], limit=12, bootstrap=10, null_permutations=3, drift_items=3, shots=2,
             progress=False)


def _no_remote_script(page: str) -> None:
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I), "the page loads a script from a file or URL"
    # outside the inlined plotly.js (whose code mentions URLs in strings), nothing points at the network
    scripts = re.findall(r"<script[^>]*>.*?</script>", page, re.S)
    assert sum("plotly.js" in s[:500] or "Plotly" in s[:2000] and len(s) > 1_000_000 for s in scripts) == 1
    rest = page.replace(max(scripts, key=len), "")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", rest, re.I), "the page references the network"
    assert page.count("Plotly.newPlot") >= 1


@pytest.fixture(scope="module")
def decoder_report(tiny_decoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    return build_report(out, model=tiny_decoder, pairs=[("fr", "zh"), ("de", "sw")], dpi=72, **SMALL)


def test_report_writes_every_file(decoder_report):
    out = decoder_report.out
    page = (out / "index.html").read_text(encoding="utf-8")
    _no_remote_script(page)
    assert page.count("<script type=\"text/javascript\">/**") <= 1  # plotly.js inlined once, not per figure
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for key in ("similarity_curves", "retrieval_curves", "language_heatmap", "cross_layer", "neutrality", "embedding"):
        assert f'id="{key}"' in page
    for name in ("similarity", "similarity_layer_mean", "similarity_peaks", "cross_layer", "neutrality",
                 "neutrality_summary"):
        assert not pd.read_csv(out / "tables" / f"{name}.csv").empty
    # the tables hold the numbers of the figures: neutrality languages and sentences as requested
    assert manifest["settings"]["languages"] == ["en", "de", "fr", "zh"] and manifest["settings"]["n_sentences"] == 12
    assert set(manifest["versions"]) >= {"xling-probe", "torch", "plotly"}
    assert set(manifest["timings_s"]) >= {"extract", "similarity", "neutrality", "drift", "write"}
    for rel in manifest["files"]:
        assert (out / rel).is_file(), rel
    if find_chromium() is not None:
        for key in ("similarity_curves", "neutrality", "embedding"):
            assert (out / "figures" / f"{key}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (out / "figures" / f"{key}.svg").read_text(encoding="utf-8").lstrip().startswith("<svg")
            assert f'href="figures/{key}.png"' in page
    else:
        assert "no Chrome/Chromium was found" in page


def test_report_notes_a_pair_without_words(decoder_report):
    page = (decoder_report.out / "index.html").read_text(encoding="utf-8")
    assert any("de -> sw skipped" in n and "no sw column" in n for n in decoder_report.notes)
    assert "de -&gt; sw skipped" in page
    # fr -> zh has words: either its figure and table, or a note saying why it was skipped
    drift_ok = (decoder_report.out / "tables" / "drift_fr_zh.csv").is_file()
    assert drift_ok == ('id="drift_fr_zh"' in page)
    assert drift_ok or any("fr -> zh skipped" in n for n in decoder_report.notes)


def test_report_on_an_encoder_skips_drift(tiny_encoder, tmp_path):
    res = build_report(tmp_path / "enc", model=tiny_encoder, static=False, **SMALL)
    page = res.index.read_text(encoding="utf-8")
    _no_remote_script(page)
    assert "Language drift skipped" in page and "without an unembedding" in page
    assert not list((res.out / "tables").glob("drift_*.csv"))
    assert 'id="neutrality"' in page and not (res.out / "figures").exists()


def test_report_without_chromium_still_writes_html(tiny_encoder, tmp_path, monkeypatch):
    import xling_probe.plots as plots

    monkeypatch.setattr(plots, "find_chromium", lambda: None)
    res = build_report(tmp_path / "nochrome", model=tiny_encoder, **SMALL)
    page = res.index.read_text(encoding="utf-8")
    assert "no Chrome/Chromium was found" in page and "apt-get install chromium" in page
    assert json.loads((res.out / "manifest.json").read_text())["chromium"] is None


def test_cli_refuses_a_non_empty_folder_and_keeps_files(tiny_decoder_dir, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code = main(["report", "--model", str(tiny_decoder_dir), "--out", str(out)])
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


def test_cli_bad_pairs_and_single_language(tiny_decoder_dir, tmp_path, capsys):
    assert main(["report", "--model", str(tiny_decoder_dir), "--pairs", "frzh", "--out", str(tmp_path / "a")]) == 2
    assert "cannot read pair" in capsys.readouterr().err
    assert main(["report", "--model", str(tiny_decoder_dir), "--langs", "en", "--out", str(tmp_path / "b")]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_cli_report_runs(tiny_decoder_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["report", "--model", str(tiny_decoder_dir), "--device", "cpu", "--langs", "en,fr,zh", "--limit", "8",
                 "--bootstrap", "5", "--null-permutations", "2", "--drift-items", "3", "--pairs", "fr-zh",
                 "--no-static", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["languages"] == ["en", "fr", "zh"] and manifest["settings"]["static"] is False
    assert "model" in manifest["timings_s"]


@pytest.mark.skipif(find_chromium() is None, reason="no Chrome/Chromium: run .ci/system-packages")
def test_report_renders_offline_in_chromium(decoder_report):
    """Open index.html from file:// in Debian's Chromium with every network request blocked: each
    figure is drawn (plotly's .main-svg exists in its div) and the console shows no error."""
    sync_api = pytest.importorskip("playwright.sync_api")
    page_html = decoder_report.index.read_text(encoding="utf-8")
    div_ids = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', page_html)
    assert len(div_ids) >= 6
    errors, requests = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def block(route):
                if not route.request.url.startswith("file://"):
                    requests.append(route.request.url)
                    return route.abort()
                return route.continue_()

            page.route("**/*", block)
            page.goto(decoder_report.index.as_uri())
            page.wait_for_load_state("load")
            for div in div_ids:
                page.wait_for_selector(f"#{div} .main-svg", state="attached", timeout=30_000)
            drawn = page.evaluate("ids => ids.map(id => document.querySelectorAll('#' + id + ' .main-svg').length)",
                                  div_ids)
        finally:
            browser.close()
    assert all(n >= 1 for n in drawn), dict(zip(div_ids, drawn))
    assert errors == [] and requests == []
