"""The labels a reader needs (issue 18): colours that keep every PUD language apart, language names
next to codes, the query side of directional metrics, why the diagonal is blank, layer axes that stop
at the last layer, PCA axes with explained variance, neutrality panels with titles and chance lines,
and a lens heatmap that fits a notebook tab. Every test asserts the property on a built figure."""

from __future__ import annotations

import itertools
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from xling_probe.centering.evaluate import neutrality
from xling_probe.extraction.activations import Activations
from xling_probe.lens.positions import PositionTable
from xling_probe.measures.engine import cross_layer_similarity, similarity
from xling_probe.measures.registry import metric_spec
from xling_probe.plots import (
    cross_layer_heatmap,
    embedding_map,
    language_color,
    language_heatmap,
    lens_heatmap,
    neutrality_curves,
    similarity_curves,
)
from xling_probe.plots.curves import distinct_pair_colors
from xling_probe.plots.embedding import axis_titles
from xling_probe.plots.style import caption_of
from xling_probe.plots.ordering import language_label
from xling_probe.plots.style import (
    LANGUAGE_COLORS,
    PALETTE,
    PUD_LANGUAGES,
    color_distance,
    delta_e_2000,
    delta_e_76,
    srgb_to_lab,
)

PUD_TSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "pud" / "pud_1000.tsv"

#: Thresholds of the colour-distance check. A just-noticeable difference is about 2.3 in CIE76 and
#: about 1 in CIEDE2000 for large patches side by side; thin lines and small markers need several
#: times more (Szafir 2018, "Modelling colour difference for visualization design": ~5-10x the JND
#: for marks of a few pixels), and a legend swatch is compared from memory, not side by side. So:
#: CIEDE2000 >= 15 and CIE76 >= 25 between every pair of the 21 PUD languages.
MIN_DE2000, MIN_DE76 = 15.0, 25.0


# ------------------------------------------------------------------------------- fixtures
def _acts(languages=("en", "fr", "zh"), n_layers=3, n=24, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 16))
    data = np.stack([np.stack([base * (1 + l) + rng.normal(scale=0.5 + 0.3 * g, size=base.shape) + 3 * g
                               for g in range(len(languages))]) for l in range(n_layers)]).astype(np.float32)
    return Activations(data=data, layers=tuple(range(n_layers)), languages=tuple(languages),
                       ids=tuple(f"s{i}" for i in range(n)))


@pytest.fixture(scope="module")
def acts():
    return _acts(("ru", "ar", "zh"))


@pytest.fixture(scope="module")
def sim(acts):
    return similarity(acts, metrics=["cka", "p@1"], null_permutations=3, bootstrap=5, progress=False)


# ------------------------------------------------------------------------------- 1. colours
def test_lab_conversion_and_delta_e_match_reference_values():
    # sRGB -> CIELAB (D65): reference values of the standard formulas (e.g. Bruce Lindbloom's calculator)
    for hex_, want in (("#FFFFFF", (100.0, 0.0, 0.0)), ("#000000", (0.0, 0.0, 0.0)),
                       ("#FF0000", (53.2408, 80.0925, 67.2032)), ("#0000FF", (32.2970, 79.1875, -107.8602)),
                       ("#808080", (53.5850, 0.0, 0.0))):
        np.testing.assert_allclose(srgb_to_lab(hex_), want, atol=0.02)
    # CIEDE2000: pairs of Sharma, Wu & Dalal (2005), table 1
    for lab1, lab2, want in (((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
                             ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
                             ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
                             ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
                             ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082)):
        assert delta_e_2000(lab1, lab2) == pytest.approx(want, abs=1e-4)
        assert delta_e_2000(lab2, lab1) == pytest.approx(want, abs=1e-4)  # symmetric
    assert delta_e_76((50, 0, 0), (53, 4, 0)) == pytest.approx(5.0)


def test_pud_languages_are_the_corpus_languages():
    if not PUD_TSV.exists():
        pytest.skip(f"{PUD_TSV} not here")
    header = PUD_TSV.open(encoding="utf-8").readline().rstrip("\n").split("\t")
    assert sorted(header[2:]) == sorted(PUD_LANGUAGES) and len(PUD_LANGUAGES) == 21


def test_every_pair_of_pud_languages_is_distinguishable():
    colors = {c: language_color(c) for c in PUD_LANGUAGES}
    assert len(set(colors.values())) == 21
    worst = min((color_distance(colors[a], colors[b]), a, b) for a, b in itertools.combinations(PUD_LANGUAGES, 2))
    worst76 = min((color_distance(colors[a], colors[b], "cie76"), a, b)
                  for a, b in itertools.combinations(PUD_LANGUAGES, 2))
    assert worst[0] >= MIN_DE2000, f"closest pair (CIEDE2000): {worst}"
    assert worst76[0] >= MIN_DE76, f"closest pair (CIE76): {worst76}"
    # the reported confusion: ru and ar were two greens
    assert color_distance(language_color("ru"), language_color("ar")) >= 40
    # every line/marker colour stands out from the white background
    assert all(color_distance(c, "#FFFFFF") >= 25 for c in colors.values())


def test_unlisted_languages_get_deterministic_palette_colours():
    for code in ("qu", "yo", "eu", "sw-KE", "xx"):
        if code.split("-")[0] in LANGUAGE_COLORS:
            continue
        assert language_color(code) == PALETTE[zlib.crc32(code.encode("utf-8")) % len(PALETTE)]
        assert language_color(code) == language_color(code)
    assert language_color("zh-Hans") == language_color("zh") and language_color("ru-RU") == language_color("ru")


def test_pairs_of_a_curve_figure_get_distinct_colours():
    pairs = [("ru", "ar"), ("ru", "zh"), ("ar", "zh")]
    assert len(set(distinct_pair_colors(pairs).values())) == 3  # ar->zh: zh and ar are both taken already
    res = similarity(_acts(("ru", "ar", "zh"), n=12), metrics=["cka"], null_permutations=0, bootstrap=0,
                     progress=False)
    fig = similarity_curves(res, "cka", pairs=pairs, intervals=False, null=False)
    assert len({t.line.color for t in fig.data}) == 3


# ------------------------------------------------------------------------------- 2. names
def test_language_label():
    assert language_label("ru") == "ru (Russian)" and language_label("ar") == "ar (Arabic)"
    assert language_label("zh-Hans") == "zh-Hans (Chinese, Simplified)"
    assert language_label("xx") == "xx"  # unknown: the code as written


def test_heatmap_ticks_and_hover_name_the_languages(sim):
    fig = language_heatmap(sim, "cka", layer=1)
    hm = fig.data[0]
    assert list(hm.x) == ["ru", "ar", "zh"] == list(hm.y)  # the categories stay codes (clicks, data)
    want = ["ru (Russian)", "ar (Arabic)", "zh (Chinese)"]
    for axis in (fig.layout.xaxis, fig.layout.yaxis):  # plotly's labelalias: the tick label of each code
        assert [axis.labelalias[c] for c in hm.x] == want
    assert hm.customdata[0][1][0] == "ru (Russian)" and hm.customdata[0][1][1] == "ar (Arabic)"
    assert "%{customdata[0]}" in hm.hovertemplate and "%{customdata[1]}" in hm.hovertemplate


def test_similarity_curves_legend_and_hover_name_the_languages(sim):
    fig = similarity_curves(sim, "cka", pairs=[("ru", "ar"), ("ru", "zh")])
    legend_title = fig.layout.legend.title.text
    for label in ("ru (Russian)", "ar (Arabic)", "zh (Chinese)"):
        assert label in legend_title
    (line,) = [t for t in fig.data if t.name == "ru–ar"]  # trace names stay codes (widgets find them)
    assert "ru (Russian)" in line.hovertemplate and "ar (Arabic)" in line.hovertemplate
    directed = similarity_curves(sim, "p@1", pairs=[("ru", "ar")])
    (line,) = [t for t in directed.data if t.name == "ru→ar"]
    assert "query ru (Russian) → searched ar (Arabic)" in line.hovertemplate


# ------------------------------------------------------------------------------- 3. directional metrics
def _p_at_1(x, y):
    """Cosine P@1 with x as queries, y searched."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    return float(np.mean(np.argmax(xn @ yn.T, axis=1) == np.arange(len(x))))


def test_directional_heatmap_says_rows_query_and_it_is_true():
    acts = _acts(("en", "fr"), n_layers=2, n=30, seed=5)
    acts = Activations(data=acts.data.copy(), layers=acts.layers, languages=acts.languages, ids=acts.ids)
    data = np.array(acts.data)
    rng = np.random.default_rng(1)
    data[:, 1] = data[:, 0] + rng.normal(scale=4.0, size=data[:, 1].shape)  # noisy fr: asymmetric retrieval
    data[:, 1, :5] *= 6  # a few long fr rows
    acts = Activations(data=data.astype(np.float32), layers=acts.layers, languages=acts.languages, ids=acts.ids)
    res = similarity(acts, metrics=["p@1"], null_permutations=0, bootstrap=0, progress=False)
    assert metric_spec("p@1").directional
    fig = language_heatmap(res, "p@1", layer=1)
    hm = fig.data[0]
    assert "query" in fig.layout.yaxis.title.text and "row" in fig.layout.yaxis.title.text
    assert "searched" in fig.layout.xaxis.title.text and "column" in fig.layout.xaxis.title.text
    assert "row = query language" in caption_of(fig)
    assert hm.hovertemplate.startswith("query language (row)")
    z = np.array(hm.z, float)
    en_fr, fr_en = _p_at_1(data[1, 0], data[1, 1]), _p_at_1(data[1, 1], data[1, 0])
    assert en_fr != fr_en  # the example is asymmetric, so the check below tells the sides apart
    rows = list(hm.y)
    assert z[rows.index("en"), rows.index("fr")] == pytest.approx(en_fr)  # row en queries, column fr is searched
    assert z[rows.index("fr"), rows.index("en")] == pytest.approx(fr_en)


def test_symmetric_heatmap_does_not_claim_a_query_side(sim):
    fig = language_heatmap(sim, "cka", layer=1)
    assert "query" not in fig.layout.xaxis.title.text + fig.layout.yaxis.title.text
    assert caption_of(fig).startswith("symmetric")
    assert fig.layout.title.text == "linear CKA at layer 1" or fig.layout.title.text.endswith("layer 1")


# ------------------------------------------------------------------------------- 4. the diagonal
def test_heatmap_says_why_the_diagonal_is_blank(sim):
    fig = language_heatmap(sim, "p@1", layer=2)
    z = np.array(fig.data[0].z, float)
    assert np.isnan(np.diag(z)).all()
    assert "blank diagonal: a language with itself, not computed" in caption_of(fig)
    hm = fig.data[0]
    assert hm.hoverongaps is True  # plotly shows the hover on the blank cells too
    assert all("itself: not computed" in hm.customdata[i][i][2] for i in range(3))
    assert all(hm.customdata[i][j][2] == "" for i in range(3) for j in range(3) if i != j)
    # the caption sits in the top margin, under the title (not over the plot)
    assert fig.layout.margin.t >= 90


# ------------------------------------------------------------------------------- 5. layer x layer axes
def test_cross_layer_axes_stop_at_the_last_layer():
    acts = _acts(("en", "zh"), n_layers=19, n=12)
    cross = cross_layer_similarity(acts, "en", "zh")
    fig = cross_layer_heatmap(cross)
    for axis, layers in ((fig.layout.xaxis, cross.layers_b), (fig.layout.yaxis, cross.layers_a)):
        assert list(axis.range) == [-0.5, 18.5]  # half a cell past layer 18, never a layer 19 or 20
        assert max(axis.tickvals) == layers[-1] == 18 and min(axis.tickvals) == 0
        assert set(axis.tickvals) <= set(layers) and list(axis.ticktext) == [str(v) for v in axis.tickvals]
        assert axis.constrain == "domain"


def test_cross_layer_axes_with_sparse_layers():
    acts = _acts(("en", "zh"), n_layers=9, n=12).sel(layers=[0, 4, 8])
    cross = cross_layer_similarity(acts, "en", "zh")
    fig = cross_layer_heatmap(cross)
    assert list(fig.layout.xaxis.range) == [-2.0, 10.0]  # cells are 4 layers wide: half a cell each side
    assert list(fig.layout.xaxis.tickvals) == [0, 4, 8]


# ------------------------------------------------------------------------------- 6. PCA axes
def _variance_ratio(x):
    evals = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    return evals[:2] / evals.sum()


def test_pca_axes_carry_the_explained_variance(acts):
    from xling_probe.centering.estimators import LanguageCentering

    layer = 2
    fig = embedding_map(acts, layer)
    one = acts.sel(layers=[layer])
    raw = np.asarray(one.data[0], float).reshape(-1, one.data.shape[-1])
    cen_acts = LanguageCentering().fit_transform(one)
    cen = np.asarray(cen_acts.data[0], float).reshape(-1, one.data.shape[-1])
    for (xa, ya), x in (((fig.layout.xaxis, fig.layout.yaxis), raw), ((fig.layout.xaxis2, fig.layout.yaxis2), cen)):
        want = _variance_ratio(x)
        for axis, i in ((xa, 0), (ya, 1)):
            m = re.fullmatch(rf"PC{i + 1} \((\d+\.\d)% of variance\)", axis.title.text)
            assert m, axis.title.text
            assert float(m.group(1)) == pytest.approx(100 * want[i], abs=0.05)
    np.testing.assert_allclose(fig.layout.meta["explained_variance_ratio"]["raw"], _variance_ratio(raw), rtol=1e-8)


def test_umap_axes_stay_unitless(acts, monkeypatch):
    import xling_probe.plots.embedding as embedding

    assert axis_titles("umap") == ("UMAP 1", "UMAP 2")
    rng = np.random.default_rng(0)
    monkeypatch.setattr(embedding, "project_2d", lambda x, method, seed=0, return_variance=False:
                        (rng.normal(size=(len(x), 2)), None))  # no numba compile in a unit test
    fig = embedding_map(acts, 1, method="umap", centering=False)
    assert fig.layout.xaxis.title.text == "UMAP 1" and fig.layout.yaxis.title.text == "UMAP 2"
    assert "%" not in fig.layout.xaxis.title.text and fig.layout.xaxis.showticklabels is False


# ------------------------------------------------------------------------------- 7. neutrality panels
def test_neutrality_panels_have_titles_chance_lines_and_no_title_collision(acts):
    rep = neutrality(acts, 0.5, progress=False)
    fig = neutrality_curves(rep)
    lay = fig.layout
    for axis in (lay.yaxis, lay.yaxis2, lay.yaxis3):
        assert axis.title.text
    (lid,) = [t for t in fig.data if t.name == "chance"]
    assert lid.xaxis == "x2" and list(lid.y) == [pytest.approx(rep.chance)] * 2 and lid.showlegend is not False
    (ret,) = [t for t in fig.data if t.name == "chance P@1"]
    n_test = len(rep.heldout_ids)
    assert ret.xaxis == "x" and list(ret.y) == [pytest.approx(1 / n_test)] * 2 and ret.legendgroup == lid.legendgroup
    fixed_style = [t.line for t in fig.data if t.name and "by construction" in t.name]
    for line in (lid.line, ret.line):  # visible: not the faint grey dotted style of by-construction values
        assert line.color not in ("#9a9a9a", "#808080") and line.dash not in ("dot",) and line.width >= 1.5
        assert all(line.dash != f.dash for f in fixed_style)
    texts = [a.text for a in lay.annotations]
    assert f"chance 1/{len(rep.languages)}" in texts and f"chance 1/{n_test}" in texts
    # the title sits in the top margin above the subplot titles: its bottom edge is above their top edge
    title_bottom = (1 - lay.title.y) * lay.height + 1.5 * lay.template.layout.title.font.size
    subplot_top = lay.margin.t - 1.5 * 16  # subplot titles stand on the top of the plot area
    assert lay.title.yref == "container" and lay.title.yanchor == "top" and title_bottom < subplot_top


# ------------------------------------------------------------------------------- 8. lens heatmap
def _table(n_t=57, n_l=19, vocab=None):
    vocab = vocab or {0: "<bos>", 1: " chat", 2: "<0xE4>", 3: "<b>", 4: " internationalisation", 5: "猫",
                      6: "\n", 7: "a<i>b"}
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(vocab), size=(n_l, n_t, 3))
    probs = np.sort(rng.uniform(size=(n_l, n_t, 3)), axis=-1)[..., ::-1]
    inp = tuple(int(i) for i in np.arange(n_t) % len(vocab))
    return PositionTable(model="m", prompt="x", layers=tuple(range(n_l)), input_ids=inp,
                         input_tokens=tuple(vocab[i] for i in inp), top_ids=ids, top_probs=probs,
                         entropy_bits=np.ones((n_l, n_t)), kl_to_final_bits=np.zeros((n_l, n_t)), vocab_text=vocab)


def test_lens_heatmap_truncates_long_prompts_to_the_last_tokens():
    table = _table()
    fig = lens_heatmap(table, max_tokens=40)
    hm = fig.data[0]
    assert list(hm.x) == list(range(17, 57))  # the prompt's own position numbers
    np.testing.assert_allclose(np.array(hm.z), table.top_probs[:, 17:, 0])
    assert len(fig.layout.xaxis.ticktext) == 40 and list(fig.layout.xaxis.range) == [16.5, 56.5]
    assert "last 40 of 57 tokens shown (positions 17–56)" in caption_of(fig)
    assert fig.layout.meta["first_position"] == 17 and fig.layout.meta["n_tokens"] == 57
    whole = lens_heatmap(table, max_tokens=None)
    assert list(whole.data[0].x) == list(range(57)) and "last" not in caption_of(whole)
    short = lens_heatmap(_table(n_t=12))
    assert list(short.data[0].x) == list(range(12)) and "last" not in caption_of(short)


def test_lens_heatmap_marks_byte_and_special_tokens_and_escapes_markup():
    table = _table(n_t=8)
    fig = lens_heatmap(table)
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks[0] == "‹bos›" and ticks[2] == "‹0xE4›" and ticks[3] == "‹b›" and ticks[7] == "a&lt;i&gt;b"
    assert ticks[1] == "␣chat"
    # nothing plotly would render as HTML: no raw tag anywhere in the cells, ticks or hover
    cells = [c for row in fig.data[0].text for c in row]
    hovers = [h.replace("<br>", "\n") for row in fig.data[0].customdata for h in row]
    for text in ticks + cells + hovers:
        assert not re.search(r"<(?!br>)[^<>]*>", text), text
    assert any("(byte token)" in h for h in hovers) and any("(special token)" in h for h in hovers)
    assert "&lt;0xE4&gt;" in " ".join(hovers)  # the hover keeps the token as written, escaped
    note = caption_of(fig)
    assert "␣ = leading space" in note and "‹…› = byte or special token" in note


def test_lens_heatmap_cells_readable_and_colour_bar_inside():
    for n_t in (8, 40, 57):
        fig = lens_heatmap(_table(n_t=n_t))
        lay, hm = fig.layout, fig.data[0]
        shown = len(hm.x)
        cell_px = (lay.width - lay.margin.l - lay.margin.r) / shown
        plot_h = lay.height - lay.margin.t - lay.margin.b
        assert cell_px >= 20 and plot_h / len(hm.y) >= 18  # cells hold 3+ characters of 9-10 px text
        assert hm.textfont.size >= 9
        unescaped = [c.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for row in hm.text for c in row]
        assert all(len(c) <= max(1, int(cell_px // 6.5)) for c in unescaped)
        cb = hm.colorbar  # the colour bar starts right of the plot, in a right margin wide enough for it
        assert cb.x >= 1.0 and cb.xanchor == "left" and lay.margin.r >= cb.thickness + 80
        assert lay.width <= 1100
