"""`xling-probe report` on the tiny models: every expected file, a self-contained page, clean bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from xling_probe.cli.main import main
from xling_probe.plots import find_chromium
from xling_probe.report.build import REPORT_METRICS, STAGES, build_report
from xling_probe.report.captions import (
    curve_shape,
    describe_curve,
    describe_drift,
    describe_heatmap,
    describe_items,
    describe_mexa,
)

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


def test_drift_pairs_read_the_labels_grammar():
    from xling_probe.errors import XlingProbeError
    from xling_probe.report.build import DEFAULT_PAIRS, drift_pairs

    assert drift_pairs(None) == list(DEFAULT_PAIRS)
    assert drift_pairs("fra-zho, de/fr") == [("fr", "zh"), ("de", "fr")]
    assert drift_pairs([("fr", "zh-Hant"), "de→fr", "fr-zh-Hant"]) == [("fr", "zh-Hant"), ("de", "fr")]
    with pytest.raises(XlingProbeError, match="cannot read pair 'frzh'"):
        drift_pairs("frzh")
    with pytest.raises(XlingProbeError, match="into itself"):
        drift_pairs("fr-fra")
    with pytest.raises(XlingProbeError, match="no drift pairs"):
        drift_pairs(" , ")


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


# ------------------------------------------------------------------------------------------ issue 11, section 5
def _similarity_result(values: dict, null_max: dict | None = None, metric: str = "cka_debiased"):
    """A hand-built SimilarityResult over en, fr, zh: ``values[(a, b)]`` is the per-layer curve."""
    from xling_probe.measures.result import SimilarityResult

    langs = ("en", "fr", "zh")
    n_l = len(next(iter(values.values())))
    arrays = {k: np.full((1, n_l, 3, 3), np.nan) for k in ("value", "null_max", "null_mean")}
    for (a, b), v in values.items():
        i, j = langs.index(a), langs.index(b)
        arrays["value"][0, :, i, j] = arrays["value"][0, :, j, i] = v
        nm = (null_max or {}).get((a, b), np.zeros(n_l))
        arrays["null_max"][0, :, i, j] = arrays["null_max"][0, :, j, i] = nm
        arrays["null_mean"][0, :, i, j] = arrays["null_mean"][0, :, j, i] = 0.0
    return SimilarityResult(metrics=(metric,), layers=tuple(range(n_l)), languages=langs, pairs=tuple(values),
                            arrays=arrays, settings={"null_permutations": 5, "bootstrap": 0})


def test_describe_curve_says_whether_the_curve_rises_and_falls():
    sim = _similarity_result({("en", "fr"): [0.1, 0.4, 0.6, 0.5, 0.2], ("en", "zh"): [0.1, 0.3, 0.5, 0.4, 0.1],
                              ("fr", "zh"): [0.0, 0.1, 0.2, 0.1, 0.0]},
                             null_max={("en", "fr"): [0.3] * 5, ("en", "zh"): [0.6] * 5})
    text = describe_curve(sim, "cka_debiased", [("en", "fr"), ("en", "zh")])
    # mean over the two pairs: [0.10, 0.35, 0.55, 0.45, 0.15]
    assert text == ("This run: debiased CKA of the mean over the 2 pairs shown is 0.10 at layer 0, peaks at 0.55 at "
                    "layer 2 and is 0.15 at layer 4: it rises through the middle layers and falls in the last ones "
                    "(the 'first align, then predict' shape). At layer 2, 1 of 2 pairs is above every shuffled pairing.")
    rising = _similarity_result({("en", "fr"): [0.1, 0.2, 0.3, 0.4, 0.5]})
    text = describe_curve(rising, "cka_debiased", [("en", "fr")])
    assert "en–fr is 0.10 at layer 0 and peaks at 0.50 at the last layer (4)" in text
    assert "does not show the 'first align, then predict' shape" in text and "1 of 1 pair is above" in text
    assert curve_shape([0.5, 0.4, 0.3]) == "fall" and curve_shape([0.3, 0.31, 0.3]) == "flat"
    assert curve_shape([0.1, 0.5, 0.49]) == "rise"  # falls by 0.01 < tol after its peak


def test_describe_heatmap_names_the_highest_and_lowest_pair():
    sim = _similarity_result({("en", "fr"): [0.1, 0.6], ("en", "zh"): [0.2, 0.5], ("fr", "zh"): [0.3, 0.2]})
    assert describe_heatmap(sim, "cka_debiased", 1) == (
        "This run, layer 1: the highest pair is en–fr (0.60), the lowest fr–zh (0.20); 3 pairs, spread 0.40.")
    assert "highest pair is fr–zh (0.30), the lowest en–fr (0.10)" in describe_heatmap(sim, "cka_debiased", 0)


def test_describe_mexa_gives_mean_and_max_over_layers():
    sim = _similarity_result({("en", "fr"): [0.2, 0.5, 0.8, 0.6, 0.4], ("en", "zh"): [0.0, 0.1, 0.3, 0.4, 0.2]},
                             metric="mexa")
    text = describe_mexa(sim, [("en", "fr"), ("en", "zh")])
    assert "en–fr mean 0.50, max 0.80 (layer 2); en–zh mean 0.20, max 0.40 (layer 3)" in text
    # averaged curve [0.10, 0.30, 0.55, 0.50, 0.30]: mean 0.35, max 0.55 at layer 2
    assert text.endswith("Averaged over these pairs: mean over layers 0.35, max over layers 0.55 (layer 2).")


def _drift_result(p_target, p_latent, p_source, *, source="fr", target="zh", dropped=None, n_items=2):
    """A DriftResult whose per-layer means are exactly the given curves (items = curve +- 0.001...)."""
    from xling_probe.lens.drift import DriftResult
    from xling_probe.lens.intervals import mean_intervals
    from xling_probe.lens.tokensets import DropReport

    curves = {"p_target": p_target, "p_latent": p_latent, "p_source": p_source,
              "entropy_bits": [1.0] * len(p_target)}
    offsets = np.linspace(-1e-3, 1e-3, n_items)
    values = {m: np.asarray(c, float)[None, :] + offsets[:, None] for m, c in curves.items()}
    summary = {m: mean_intervals(v, n_boot=20) for m, v in values.items()}
    return DriftResult(model="m", source=source, target=target, latent="en", task="translation",
                       layers=tuple(range(len(p_target))), concepts=tuple(f"c{i}" for i in range(n_items)),
                       values=values, summary=summary, prompts=("p",) * n_items,
                       dropped=DropReport() if dropped is None else dropped)


def test_describe_drift_textbook_shape():
    d = _drift_result(p_target=[0.0, 0.0, 0.0, 0.05, 0.3, 0.6], p_latent=[0.0, 0.15, 0.3, 0.4, 0.2, 0.1],
                      p_source=[0.1, 0.05, 0.02, 0.01, 0.01, 0.01])
    text = describe_drift(d)
    assert text.startswith("Wendler et al. (2024) report")
    assert ("This run (2 items): P(en) peaks at 0.40 at layer 3; P(fr) (source) peaks at 0.10 at layer 0; P(zh) "
            "(target) reaches half its maximum at layer 4 and ends at 0.60 at layer 5. P(en) is above P(zh) at layers "
            "1–3, before P(zh) rises: this model shows the textbook shape.") in text


def test_describe_drift_when_the_model_does_not_show_it():
    # the Gemma 3 270M fr -> zh case: P(source) dominates the middle layers, P(en) stays near 0.06
    d = _drift_result(p_target=[0.0, 0.0, 0.01, 0.02, 0.1, 0.4], p_latent=[0.0, 0.01, 0.03, 0.06, 0.05, 0.04],
                      p_source=[0.2, 0.3, 0.63, 0.5, 0.2, 0.1])
    text = describe_drift(d)
    assert "P(en) peaks at 0.06 at layer 3; P(fr) (source) peaks at 0.63 at layer 2" in text
    assert "P(zh) (target) reaches half its maximum at layer 5 and ends at 0.40 at layer 5" in text
    assert ("This model does not show the textbook shape: before P(zh) rises, P(en) is never both above P(zh) and "
            "at least 0.1. Its middle layers favour the source word (fr) over English.") in text
    assert "shows the textbook shape" not in text
    never = describe_drift(_drift_result(p_target=[0.0, 0.01, 0.02], p_latent=[0.0, 0.3, 0.1], p_source=[0.1] * 3))
    assert "P(zh) (target) stays below 0.1 at every layer" in never and "P(zh) never reaches 0.1, so the target word does not rise" in never
    late = describe_drift(_drift_result(p_target=[0.0, 0.0, 0.3], p_latent=[0.0, 0.2, 0.5], p_source=[0.0] * 3))
    assert "at the last layer P(en) (0.50) is not below P(zh) (0.30)" in late


def test_describe_items_says_which_count_is_which():
    from xling_probe.lens.tokensets import DropReport

    drop = DropReport(entries=(("c1", "zh", "latent (en) and target (zh) token sets overlap"),
                               ("c2", "zh", "latent (en) word is a substring of the target (zh) word"),
                               ("c2", "zh", "latent (en) and target (zh) token sets overlap"),
                               ("c3", "zh", "no word in zh")), n_total=10)
    d = _drift_result([0.1] * 3, [0.1] * 3, [0.1] * 3, dropped=drop, n_items=4)
    assert describe_items(d, 4) == ("10 word-list items; 3 dropped by the filters (en/zh token overlap: 2, en word "
                                    "inside zh word: 1, no zh word: 1; an item can fail several); 7 usable; the "
                                    "first 4 used (drift_items=4).")
    few = _drift_result([0.1] * 3, [0.1] * 3, [0.1] * 3, dropped=DropReport(n_total=5), n_items=5)
    assert describe_items(few, 16) == ("5 word-list items; none dropped by the filters; 5 usable; all 5 used "
                                       "(drift_items=16).")


def test_report_page_ids_are_unique(decoder_report):
    """A heading sharing its id with a figure's div receives the plot (plotly draws into
    getElementById) and leaves the figure's fixed-height div empty: the blank gaps of issue 11."""
    page = decoder_report.index.read_text(encoding="utf-8")
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    divs = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', page)
    assert {"cross_layer", "neutrality", "embedding", "lens"} <= set(divs)
    for div in divs:  # each figure is drawn into its own div, the only element with that id
        assert page.count(f'getElementById("{div}")') >= 1 and page.count(f'id="{div}"') == 1


def test_report_has_mexa_and_anc_figures(decoder_report):
    assert "mexa" in REPORT_METRICS and "anc" in REPORT_METRICS
    out = decoder_report.out
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="mexa_curves"' in page and 'id="anc_curves"' in page
    table = pd.read_csv(out / "tables" / "similarity.csv")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "mexa" in manifest["settings"]["metrics"]
    findings = {s["key"]: s["finding"] for s in manifest["sections"]}
    for metric, fig_id in (("mexa", "mexa_curves"), ("anc", "anc_curves")):
        fig = decoder_report.figures[fig_id]
        assert fig.layout.yaxis.title.text == {"mexa": "MEXA alignment", "anc": "ANC (signed)"}[metric]
        nulls = [t for t in fig.data if t.name == "shuffled-pairing null"]
        assert len(nulls) == 1 and nulls[0].fill == "toself"
        for b in ("de", "fr", "zh"):
            rows = table[(table.metric == metric) & (table.lang_a == "en") & (table.lang_b == b)].sort_values("layer")
            (line,) = [t for t in fig.data if t.name == f"en–{b}"]
            np.testing.assert_allclose(line.y, rows["value"], atol=1e-12)
            if metric == "mexa":  # the caption states MEXA's mean and max over layers, computed
                v = rows["value"].to_numpy()
                layer = int(rows["layer"].to_numpy()[v.argmax()])
                assert f"en–{b} mean {_two(v.mean())}, max {_two(v.max())} (layer {layer})" in findings["mexa"]
    assert findings["anc"].startswith("This run: ANC (signed) of the mean over the 3 pairs shown")


def _two(x: float) -> str:
    from xling_probe.report.captions import _f

    return _f(x)


def test_report_drift_note_states_the_counts(decoder_report):
    manifest = json.loads((decoder_report.out / "manifest.json").read_text(encoding="utf-8"))
    (sec,) = [s for s in manifest["sections"] if s["key"] == "drift_fr_zh"]
    if not sec["figures"]:
        pytest.skip("the tiny model's drift fr -> zh was skipped")
    (note,) = sec["notes"]
    m = re.fullmatch(r"(\d+) word-list items; (\d+) dropped by the filters \(.*\); (\d+) usable; "
                     r"(?:the first|all) (\d+) used \(drift_items=3\)\.", note)
    assert m, note
    total, dropped, usable, used = map(int, m.groups())
    assert total == 174 and dropped + usable == total and used == min(3, usable)
    assert sec["finding"].startswith("Wendler et al. (2024) report") and "This run (" in sec["finding"]
    fig = decoder_report.figures["drift_fr_zh"]
    assert fig.layout.title.text.endswith(f"(translation, {used} items)")


def test_report_stage_bar_ends_at_total(tiny_decoder, tmp_path, capsys):
    res = build_report(tmp_path / "bar", model=tiny_decoder, static=False, **{**SMALL, "progress": True})
    err = capsys.readouterr().err
    counts = re.findall(r"report:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)", err)
    assert counts and counts[-1] == (str(len(STAGES)), str(len(STAGES))), counts[-3:]
    manifest = json.loads((res.out / "manifest.json").read_text(encoding="utf-8"))
    assert [s["stage"] for s in manifest["stages"]] == list(STAGES) == [s["stage"] for s in res.stages]
    status = {s["stage"]: s["status"] for s in manifest["stages"]}
    optional = ("neurons", "distances", "transliteration")
    assert status["model"] == "skipped" and status["static_export"] == "skipped"
    assert all(status[k] == "skipped" for k in optional), status
    for key in optional:
        assert f"--{key}" in manifest["stages"][STAGES.index(key)]["reason"]
    assert all(v == "ran" for k, v in status.items() if k not in ("model", "static_export") + optional), status
    assert "reason" in manifest["stages"][1] and "seconds" in manifest["stages"][0]


def test_report_checks_languages_before_loading_the_model(tmp_path, monkeypatch):
    import xling_probe.models.loading as models
    from xling_probe.errors import LanguageCodeError

    def no_load(*args, **kwargs):
        raise AssertionError("load_model was called before the languages were checked")

    monkeypatch.setattr(models, "load_model", no_load)
    with pytest.raises(LanguageCodeError, match="'xx'"):
        build_report(tmp_path / "typo", model="some/model", langs=["en", "xx"], progress=False)
    with pytest.raises(Exception, match="at least 2"):
        build_report(tmp_path / "one", model="some/model", langs=["en"], progress=False)


def test_cli_report_passes_neurons_and_no_cache(tiny_decoder_dir, tmp_path, monkeypatch):
    import xling_probe.report.build as build

    import functools

    seen = {}

    @functools.wraps(build.build_report)  # the command reads its defaults from the signature
    def fake(out, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(build, "build_report", fake)
    with pytest.raises(SystemExit):
        main(["report", "--model", str(tiny_decoder_dir), "--neurons", "--no-cache", "--out", str(tmp_path / "r")])
    assert seen["neurons"] is True and seen["cache"] is False
    seen.clear()
    with pytest.raises(SystemExit):
        main(["report", "--model", str(tiny_decoder_dir), "--out", str(tmp_path / "s")])
    assert seen["neurons"] is False and seen["cache"] is True
