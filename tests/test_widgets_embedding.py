"""EmbeddingExplorer: the map equals the builder's for the selection, projections are cached,
UMAP in the background gives the synchronous result, and bad inputs raise."""

from __future__ import annotations

import numpy as np
import pytest

from xling_probe.extraction.activations import Activations
from xling_probe.errors import ExportError, MetricError
from xling_probe.plots import embedding_map, find_chromium, project_2d
from xling_probe.widgets import EmbeddingExplorer

LANGS = ("en", "fr", "de", "zh")
pytestmark = pytest.mark.filterwarnings("ignore:n_jobs value")


@pytest.fixture(scope="module")
def acts():
    """5 layers x 4 languages x 30 sentences x 16 dims: shared sentence signal plus a language offset."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(30, 16))
    offsets = rng.normal(scale=3.0, size=(4, 16))
    data = np.stack([np.stack([base * (1 + l) + offsets[g] + rng.normal(scale=0.5, size=base.shape)
                               for g in range(4)]) for l in range(5)]).astype(np.float32)
    texts = {lang: tuple(f"{lang} sentence number {i}" for i in range(30)) for lang in LANGS}
    return Activations(data=data, layers=tuple(range(5)), languages=LANGS, ids=tuple(f"s{i}" for i in range(30)),
                       texts=texts)


def same_points(fw, traces):
    assert [t.name for t in fw.data] == [t.name for t in traces]
    for got, want in zip(fw.data, traces):
        np.testing.assert_array_equal(np.asarray(got.x), np.asarray(want.x))
        np.testing.assert_array_equal(np.asarray(got.y), np.asarray(want.y))
        assert tuple(got.text) == tuple(want.text)
        assert got.marker.color == want.marker.color


def test_pca_map_equals_builder_and_is_cached(acts):
    ex = EmbeddingExplorer(acts)
    fw = ex.figures["map"]
    assert ex.key() == (2, "pca", "raw") and ex.log["map"] == 1
    same_points(fw, embedding_map(acts, 2, centering=False).data)
    assert fw.data[1].text[3] == "fr s3<br>fr sentence number 3"  # language, id and sentence
    ex.layer.value = 4
    same_points(fw, embedding_map(acts, 4, centering=False).data)
    assert ex.log["map"] == 2
    ex.view.value = "centered"
    same_points(fw, embedding_map(acts, 4, centering=True).data[4:])  # the builder's centered panel
    assert ex.log["map"] == 3
    ex.layer.value = 2
    ex.view.value = "raw"
    ex.layer.value = 4
    assert ex.log["map"] == 6
    assert ex.computed == {(2, "pca", "raw"): 1, (4, "pca", "raw"): 1, (4, "pca", "centered"): 1,
                           (2, "pca", "centered"): 1}
    same_points(fw, embedding_map(acts, 4, centering=False).data)
    assert fw.layout.title.text == "Sentence representations at layer 4"


def test_background_umap_equals_synchronous(acts):
    ex = EmbeddingExplorer(acts, layer=1)
    ex.method.value = "umap"
    assert "computing UMAP for layer 1" in ex.status.value or ex.computed[(1, "umap", "raw")] == 1
    assert ex.wait(timeout=120)
    assert ex.status.value == "" and ex.log["map"] == 2 and ex.computed[(1, "umap", "raw")] == 1
    sync = EmbeddingExplorer(acts, layer=1, method="umap", background=False)
    assert sync.log["map"] == 1 and sync.status.value == ""  # drawn before the constructor returned
    np.testing.assert_allclose(ex.projection(), sync.projection())
    same_points(ex.figures["map"], sync.figures["map"].data)
    direct = project_2d(acts.data[1].reshape(120, 16), "umap", seed=0).reshape(4, 30, 2)
    np.testing.assert_allclose(ex.projection(), direct)
    ex.method.value = "pca"
    ex.method.value = "umap"  # cached: drawn at once, nothing recomputed
    assert ex.status.value == "" and ex.log["map"] == 4 and ex.computed[(1, "umap", "raw")] == 1


def test_precomputed_layer_is_only_cached_until_visited(acts):
    ex = EmbeddingExplorer(acts, layer=0)
    assert ex.precompute(layers=[3], method="umap") == 1
    assert ex.wait(timeout=120)
    assert ex.log["map"] == 1 and ex.computed[(3, "umap", "raw")] == 1  # the user is elsewhere: not drawn
    ex.layer.value = 3
    ex.method.value = "umap"
    assert ex.log["map"] == 3 and ex.status.value == ""
    assert ex.computed[(3, "umap", "raw")] == 1
    assert ex.precompute(layers=[3], method="umap") == 0  # already cached


def test_max_points_keeps_the_same_sentences_in_every_language(acts):
    ex = EmbeddingExplorer(acts, max_points=60)
    assert ex.acts.n_sentences == 15 and len(ex.figures["map"].data[0].x) == 15
    ids = [t.split("<br>")[0].split()[1] for t in ex.figures["map"].data[0].text]
    assert ids == [t.split("<br>")[0].split()[1] for t in ex.figures["map"].data[3].text] == list(ex.acts.ids)
    same_points(ex.figures["map"], embedding_map(ex.acts, 2, centering=False).data)


def test_bad_inputs_raise(acts):
    with pytest.raises(MetricError, match="Activations"):
        EmbeddingExplorer(acts.data)
    with pytest.raises(MetricError, match="layer 9"):
        EmbeddingExplorer(acts, layer=9)
    with pytest.raises(MetricError, match="method"):
        EmbeddingExplorer(acts, method="tsne")
    with pytest.raises(MetricError, match="max_points"):
        EmbeddingExplorer(acts, max_points=5)
    with pytest.raises(MetricError, match="max_points"):
        EmbeddingExplorer(acts, max_points=1.5)
    ex = EmbeddingExplorer(acts)
    with pytest.raises(MetricError, match="layer 7"):
        ex.precompute(layers=[7])
    with pytest.raises(MetricError, match="view"):
        ex.projection(view="whitened")
    with pytest.raises(ExportError, match="unknown figure"):
        ex.export("curves")


@pytest.mark.skipif(find_chromium() is None, reason="no Chrome/Chromium for static export")
def test_export_writes_png(acts, tmp_path):
    (path,) = EmbeddingExplorer(acts).export("map", tmp_path / "map.png", formats=("png",))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pca_axes_state_the_explained_variance_of_the_shown_layer(acts):
    ex = EmbeddingExplorer(acts)
    fw = ex.figures["map"]
    x = acts.data[acts.layer_index(2)].reshape(-1, acts.hidden_size).astype(np.float64)
    ev = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    share = ev[:2] / ev.sum()
    assert fw.layout.xaxis.title.text == f"PC1 ({100 * share[0]:.1f}% of variance)"
    assert fw.layout.yaxis.title.text == f"PC2 ({100 * share[1]:.1f}% of variance)"
    ex.view.value = "centered"
    assert fw.layout.xaxis.title.text.startswith("PC1 (") and fw.layout.xaxis.title.text != f"PC1 ({100 * share[0]:.1f}% of variance)"
