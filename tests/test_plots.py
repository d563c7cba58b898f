"""Figure builders return the result's numbers; export writes valid PNG/SVG/PDF files."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from xling_probe.extraction.activations import Activations
from xling_probe.errors import ExportError, MetricError
from xling_probe.lens.drift import DriftResult
from xling_probe.lens.positions import PositionTable
from xling_probe.lens.intervals import mean_intervals
from xling_probe.lens.tokensets import DropReport
from xling_probe.centering.evaluate import neutrality
from xling_probe.plots import (
    cross_layer_heatmap,
    embedding_map,
    find_chromium,
    language_color,
    language_heatmap,
    latent_language,
    lens_heatmap,
    neutrality_curves,
    project_2d,
    save_figure,
    save_figures,
    similarity_curves,
)
from xling_probe.plots.style import OKABE_ITO, TEMPLATE
from xling_probe.measures.engine import cross_layer_similarity, similarity

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no Chrome/Chromium: run .ci/system-packages (apt-get install chromium)")


@pytest.fixture(scope="module")
def acts():
    """3 layers, 3 languages, 24 sentences: a shared sentence signal plus a language offset."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(24, 16))
    data = np.stack([np.stack([base * (1 + l) + rng.normal(scale=0.5, size=base.shape) + 3 * g
                               for g in range(3)]) for l in range(3)]).astype(np.float32)
    return Activations(data=data, layers=(0, 1, 2), languages=("en", "fr", "zh"),
                       ids=tuple(f"s{i}" for i in range(24)))


@pytest.fixture(scope="module")
def sim(acts):
    return similarity(acts, metrics=["cka", "p@1"], null_permutations=5, bootstrap=20, progress=False)


def _band(fig, name_part):
    (tr,) = [t for t in fig.data if t.type == "scatter" and t.name and name_part in t.name and t.fill == "toself"]
    n = len(tr.x) // 2
    return np.array(tr.x[:n]), np.array(tr.y[:n]), np.array(tr.y[n:][::-1])


def test_similarity_curves_values_and_bands(sim):
    fig = similarity_curves(sim, "cka", pairs=[("en", "fr")])
    (line,) = [t for t in fig.data if t.name == "en–fr"]
    np.testing.assert_allclose(line.y, sim.curve("cka", "en", "fr"))
    x, hi, lo = _band(fig, "en–fr 95% CI")
    np.testing.assert_array_equal(x, [0, 1, 2])
    np.testing.assert_allclose(hi, sim.curve("cka", "en", "fr", "ci_high"))
    np.testing.assert_allclose(lo, sim.curve("cka", "en", "fr", "ci_low"))
    _, nhi, nlo = _band(fig, "null")
    np.testing.assert_allclose(nlo, sim.curve("cka", "en", "fr", "null_mean"))
    np.testing.assert_allclose(nhi, sim.curve("cka", "en", "fr", "null_max"))
    assert fig.layout.template.layout.font.family.startswith("Noto Sans")  # the paper template is applied
    assert line.line.color == language_color("fr")


def test_similarity_curves_directional_and_bad_pair(sim):
    fig = similarity_curves(sim, "p@1", pairs=[("fr", "en")])
    (line,) = [t for t in fig.data if t.name == "fr→en"]
    np.testing.assert_allclose(line.y, sim.curve("p@1", "fr", "en"))
    with pytest.raises(MetricError, match="not computed"):
        similarity_curves(sim, "anc")


def test_language_heatmap_is_the_matrix(sim):
    fig = language_heatmap(sim, "cka", layer=1)
    np.testing.assert_array_equal(np.array(fig.data[0].z, float), sim.value[0, 1])
    assert list(fig.data[0].x) == ["en", "fr", "zh"] and fig.data[0].zmin == 0 and fig.data[0].zmax == 1
    with pytest.raises(MetricError, match="layer 7"):
        language_heatmap(sim, "cka", layer=7)


def test_cross_layer_heatmap_is_the_matrix(acts):
    cross = cross_layer_similarity(acts, "en", "zh")
    fig = cross_layer_heatmap(cross)
    np.testing.assert_array_equal(np.array(fig.data[0].z, float), cross.matrix)
    assert list(fig.data[0].y) == [0, 1, 2]
    # both axes end at the last layer (half a cell beyond it), never past it
    assert list(fig.layout.xaxis.range) == [-0.5, 2.5] and list(fig.layout.yaxis.range) == [-0.5, 2.5]
    assert fig.layout.yaxis.constrain == "domain"


def test_neutrality_curves(acts):
    rep = neutrality(acts, 0.5, progress=False)
    fig = neutrality_curves(rep)
    lines = {(t.name, t.xaxis): t for t in fig.data if getattr(t, "mode", None) == "lines+markers"}
    np.testing.assert_allclose(lines[("centered", "x")].y, rep.retrieval_mean[1])
    np.testing.assert_allclose(lines[("raw", "x2")].y, rep.language_id[0])
    np.testing.assert_allclose(lines[("centered", "x3")].y, rep.variance_share[1])
    _, hi, lo = _band(fig, "raw pair range")
    np.testing.assert_allclose(hi, rep.retrieval[0].reshape(3, -1).max(1))
    np.testing.assert_allclose(lo, rep.retrieval[0].reshape(3, -1).min(1))
    (chance,) = [t for t in fig.data if t.name == "chance"]
    assert list(chance.y) == [pytest.approx(1 / 3)] * 2


def _drift(source="fr", target="zh"):
    rng = np.random.default_rng(1)
    values = {m: rng.uniform(size=(6, 4)) for m in ("p_target", "p_latent", "p_source", "entropy_bits",
                                                      "rank_target", "kl_to_final_bits")}
    summary = {m: mean_intervals(v, n_boot=50) for m, v in values.items()}
    return DriftResult(model="m", source=source, target=target, latent="en", task="translation", layers=(0, 1, 2, 3),
                       concepts=tuple("abcdef"), values=values, summary=summary, prompts=("p",) * 6,
                       dropped=DropReport())


def test_latent_language_figure():
    d = _drift()
    fig = latent_language(d)
    lines = {t.name: t for t in fig.data if getattr(t, "mode", None) == "lines+markers"}
    assert set(lines) == {"P(zh) target", "P(en) latent", "P(fr) source"}
    np.testing.assert_allclose(lines["P(en) latent"].y, d.values["p_latent"].mean(0))
    assert lines["P(zh) target"].line.color == language_color("zh")
    _, hi, lo = _band(fig, "P(zh) target 95%")
    np.testing.assert_allclose(hi, d.summary["p_target"]["ci_high"])
    np.testing.assert_allclose(lo, d.summary["p_target"]["ci_low"])
    (strip,) = [t for t in fig.data if t.type == "heatmap"]
    np.testing.assert_allclose(strip.z[0], d.values["entropy_bits"].mean(0))
    _, bhi, _ = _band(latent_language(d, interval="bootstrap"), "P(fr) source")
    np.testing.assert_allclose(bhi, d.summary["p_source"]["boot_high"])
    with pytest.raises(MetricError, match="interval"):
        latent_language(d, interval="bayes")


def test_latent_language_repetition_draws_each_language_once():
    fig = latent_language(_drift(source="zh", target="zh"))
    assert sorted(t.name for t in fig.data if getattr(t, "mode", None) == "lines+markers") == ["P(en) latent", "P(zh) target"]


def test_lens_heatmap_repeated_tokens_stay_apart():
    vocab = {0: " the", 1: "cat", 2: "\n", 3: "dog"}
    top_ids = np.array([[[1, 0], [3, 1], [1, 2]], [[0, 1], [0, 3], [2, 1]]])
    probs = np.array([[[0.6, 0.2], [0.5, 0.1], [0.4, 0.3]], [[0.9, 0.05], [0.7, 0.2], [0.5, 0.4]]])
    table = PositionTable(model="m", prompt="x", layers=(0, 4), input_ids=(0, 0, 1), input_tokens=(" the", " the", "cat"),
                          top_ids=top_ids, top_probs=probs, entropy_bits=np.ones((2, 3)),
                          kl_to_final_bits=np.zeros((2, 3)), vocab_text=vocab)
    fig = lens_heatmap(table)
    hm = fig.data[0]
    np.testing.assert_allclose(np.array(hm.z), probs[:, :, 0])
    assert list(hm.x) == [0, 1, 2] and list(hm.y) == [0, 4]
    assert list(fig.layout.xaxis.ticktext) == ["␣the", "␣the", "cat"]  # same token, two columns
    assert [list(r) for r in hm.text] == [["cat", "dog", "cat"], ["␣the", "␣the", "\\n"]]
    assert "2. 'cat' 0.050" in hm.customdata[1][0]
    np.testing.assert_allclose(np.array(lens_heatmap(table, color="entropy").data[0].z), 1.0)


def test_project_2d_pca_matches_reference_and_is_deterministic():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 5)) * [5, 3, 1, 0.5, 0.1]
    xy = project_2d(x)
    # reference: eigenvectors of the covariance matrix, variance of each component = top eigenvalues
    evals = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    np.testing.assert_allclose(xy.var(axis=0), evals[:2], rtol=1e-10)
    np.testing.assert_allclose(xy.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_array_equal(project_2d(x), xy)
    np.testing.assert_allclose(np.abs(project_2d(-x)), np.abs(xy))
    with pytest.raises(MetricError, match="method"):
        project_2d(x, "tsne")


def test_embedding_map_colours_and_centering(acts):
    fig = embedding_map(acts, 2)
    raw = [t for t in fig.data if t.xaxis == "x"]
    cen = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in raw] == ["en", "fr", "zh"] and [t.name for t in cen] == ["en", "fr", "zh"]
    assert all(t.marker.color == language_color(t.name) for t in fig.data)
    # after centering each language's mean sits at the origin of the PCA map (PCA is linear and centred)
    for t in cen:
        assert abs(np.mean(t.x)) < 1e-4 and abs(np.mean(t.y)) < 1e-4
    # before centering the language offset (3 per language) separates the clusters along PC1
    assert abs(np.mean(raw[0].x) - np.mean(raw[2].x)) > 10
    assert len(embedding_map(acts, 0, centering=False).data) == 3


def test_language_colours_are_fixed_and_shared():
    assert language_color("en") == "#000000" and language_color("fr") in OKABE_ITO
    assert language_color("zh-Hans") == language_color("zh")
    assert language_color("qu") == language_color("qu")  # unknown codes hash stably
    assert len({language_color(c) for c in ("en", "de", "fr", "zh", "ja", "ru", "es", "ar", "hi", "ko")}) == 10


def test_template_is_registered():
    import plotly.io as pio

    assert TEMPLATE in pio.templates
    assert pio.templates[TEMPLATE].layout.font.size >= 12


# ------------------------------------------------------------------------------- export
def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Minimal PNG decoder (8-bit RGB/RGBA, non-interlaced): width, height and unfiltered rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h, bpp = 8, b"", 0, 0, 3
    while pos < len(data):
        (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for r in range(h):
        f, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def test_png_reader_on_a_known_image():
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"\x00" + bytes([255, 0, 0, 0, 0, 255]) + b"\x02" + bytes([0, 255, 0, 0, 255, 0])  # filters none, up
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    assert png_pixels(png) == (2, 2, [bytes([255, 0, 0, 0, 0, 255]), bytes([255, 255, 0, 0, 255, 255])])


@needs_chromium
def test_save_figure_writes_valid_files(tmp_path, sim):
    fig = similarity_curves(sim, "cka", title="Ελληνικά 中文 العربية हिन्दी")
    written = save_figure(fig, tmp_path / "cka", formats=("png", "svg", "pdf"), dpi=96)
    assert [p.name for p in written] == ["cka.png", "cka.svg", "cka.pdf"]
    png = (tmp_path / "cka.png").read_bytes()
    w, h, rows = png_pixels(png)
    assert (w, h) == (700, 450)  # dpi 96 = scale 1: the layout size in pixels
    assert len({r for r in rows}) > 20  # not a blank image: many distinct rows
    svg = (tmp_path / "cka.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<svg") and "中文" in svg
    assert (tmp_path / "cka.pdf").read_bytes()[:5] == b"%PDF-"
    w2, h2, _ = png_pixels(save_figure(fig, tmp_path / "hi.png", dpi=192)[0].read_bytes())
    assert (w2, h2) == (1400, 900)


@needs_chromium
def test_save_figures_batch(tmp_path, sim, acts):
    out = save_figures([(language_heatmap(sim, "cka", 1), tmp_path / "a.svg"),
                        (embedding_map(acts, 1), tmp_path / "b.svg")])
    assert all(p.read_text(encoding="utf-8").lstrip().startswith("<svg") for p in out)


def test_save_figure_bad_input(tmp_path, sim, monkeypatch):
    fig = similarity_curves(sim, "cka")
    with pytest.raises(ExportError, match="format"):
        save_figure(fig, tmp_path / "x.jpg")
    with pytest.raises(ExportError, match="unknown export format"):
        save_figure(fig, tmp_path / "x", formats=("gif",))
    with pytest.raises(ExportError, match="dpi"):
        save_figure(fig, tmp_path / "x.png", dpi=0)
    import xling_probe.plots.export as export

    monkeypatch.setattr(export, "find_chromium", lambda: None)
    with pytest.raises(ExportError, match="apt-get install chromium"):
        save_figure(fig, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_lens_heatmap_escapes_control_characters():
    table = PositionTable(model="m", prompt="x", layers=(0,), input_ids=(5,), input_tokens=("\x01",),
                          top_ids=np.array([[[5]]]), top_probs=np.array([[[1.0]]]), entropy_bits=np.zeros((1, 1)),
                          kl_to_final_bits=np.zeros((1, 1)), vocab_text={5: "\x01"})
    fig = lens_heatmap(table)
    assert fig.data[0].text[0][0] == "\\x01" and list(fig.layout.xaxis.ticktext) == ["\\x01"]
    assert "\x01" not in fig.data[0].customdata[0][0]


def test_mexa_and_anc_curves_hold_the_values_and_the_null(acts):
    res = similarity(acts, metrics=["mexa", "anc"], null_permutations=5, bootstrap=10, progress=False)
    for metric, label in (("mexa", "MEXA alignment"), ("anc", "ANC (signed)")):
        fig = similarity_curves(res, metric, pairs=[("en", "fr"), ("en", "zh")], null=True)
        assert fig.layout.yaxis.title.text == label
        (line,) = [t for t in fig.data if t.name == "en–zh"]
        np.testing.assert_allclose(line.y, res.curve(metric, "en", "zh"))
        _, nhi, nlo = _band(fig, "null")
        mi = res.metrics.index(metric)
        np.testing.assert_allclose(nlo, np.minimum(res.null_mean[mi, :, 0, 1], res.null_mean[mi, :, 0, 2]))
        np.testing.assert_allclose(nhi, np.maximum(res.null_max[mi, :, 0, 1], res.null_max[mi, :, 0, 2]))


def _long_table(n_t: int = 40, n_l: int = 19):
    vocab = {0: "▁internationalisation", 1: "猫", 2: " x"}
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, size=(n_l, n_t, 2))
    probs = np.sort(rng.uniform(size=(n_l, n_t, 2)), axis=-1)[..., ::-1]
    return PositionTable(model="m", prompt="x", layers=tuple(range(n_l)), input_ids=(0,) * n_t,
                         input_tokens=tuple(vocab[i % 3] for i in range(n_t)), top_ids=ids, top_probs=probs,
                         entropy_bits=np.ones((n_l, n_t)), kl_to_final_bits=np.zeros((n_l, n_t)), vocab_text=vocab)


def test_lens_heatmap_fits_the_page_column():
    from xling_probe.plots.heatmaps import COLUMN_PX

    fig = lens_heatmap(_long_table())
    lay = fig.layout
    assert lay.width <= COLUMN_PX <= 1100  # old: 60 px per position, 2400 px for 40 tokens
    cell_px = (lay.width - lay.margin.l - lay.margin.r) / 40
    assert max(len(t) for t in lay.xaxis.ticktext) <= 8 and lay.xaxis.ticktext[0] == "▁intern…"
    assert all(len(c) <= max(1, int(cell_px // 6.5)) for row in fig.data[0].text for c in row)
    assert lay.xaxis.tickangle in (-45, -90) and lay.xaxis.automargin and lay.xaxis.title.standoff >= 10
    # the slanted labels (8 chars) fit the bottom margin, the colorbar sits in the right margin
    assert lay.margin.b >= 8 * 6.5 * abs(np.sin(np.radians(lay.xaxis.tickangle))) + 40
    cb = fig.data[0].colorbar
    assert cb.x >= 1.0 and cb.xanchor == "left" and lay.margin.r >= cb.thickness + 60
    table = _long_table()
    assert fig.data[0].customdata[0][0].startswith(f"1. {table.top_tokens[0, 0, 0]!r}")  # the hover keeps it whole
    short = lens_heatmap(_long_table(n_t=5))
    assert short.layout.xaxis.tickangle == 0 and short.layout.width <= COLUMN_PX


def test_latent_language_title_counts_items():
    assert latent_language(_drift()).layout.title.text == "Latent language: fr → zh (translation, 6 items)"
