"""Views of many languages: order (cluster / family / script / list), filters, readability at 402
languages, the widget's z-only layer update and the report's many-language section."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xling_probe.data.families import UNCLASSIFIED, language_family, language_script, load_families
from xling_probe.errors import MetricError
from xling_probe.measures.result import SimilarityResult
from xling_probe.plots import language_heatmap, order_languages, select_languages

# 402 distinct codes: the UDHR corpus's languages are not needed, a mix of real codes and private-use variants is
BASE = sorted(load_families())


def _codes(n: int) -> tuple[str, ...]:
    out = list(BASE[:n])
    k = 0
    while len(out) < n:
        out.append(f"{BASE[k % len(BASE)]}-x-v{k}")
        k += 1
    return tuple(out)


def make_result(langs, n_layers=3, seed=0, planted=None) -> SimilarityResult:
    """Random symmetric cka values; ``planted``: lists of languages made similar to each other (0.9+)."""
    rng = np.random.default_rng(seed)
    n = len(langs)
    v = rng.uniform(0.0, 0.5, size=(1, n_layers, n, n))
    for block in planted or ():
        idx = [langs.index(c) for c in block]
        v[np.ix_([0], range(n_layers), idx, idx)] = rng.uniform(0.9, 1.0, size=(1, n_layers, len(idx), len(idx)))
    v = (v + v.transpose(0, 1, 3, 2)) / 2
    i = np.arange(n)
    v[:, :, i, i] = np.nan
    return SimilarityResult(metrics=("cka",), layers=tuple(range(n_layers)), languages=tuple(langs),
                            pairs=tuple(itertools.combinations(langs, 2)), arrays={"value": v})


@pytest.fixture(scope="module")
def big():
    return make_result(_codes(402), n_layers=4)


def test_family_table_and_reader():
    fams = load_families()
    assert len(fams) >= 340 and fams["fra"] == "Indo-European" and fams["swa"] == "Atlantic-Congo"
    assert language_family("fr") == language_family("fra") == "Indo-European"
    assert language_family("zh-Hant") == "Sino-Tibetan" and language_family("qaa") == UNCLASSIFIED
    assert language_script("ru") == "Cyrl" and language_script("zh-Hant") == "Hant"


def test_orders_are_permutations(big):
    langs = list(big.languages)
    m = big.sel("cka", 1)
    for order in (None, "cluster", "family", "script", langs[::-1]):
        perm = order_languages(langs, order, m)
        assert sorted(perm) == list(range(len(langs)))
    with pytest.raises(MetricError):
        order_languages(langs, langs[:-1], m)
    with pytest.raises(MetricError):
        order_languages(langs, "alphabet", m)


def test_cluster_order_makes_planted_blocks_contiguous():
    langs = list(_codes(30))
    rng = np.random.default_rng(3)
    shuffled = list(rng.permutation(langs))
    a, b = shuffled[:6], shuffled[10:16]
    res = make_result(langs, planted=[a, b])
    fig = language_heatmap(res, "cka", 1, order="cluster", dendrogram=True)
    shown = list(fig.layout.meta["languages"])
    for block in (a, b):
        pos = sorted(shown.index(c) for c in block)
        assert pos[-1] - pos[0] == len(block) - 1, (block, pos)
    assert len(fig.data) == 2 and fig.data[1].name == "dendrogram"
    z = np.asarray(fig.data[0].z, float)
    idx = [langs.index(c) for c in shown]
    np.testing.assert_array_equal(z, res.sel("cka", 1)[np.ix_(idx, idx)])


@pytest.mark.parametrize("by", ["family", "script"])
def test_grouped_orders_keep_groups_together(big, by):
    fig = language_heatmap(big, "cka", 0, order=by)
    groups = list(fig.layout.meta["groups"])
    firsts = {}
    for i, g in enumerate(groups):
        firsts.setdefault(g, i)
    for g, first in firsts.items():
        count = groups.count(g)
        assert groups[first:first + count] == [g] * count, g
    assert fig.layout.shapes  # lines between the blocks


def test_filters_select_exactly(big):
    langs = list(big.languages)
    want = [c for c in langs if language_family(c) == "Austronesian"]
    assert select_languages(langs, family="austronesian") == want
    fig = language_heatmap(big, "cka", 0, family="Austronesian")
    assert sorted(fig.layout.meta["languages"]) == sorted(want)
    cyr = [c for c in langs if language_script(c) == "Cyrl"]
    assert select_languages(langs, script="Cyrl") == cyr
    both = [c for c in langs if language_script(c) == "Latn" and language_family(c) == "Uralic"]
    assert select_languages(langs, family="Uralic", script="Latn") == both
    sub = langs[5:9]
    fig = language_heatmap(big, "cka", 0, languages=sub)
    assert list(fig.data[0].x) == sub
    with pytest.raises(MetricError):
        select_languages(langs, ["nope"])
    with pytest.raises(MetricError):
        select_languages(langs, family="Nowhere")


def test_402_languages_is_readable(big):
    fig = language_heatmap(big, "cka", 2, order="family")
    hm = fig.data[0]
    assert hm.type == "heatmap" and hm.texttemplate is None and hm.colorbar.title.text
    assert np.asarray(hm.z).dtype == np.float32 and np.asarray(hm.z).shape == (402, 402)
    ticks = list(fig.layout.xaxis.ticktext)
    assert 1 <= len(ticks) <= 60 and set(ticks) <= set(fig.layout.meta["groups"])  # group labels, not languages
    assert "Indo-European" in ticks
    assert " · " in hm.x[0] and "%{y} → %{x}" in hm.hovertemplate  # hover: both names and the value
    assert fig.layout.width <= 1080
    size = len(fig.to_json())
    assert size < 2_000_000, size
    small = language_heatmap(make_result(list(_codes(8))), "cka", 0)
    assert list(small.data[0].x) == list(_codes(8)) and small.layout.xaxis.tickmode is None


def test_widget_layer_change_sends_only_z(big):
    from xling_probe.widgets import SimilarityExplorer

    ex = SimilarityExplorer(big, layer=0)
    assert ex.order.value == "family"
    fw = ex.figures["heatmap"]
    shown = list(ex.view.languages)
    sent = []
    original = fw._send_update_msg

    def spy(restyle_data, relayout_data, trace_indexes=None, source_view_id=None):
        sent.append((dict(restyle_data), dict(relayout_data)))
        return original(restyle_data, relayout_data, trace_indexes, source_view_id)

    fw._send_update_msg = spy
    x_before = list(fw.data[0].x)
    ex.layer.value = 3
    assert len(sent) == 1 and list(sent[0][0]) == ["z"] and list(sent[0][1]) == ["title.text"]
    idx = [big.languages.index(c) for c in shown]
    want = np.round(big.sel("cka", 3)[np.ix_(idx, idx)], 3)
    np.testing.assert_array_equal(np.asarray(fw.data[0].z, float), want)
    assert list(fw.data[0].x) == x_before and fw.layout.title.text.endswith("layer 3")
    ex.family.value = "Atlantic-Congo"  # a filter rebuilds the view
    assert set(ex.view.languages) == {c for c in big.languages if language_family(c) == "Atlantic-Congo"}
    assert np.asarray(fw.data[0].z, float).shape == (len(ex.view.languages),) * 2


def test_report_many_language_section_writes_the_matrix(big, tmp_path):
    from xling_probe.report.html import render
    from xling_probe.report.many import many_language_section

    section, tables, figs = many_language_section(big, "cka", 1)
    mat = tables["similarity_matrix"]
    assert len(mat) == 402 * 401 // 2 and set(mat.columns) >= {"lang_a", "lang_b", "family_a", "family_b", "value"}
    mat.to_csv(tmp_path / "m.csv", index=False)
    assert sum(1 for _ in open(tmp_path / "m.csv")) == 402 * 401 // 2 + 1
    assert "tables/similarity_matrix.csv" in section.links
    fams = tables["similarity_families"]
    assert fams["pairs"].sum() == len(mat) and fams["within"].any()
    top = tables["similarity_top_pairs"]
    assert list(top["rank"]).count("top") == 20 and list(top["rank"]).count("bottom") == 20
    assert top["value"].iloc[0] == mat["value"].max()
    assert figs["language_heatmap"].data[1].name == "dendrogram"
    page = render("r", [], [section], [])
    assert 'href="tables/similarity_matrix.csv"' in page and "within" in page


def test_block_lines_separate_real_blocks_but_not_a_tail_of_tiny_families():
    from xling_probe.plots import heatmaps

    group = ["a"] * 5 + ["b"] + ["c"] + ["d"] * 4 + ["e"] + ["f"]
    lines = heatmaps._block_lines(group, len(group))
    positions = sorted({shape["x0"] for shape in lines if shape["x0"] == shape["x1"]})
    assert positions == [4.5, 6.5, 10.5]  # a|b, c|d, d|e; not b|c nor e|f
