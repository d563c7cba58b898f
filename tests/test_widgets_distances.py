"""The Distances view and the workbench's Distances tab: the numbers are those of xp.distance_correlations, the
figure follows the metric and value pickers, the button is disabled while it runs and errors are shown."""

from __future__ import annotations

import numpy as np
import pytest

import xling_probe as xp
from xling_probe.errors import CorpusError, MetricError
from xling_probe.measures.result import SimilarityResult
from xling_probe.widgets import DistancesView, Workbench

LANGS = ("en", "de", "fr", "ru", "zh")
KINDS = ("genetic", "syntactic")
OPTIONS = dict(source="uriel", kinds=KINDS, permutations=49)


def _result(langs=LANGS, n_layers=3, seed=0) -> SimilarityResult:
    rng = np.random.default_rng(seed)
    n = len(langs)
    value = rng.random((2, n_layers, n, n))
    value = (value + value.transpose(0, 1, 3, 2)) / 2
    for k in range(n):
        value[:, :, k, k] = np.nan
    pairs = tuple((a, b) for i, a in enumerate(langs) for b in langs[i + 1:])
    return SimilarityResult(metrics=("cka_debiased", "p@1"), layers=tuple(range(n_layers)), languages=tuple(langs),
                            pairs=pairs, arrays={"value": value})


def _lines(view) -> dict:
    return {t.name: np.asarray(t.y, float) for t in view.figure.data}


def test_view_shows_the_numbers_of_distance_correlations():
    result = _result()
    view = DistancesView(result, **OPTIONS)
    assert not view.tables and view.metric.disabled and view.value.disabled and not view.button.disabled
    assert view.metric.value == "cka_debiased" and "5 languages, 10 pairs" in view.status.value
    view.button.click()
    assert view.status.value.startswith("done in") and not view.button.disabled and not view.metric.disabled
    dist = xp.language_distances(LANGS, KINDS, source="uriel")
    for metric in ("cka_debiased", "p@1"):
        want = xp.distance_correlations(result, dist, metric, permutations=49, seed=0)
        got = view.tables[metric]
        for col in ("r", "p", "partial_r", "partial_p"):
            np.testing.assert_allclose(got[col], want[col], rtol=1e-12, equal_nan=True)
    want = xp.distance_correlations(result, dist, "cka_debiased", permutations=49, seed=0)
    lines = _lines(view)
    assert set(lines) == {"genetic", "syntactic", "script"} and view.log["figure"] == 1
    for kind, y in lines.items():
        np.testing.assert_allclose(y, want[want.kind == kind]["r"], rtol=1e-12)
    best = want[want.kind == "genetic"].loc[want[want.kind == "genetic"]["r"].abs().idxmax()]
    assert f"<b>genetic</b>: strongest r {best['r']:+.3f} at layer {int(best['layer'])}" in view.summary.value
    # the metric picker and the value toggle refresh the figure in place
    view.metric.value = "p@1"
    want = xp.distance_correlations(result, dist, "p@1", permutations=49, seed=0)
    assert view.log["figure"] == 2
    np.testing.assert_allclose(_lines(view)["genetic"], want[want.kind == "genetic"]["r"], rtol=1e-12)
    view.value.value = "partial_r"
    assert view.log["figure"] == 3 and set(_lines(view)) == {"genetic", "syntactic"}  # the control has no partial r
    np.testing.assert_allclose(_lines(view)["syntactic"], want[want.kind == "syntactic"]["partial_r"], rtol=1e-12)
    assert "strongest partial_r" in view.summary.value
    assert view.export._get_table() is view.tables["p@1"]
    assert DistancesView(result, **OPTIONS).export._get_table().empty  # nothing computed yet: no rows


def test_button_is_disabled_while_running_and_errors_are_shown(monkeypatch):
    import xling_probe.widgets.distances_view as module

    view = DistancesView(_result(), **OPTIONS)
    seen = {}

    def failing(*args, **kwargs):
        seen["disabled"], seen["status"] = view.button.disabled, view.status.value
        raise MetricError("the distances failed (test)")

    monkeypatch.setattr(module, "language_distances", failing)
    view.button.click()
    assert seen["disabled"] is True and seen["status"].startswith("running…")
    assert "MetricError: the distances failed (test)" in view.status.value and "#b00" in view.status.value
    assert not view.button.disabled and not view.tables and view.metric.disabled
    with pytest.raises(MetricError):
        view.compute()  # from a script the error is raised


def test_too_few_languages_say_why():
    view = DistancesView(_result(("en", "de", "ru")), **OPTIONS)
    assert view.button.disabled and "at least 4 languages; this result has 3 (en, de, ru)" in view.status.value


def test_transliteration_part_busy_error_and_unavailable():
    seen = {}

    def failing():
        seen["disabled"], seen["status"] = view.translit_button.disabled, view.translit_status.value
        raise CorpusError("romanization needs the 'uroman' package (test)")

    view = DistancesView(_result(), transliterate=failing, **OPTIONS)
    view.translit_button.click()
    assert seen["disabled"] is True and seen["status"].startswith("running…")
    assert "CorpusError: romanization needs the 'uroman' package (test)" in view.translit_status.value
    assert not view.translit_button.disabled and view.translit_table is None
    off = DistancesView(_result(), transliteration_unavailable="every language is written in Latin script", **OPTIONS)
    assert off.translit_button.disabled and "No transliteration: every language is written in Latin" in \
        off.translit_status.value
    assert DistancesView(_result(), **OPTIONS).translit_button is None  # neither given: distances only


def test_workbench_distances_tab_equals_the_api(tiny_decoder):
    wb = Workbench(tiny_decoder, xp.ParallelCorpus.sample(languages=LANGS).head(8), languages=LANGS, sentences=8,
                   null_permutations=2, bootstrap=2, distance_options=OPTIONS).run()
    tab = wb.tabs.children[wb.tabs.titles.index("Distances")]
    assert tab is wb.explorers["distances"] and tab.result is wb.result
    tab.button.click()
    dist = xp.language_distances(LANGS, KINDS, source="uriel")
    want = xp.distance_correlations(wb.result, dist, "cka_debiased", permutations=49, seed=0)
    np.testing.assert_allclose(tab.tables["cka_debiased"]["r"], want["r"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(_lines(tab)["genetic"], want[want.kind == "genetic"]["r"], rtol=1e-12)
    # the transliteration part: the gap of ru and zh against en, original vs romanized, as the API computes it
    tab.translit_button.click()
    assert tab.translit_status.value.startswith("done in"), tab.translit_status.value
    corpus = xp.ParallelCorpus.sample(languages=LANGS).head(8).select_languages(["en", "ru", "zh"])
    want = xp.transliteration_gap(tiny_decoder, corpus=corpus, pairs=[("en", "ru"), ("en", "zh")], n_boot=2, seed=0,
                                  pooling="mean", progress=False)
    got = tab.translit_table
    assert got is wb.transliteration and list(got["version"]) == list(want["version"])
    for col in ("matched", "random", "gap", "gap_low", "gap_high"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=col)
    rom = next(t for t in tab.translit_figure.data if t.name == "en–zh romanized")
    np.testing.assert_allclose(np.asarray(rom.y, float), want[(want.lang_b == "zh") & (want.version == "romanized")]
                               ["gap"], rtol=1e-6, atol=1e-6)
