"""SimilarityExplorer: figure data after a control change equals the builders' output for the new
selection, and each change refreshes each affected figure exactly once."""

from __future__ import annotations

import numpy as np
import pytest

from xling_probe.extraction.activations import Activations
from xling_probe.errors import ExportError, MetricError
from xling_probe.plots import cross_layer_heatmap, find_chromium, language_heatmap, similarity_curves
from xling_probe.measures.engine import cross_layer_similarity, similarity
from xling_probe.widgets import SimilarityExplorer

LANGS = ("en", "fr", "de", "zh")


@pytest.fixture(scope="module")
def acts():
    """5 layers x 4 languages x 30 sentences x 16 dims: a shared signal growing with depth, per-language noise."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 16))
    data = np.stack([np.stack([base * (1 + l) + rng.normal(scale=1.0 + g, size=base.shape) + g
                               for g in range(4)]) for l in range(5)]).astype(np.float32)
    return Activations(data=data, layers=tuple(range(5)), languages=LANGS, ids=tuple(f"s{i}" for i in range(30)))


@pytest.fixture(scope="module")
def result(acts):
    return similarity(acts, metrics=["cka", "anc", "p@1"], null_permutations=5, bootstrap=10, progress=False)


@pytest.fixture
def ex(result, acts):
    return SimilarityExplorer(result, acts)


def z_of(fig):
    return np.asarray(fig.data[0].z, dtype=float)


def same_traces(fw, fig):
    """Every trace of the widget has the builder's name, x and y."""
    assert [t.name for t in fw.data] == [t.name for t in fig.data]
    for got, want in zip(fw.data, fig.data):
        np.testing.assert_array_equal(np.asarray(got.x, float), np.asarray(want.x, float))
        np.testing.assert_allclose(np.asarray(got.y, float), np.asarray(want.y, float), equal_nan=True)


def counts(ex):
    return {name: ex.log[name] for name in ("heatmap", "curves", "cross")}


def test_defaults_match_the_builders(ex, result, acts):
    mean = np.nanmean(result.arrays["value"][0].reshape(5, -1), axis=1)
    assert ex.layer.value == int(np.argmax(mean))
    assert ex.metric.value == "cka"
    assert ex.pairs.value == result.pairs[:4] and ex.pair.value == result.pairs[0]
    assert counts(ex) == {"heatmap": 1, "curves": 1, "cross": 1}
    np.testing.assert_array_equal(z_of(ex.figures["heatmap"]), z_of(language_heatmap(result, "cka", ex.layer.value)))
    same_traces(ex.figures["curves"], similarity_curves(result, "cka", result.pairs[:4]))
    cross = cross_layer_similarity(acts, "en", "fr", "cka")
    np.testing.assert_allclose(z_of(ex.figures["cross"]), cross.matrix, rtol=1e-12)
    assert ex.computed[("en", "fr", "cka")] == 1


def test_layer_change_refreshes_heatmap_and_marker_once(ex, result):
    curves_before = [np.asarray(t.y, float).copy() for t in ex.figures["curves"].data]
    for layer in (0, 3, 1):
        before = counts(ex)
        ex.layer.value = layer
        assert counts(ex) == {"heatmap": before["heatmap"] + 1, "curves": before["curves"] + 1,
                              "cross": before["cross"]}
        np.testing.assert_array_equal(z_of(ex.figures["heatmap"]), z_of(language_heatmap(result, "cka", layer)))
        (marker,) = ex.figures["curves"].layout.shapes
        assert marker.x0 == marker.x1 == layer
        assert ex.figures["heatmap"].layout.title.text.endswith(f"layer {layer}")
    for old, tr in zip(curves_before, ex.figures["curves"].data):  # the curves themselves did not change
        np.testing.assert_array_equal(old, np.asarray(tr.y, float))


def test_metric_change_refreshes_everything_once_and_caches_cross(ex, result, acts):
    ex.layer.value = 2
    before = counts(ex)
    ex.metric.value = "p@1"
    assert counts(ex) == {k: v + 1 for k, v in before.items()}
    np.testing.assert_array_equal(z_of(ex.figures["heatmap"]), z_of(language_heatmap(result, "p@1", 2)))
    same_traces(ex.figures["curves"], similarity_curves(result, "p@1", result.pairs[:4]))
    assert ex.figures["curves"].layout.shapes[0].x0 == 2
    cross = ex.figures["cross"]
    assert len(cross.data) == 0 and "P@1" in cross.layout.annotations[0].text
    ex.metric.value = "anc"
    np.testing.assert_allclose(z_of(ex.figures["cross"]), cross_layer_similarity(acts, "en", "fr", "anc").matrix,
                               rtol=1e-12)
    assert not ex.figures["cross"].layout.annotations  # the explanation text is gone
    ex.metric.value = "cka"
    ex.metric.value = "anc"
    assert ex.computed == {("en", "fr", "cka"): 1, ("en", "fr", "anc"): 1}  # revisits hit the cache
    assert counts(ex) == {k: v + 4 for k, v in before.items()}


def test_pairs_and_pair_changes_touch_only_their_figure(ex, result, acts):
    before = counts(ex)
    ex.pairs.value = (("fr", "zh"), ("de", "zh"))
    assert counts(ex) == {**before, "curves": before["curves"] + 1}
    same_traces(ex.figures["curves"], similarity_curves(result, "cka", [("fr", "zh"), ("de", "zh")]))
    ex.pair.value = ("de", "zh")
    assert counts(ex) == {**before, "curves": before["curves"] + 1, "cross": before["cross"] + 1}
    np.testing.assert_array_equal(z_of(ex.figures["cross"]),
                                  z_of(cross_layer_heatmap(cross_layer_similarity(acts, "de", "zh", "cka"))))
    ex.pairs.value = ()
    assert "at least one" in ex.figures["curves"].layout.annotations[0].text and not ex.figures["curves"].data
    mid = counts(ex)
    ex.layer.value = 0 if ex.layer.value else 1  # no curve, so no marker to move
    assert counts(ex) == {**mid, "heatmap": mid["heatmap"] + 1}


def test_select_changes_several_controls_with_one_refresh_each(ex, result):
    before = counts(ex)
    assert ex.layer.value == 4  # the peak
    ex.select(layer=0, pairs=["en-zh"])
    assert counts(ex) == {"heatmap": before["heatmap"] + 1, "curves": before["curves"] + 1, "cross": before["cross"]}
    assert ex.pairs.value == (("en", "zh"),)
    assert ex.figures["curves"].layout.shapes[0].x0 == 0
    ex.select(metric="anc", layer=1, pair="fr-de")
    assert counts(ex) == {"heatmap": before["heatmap"] + 2, "curves": before["curves"] + 2,
                          "cross": before["cross"] + 1}
    np.testing.assert_array_equal(z_of(ex.figures["heatmap"]), z_of(language_heatmap(result, "anc", 1)))


def test_constructor_choices_and_no_activations(result):
    ex = SimilarityExplorer(result, metric="anc", layer=1, pairs=["fr–de", ("en", "zh")], pair="de-zh")
    assert ex.pairs.value == (("fr", "de"), ("en", "zh")) and ex.pair.value == ("de", "zh")
    np.testing.assert_array_equal(z_of(ex.figures["heatmap"]), z_of(language_heatmap(result, "anc", 1)))
    assert len(ex.figures["cross"].data) == 0
    assert "needs the activations" in ex.figures["cross"].layout.annotations[0].text
    assert ex.computed == {}


def test_bad_inputs_raise(result, acts):
    with pytest.raises(MetricError, match="SimilarityResult"):
        SimilarityExplorer(acts)
    with pytest.raises(MetricError, match="Activations"):
        SimilarityExplorer(result, acts=result)
    with pytest.raises(MetricError, match="not computed"):
        SimilarityExplorer(result, metric="mexa")
    with pytest.raises(MetricError, match="layer 9"):
        SimilarityExplorer(result, layer=9)
    with pytest.raises(MetricError, match="pair 'en-xx'"):
        SimilarityExplorer(result, pairs=["en-xx"])
    with pytest.raises(MetricError, match="pair"):
        SimilarityExplorer(result, pair=("fr", "en"))
    ex = SimilarityExplorer(result)
    with pytest.raises(MetricError, match="layer 7"):
        ex.select(layer=7)
    with pytest.raises(ExportError, match="unknown figure"):
        ex.export("nope")


def test_labels_in_any_spelling_and_the_result_s_peak(result, acts):
    """Controls read labels through xling_probe.labels and the registry: metric spellings, negative
    layers, pair separators and language spellings; the default layer is the result's own peak."""
    ex = SimilarityExplorer(result, acts, metric="P@1", layer=-1, pairs=["eng/fra", "de→zh"], pair="fr:de")
    assert ex.metric.value == "p@1" and ex.layer.value == result.layers[-1]
    assert ex.pairs.value == (("en", "fr"), ("de", "zh")) and ex.pair.value == ("fr", "de")
    assert SimilarityExplorer(result, metric="anc").layer.value == result.peak_layer("anc")
    assert "anc_abs" in ex.cross_figure().layout.annotations[0].text  # the registry's cross-layer metrics
    ex.select(metric="p_at_1", layer=-2)
    assert ex.metric.value == "p@1" and ex.layer.value == result.layers[-2]


@pytest.mark.skipif(find_chromium() is None, reason="no Chrome/Chromium for static export")
def test_export_writes_png(ex, tmp_path):
    (path,) = ex.export("curves", tmp_path / "curves", formats=("png",))
    assert path == tmp_path / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in ex.export_bar.status.value
