"""SimilarityExplorer: what a layer change sends at many languages (binary z, nothing else), the
grouped curves of many pairs (a metric change sends only y), clicks on the heatmap select a pair
(linked views), the status line while a control recomputes, and a state that survives a reload."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers
from plotly.callbacks import Points

from xling_probe.data.families import load_families
from xling_probe.extraction.activations import Activations
from xling_probe.measures.engine import similarity
from xling_probe.measures.result import SimilarityResult
from xling_probe.widgets import SimilarityExplorer
from xling_probe.widgets.curves_view import MANY_PAIRS

LANGS = ("en", "fr", "de", "zh", "ar", "ru", "es")


class Wire:
    """Hooks ``_send`` of widgets and keeps every message: (widget, JSON state, buffer paths, buffers)."""

    def __init__(self, *widgets) -> None:
        self.sent: list[tuple[object, dict, list, list]] = []
        for w in widgets:
            w._send = self._spy(w)

    def _spy(self, widget):
        def send(msg, buffers=None):
            self.sent.append((widget, msg["state"], msg.get("buffer_paths", []), list(buffers or [])))
        return send

    def updates(self, widget) -> list[tuple[dict, list, list]]:
        return [(s["_py2js_update"], p, b) for w, s, p, b in self.sent
                if w is widget and s.get("_py2js_update") is not None]


def rows(paths, buffers, prefix) -> np.ndarray:
    """The float32 rows sent under ``prefix`` (a 2-D z as the browser receives it)."""
    got = [np.frombuffer(b, dtype=np.float32) for p, b in zip(paths, buffers) if p[:len(prefix)] == prefix]
    return np.stack(got)


@pytest.fixture(scope="module")
def many():
    """80 languages (> 60: the z-only layer update) x 5 layers of random symmetric values."""
    codes = sorted(load_families())[:80]
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 1, size=(1, 5, 80, 80))
    v = (v + v.transpose(0, 1, 3, 2)) / 2
    v[:, :, np.arange(80), np.arange(80)] = np.nan
    return SimilarityResult(metrics=("cka",), layers=tuple(range(5)), languages=tuple(codes),
                            pairs=tuple(itertools.combinations(codes, 2)), arrays={"value": v})


@pytest.fixture(scope="module")
def acts():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(24, 12))
    data = np.stack([np.stack([base * (1 + l) + rng.normal(scale=1.0 + g / 3, size=base.shape)
                               for g in range(len(LANGS))]) for l in range(4)]).astype(np.float32)
    return Activations(data=data, layers=tuple(range(4)), languages=LANGS, ids=tuple(f"s{i}" for i in range(24)))


@pytest.fixture(scope="module")
def result(acts):
    return similarity(acts, metrics=["cka", "p@1"], null_permutations=3, bootstrap=5, progress=False)


def test_layer_change_at_many_languages_sends_z_only_as_binary_float32(many):
    ex = SimilarityExplorer(many, layer=0)
    fw = ex.figures["heatmap"]
    wire = Wire(fw)
    x_before = list(fw.data[0].x)
    idx = [many.languages.index(c) for c in ex.view.languages]
    for layer in (3, 1, 4):
        ex.layer.value = layer
        (update, paths, buffers), = wire.updates(fw)[-1:]
        assert list(update["style_data"]) == ["z"] and list(update["layout_data"]) == ["title.text"]
        sent = rows(paths, buffers, ["_py2js_update", "style_data", "z", 0])
        want = many.sel("cka", layer)[np.ix_(idx, idx)]
        np.testing.assert_allclose(sent, want, atol=5e-4 + 1e-7)  # 3 decimals, float32
        assert np.isnan(np.diag(sent)).all()  # the empty diagonal stays a gap
        np.testing.assert_array_equal(np.asarray(fw.data[0].z, float), np.round(want, 3))
        assert sum(memoryview(b).nbytes for b in buffers) == 80 * 80 * 4
    assert list(fw.data[0].x) == x_before
    assert ex.view.cube.shape == (5, 80, 80) and ex.view.cube.dtype == np.float32


def test_reloaded_page_gets_the_current_figures(many):
    """What the front end asks for on a reload / second tab: every figure as it is now."""
    ex = SimilarityExplorer(many, layer=0)
    ex.layer.value = 2
    for name, fw in ex.figures.items():
        state, paths, buffers = _remove_buffers(fw.get_state())
        traces = state["_widget_data"]
        assert len(traces) == len(fw.data), name
        if name == "heatmap":
            assert traces[0]["type"] == "heatmap" and len(traces[0]["z"]) == 80
            z = rows(paths, buffers, ["_widget_data", 0, "z"])
            np.testing.assert_allclose(z, np.asarray(fw.data[0].z, float), atol=1e-6)
            assert state["_widget_layout"]["title"]["text"].endswith("layer 2")
        if name == "curves":
            assert len(traces) >= 4 and all("y" in t for t in traces)


def test_click_on_a_cell_selects_its_pair(result, acts):
    ex = SimilarityExplorer(result, acts, pairs=["en-fr"])
    fw = ex.figures["heatmap"]
    shown = list(ex.view.languages)
    i, j = shown.index("de"), shown.index("zh")
    before = ex.log["cross"]
    fw.data[0]._dispatch_on_click(Points(point_inds=[[i, j]], xs=["zh"], ys=["de"], trace_name=None, trace_index=0),
                                  None)
    assert ex.pair.value == ("de", "zh")
    assert ("de", "zh") in ex.pairs.value and ("en", "fr") in ex.pairs.value  # added to the curves
    assert ex.log["cross"] == before + 1
    assert [t.name for t in ex.figures["curves"].data if t.mode == "lines+markers"] == ["en–fr", "de–zh"]
    np.testing.assert_allclose(np.asarray(ex.figures["cross"].data[0].z, float),
                               ex.cross_result(("de", "zh"), "cka").matrix, rtol=1e-6)
    # by labels only (no indices), and the reverse cell (j, i) selects the same computed pair
    fw.data[0]._dispatch_on_click(Points(point_inds=[], xs=["en"], ys=["ar"], trace_name=None, trace_index=0), None)
    assert ex.pair.value == ("en", "ar")
    assert ex.select_cell(j, i) == ("de", "zh") and ex.pair.value == ("de", "zh")
    assert ex.select_cell(i, i) is None and ex.pair.value == ("de", "zh")  # the diagonal does nothing


def test_click_after_a_full_refresh_still_works(result, acts):
    ex = SimilarityExplorer(result, acts)
    ex.metric.value = "p@1"  # the heatmap is rebuilt: the callback is attached to the new trace
    shown = list(ex.view.languages)
    i, j = shown.index("fr"), shown.index("ru")
    ex.figures["heatmap"].data[0]._dispatch_on_click(
        Points(point_inds=[[i, j]], xs=[], ys=[], trace_name=None, trace_index=0), None)
    assert ex.pair.value == ("fr", "ru")


def test_many_pairs_are_grouped_and_a_metric_change_sends_only_y(result, acts):
    ex = SimilarityExplorer(result, acts)
    ex.pairs.value = tuple(result.pairs)  # 21 pairs > MANY_PAIRS
    assert len(result.pairs) > MANY_PAIRS
    view, fw = ex.curves_view, ex.figures["curves"]
    assert view is not None and len(fw.data) < len(result.pairs)
    for pair in (result.pairs[0], result.pairs[-1]):
        trace, part = view.locate(pair)
        np.testing.assert_array_equal(np.asarray(fw.data[trace].y, float)[part], result.sel("cka", None, *pair))
    selected = [t for t in fw.data if t.name.endswith("(selected)")]
    assert len(selected) == 1 and selected[0].name.startswith("–".join(ex.pair.value))
    wire = Wire(fw)
    traces_before = [t.uid for t in fw.data]
    ex.metric.value = "p@1"
    assert [t.uid for t in fw.data] == traces_before  # same traces, restyled
    (update, _paths, buffers), = wire.updates(fw)
    assert set(update["style_data"]) <= {"y", "name", "text"} and "x" not in update["style_data"]
    assert set(update["layout_data"]) == {"title.text", "yaxis.title.text"}
    for pair in (result.pairs[0], result.pairs[5]):
        trace, part = view.locate(pair)
        np.testing.assert_array_equal(np.asarray(fw.data[trace].y, float)[part], result.sel("p@1", None, *pair))
    assert any("→" in t.name for t in fw.data if t.name)  # a directional metric: a→b names
    assert buffers  # y went as binary buffers
    # selecting another pair draws it on top
    ex.pair.value = ("ar", "ru")
    selected = [t for t in ex.figures["curves"].data if t.name and t.name.endswith("(selected)")]
    np.testing.assert_array_equal(np.asarray(selected[0].y, float), result.sel("p@1", None, "ar", "ru"))


def test_status_says_what_is_computed_while_it_runs(result, acts, monkeypatch):
    ex = SimilarityExplorer(result, acts)
    seen = []
    import xling_probe.widgets.similarity_explorer as module

    real = module.cross_layer_similarity

    def spy(*args, **kw):
        seen.append(ex.status.value)
        old = ex.figures["cross"].data[0].z  # the old figure is still shown while this runs
        seen.append(np.asarray(old, float).shape)
        return real(*args, **kw)

    monkeypatch.setattr(module, "cross_layer_similarity", spy)
    ex.pair.value = ("fr", "zh")
    assert "computing layer × layer" in seen[0] and "fr–zh" in seen[0]
    assert seen[1] == (4, 4)
    assert "computing" not in ex.status.value and "ms" in ex.status.value
    assert ex.status_log[-1].startswith("computing layer × layer")
    ex.metric.value = "p@1"
    assert ex.status_log[-1].startswith("computing P@1") or "P@1" in ex.status_log[-1]
