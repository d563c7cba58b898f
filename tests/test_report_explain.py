"""The report's distance, transliteration and linear-map sections (issue 17): their tables equal the API on the
same input, their sentences follow the numbers, and each is skipped with a reason when it cannot run."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest

import xling_probe as xp
from xling_probe.cli.main import main
from xling_probe.errors import CorpusError, MetricError
from xling_probe.report.build import STAGES, _Stages, build_report

LANGS = ["en", "de", "ru", "zh"]  # 4 languages (6 pairs, the Mantel minimum); ru and zh are not in Latin script
KINDS = ["genetic", "syntactic"]
SMALL = dict(langs=LANGS, limit=12, bootstrap=10, null_permutations=2, drift_items=2, shots=1, static=False,
             progress=False, cache=False)  # cache=False: a module fixture runs before the per-test cache is set


@pytest.fixture(scope="module")
def report(tiny_decoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "report"
    return build_report(out, model=tiny_decoder, pairs=[("de", "ru")],
                        distances={"source": "uriel", "kinds": KINDS, "permutations": 49},
                        transliteration={"n_boot": 20}, **SMALL)


@pytest.fixture(scope="module")
def direct(tiny_decoder):
    """The report's inputs computed through the public API: corpus, activations, every-pair similarity."""
    corpus = xp.ParallelCorpus.sample().select_languages(LANGS).head(12)
    acts = xp.extract(tiny_decoder, corpus, pooling="mean", batch_size=16, max_length=128, cache=False, progress=False)
    sim = xp.similarity(acts, metrics=["cka_debiased", "p@1"], pairs="all", null_permutations=0, bootstrap=0,
                        progress=False)
    return corpus, acts, sim


def _manifest(res):
    return json.loads((res.out / "manifest.json").read_text(encoding="utf-8"))


def test_distance_tables_equal_the_api(report, direct):
    _, _, sim = direct
    status = {s["stage"]: s["status"] for s in _manifest(report)["stages"]}
    assert status["distances"] == "ran" and status["transliteration"] == "ran"
    got = pd.read_csv(report.out / "tables" / "distance_correlations.csv")
    dist = xp.language_distances(LANGS, KINDS, source="uriel")
    want = pd.concat([xp.distance_correlations(sim, dist, m, permutations=49, seed=0) for m in ("cka_debiased", "p@1")],
                     ignore_index=True)
    assert list(got["metric"]) == list(want["metric"]) and list(got["kind"]) == list(want["kind"])
    assert set(got["kind"]) == {"genetic", "syntactic", "script"} and len(got) == 2 * 3 * len(sim.layers)
    for col in ("r", "p", "partial_r", "partial_p"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=col)
    dists = pd.read_csv(report.out / "tables" / "language_distances.csv")
    np.testing.assert_allclose(dists["distance"], dist.to_dataframe()["distance"], equal_nan=True)
    # the figure holds the table's numbers: one line per kind, r per layer
    fig = report.figures["distances_cka_debiased"]
    line = next(t for t in fig.data if t.name == "genetic")
    gen = want[(want.metric == "cka_debiased") & (want.kind == "genetic")]
    np.testing.assert_allclose(np.asarray(line.y, float), gen["r"], rtol=1e-9)
    assert "distances_p_at_1_partial" in report.figures


def test_distance_sentence_follows_the_numbers(report):
    from xling_probe.report.distances import summary_table

    table = pd.read_csv(report.out / "tables" / "distance_correlations.csv")
    table.attrs["permutations"] = 49
    (sec,) = [s for s in _manifest(report)["sections"] if s["key"] == "distances"]
    finding = sec["finding"]
    assert finding.startswith("This run (4 languages, up to 6 language pairs per layer, 49 Mantel permutations")
    for _, row in summary_table(table).iterrows():
        if np.isfinite(row["r"]):
            assert f"{row['kind']} r {row['r']:+.2f} at layer {int(row['layer'])} (p = {row['p']:.3g}" in finding
    n_sig = int((table["p"].dropna() < 0.05).sum())
    if n_sig:
        assert f"{n_sig} of {table['p'].notna().sum()} (layer, distance, metric) tests reach p < 0.05" in finding
    else:
        assert "No correlation reaches p < 0.05 at any layer" in finding
    page = report.index.read_text(encoding="utf-8")
    assert 'id="distances_cka_debiased"' in page and "Language distance (URIEL+, original URIEL arrays)" in page
    from xling_probe.plots.style import caption_of

    caption = caption_of(report.figures["distances_cka_debiased"])
    assert caption == "Spearman r over up to 6 language pairs; filled markers: Mantel p < 0.05 (49 permutations, uncorrected)"


def test_describe_distances_says_plainly_when_nothing_is_significant():
    from xling_probe.report.distances import describe_distances

    rows = [{"layer": layer, "kind": kind, "metric": "cka_debiased", "r": r, "p": p, "partial_r": pr, "partial_p": pp,
             "n_pairs": 6, "n_languages": 4, "method": "spearman", "control": "script"}
            for layer, kind, r, p, pr, pp in ((0, "genetic", -0.2, 0.6, -0.1, 0.8), (1, "genetic", -0.5, 0.2, -0.4, 0.3),
                                              (0, "script", 0.1, 0.9, np.nan, np.nan), (1, "script", 0.3, 0.5, np.nan, np.nan))]
    table = pd.DataFrame(rows)
    table.attrs["permutations"] = 99
    text = describe_distances(table)
    assert ("debiased CKA, strongest |r| per distance: genetic r -0.50 at layer 1 (p = 0.2; controlling for script "
            "-0.40, p = 0.3; p < 0.05 at 0 of 2 layers); script r +0.30 at layer 1 (p = 0.5; p < 0.05 at 0 of 2 "
            "layers).") in text
    assert text.endswith("No correlation reaches p < 0.05 at any layer (4 tests): with these languages, language "
                         "distance does not detectably explain the similarity.")
    table.loc[1, "p"] = 0.01
    assert "1 of 4 (layer, distance, metric) tests reach p < 0.05" in describe_distances(table)


def test_transliteration_table_equals_the_api(report, tiny_decoder, direct):
    corpus, _, _ = direct
    got = pd.read_csv(report.out / "tables" / "transliteration.csv")
    want = xp.transliteration_gap(tiny_decoder, corpus=corpus.select_languages(["en", "ru", "zh"]),
                                  pairs=[("en", "ru"), ("en", "zh")], n_boot=20, seed=0, pooling="mean", batch_size=16,
                                  max_length=128, cache=False, progress=False)
    assert list(got["version"]) == list(want["version"]) and list(got["lang_b"]) == list(want["lang_b"])
    assert set(got["lang_a"]) == {"en"} and set(got["lang_b"]) == {"ru", "zh"}
    for col in ("matched", "random", "gap", "gap_low", "gap_high"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=col)
    (sec,) = [s for s in _manifest(report)["sections"] if s["key"] == "transliteration"]
    diff = want[want.version == "romanized - original"]
    for b in ("ru", "zh"):
        sub = diff[diff.lang_b == b]
        row = sub.loc[sub["gap"].abs().idxmax()]
        assert (f"en–{b} largest change {row['gap']:+.3f} [{row['gap_low']:+.3f}, {row['gap_high']:+.3f}] at layer "
                f"{int(row['layer'])}") in sec["finding"]
    up, down = int((diff["gap_low"] > 0).sum()), int((diff["gap_high"] < 0).sum())
    if up or down:
        assert f"raises the gap (interval above 0) at {up}, lowers it (interval below 0) at {down}" in sec["finding"]
    else:
        assert "romanization makes no clear difference" in sec["finding"]
    fig = report.figures["transliteration"]
    rom = next(t for t in fig.data if t.name == "en–ru romanized")
    np.testing.assert_allclose(np.asarray(rom.y, float),
                               want[(want.lang_b == "ru") & (want.version == "romanized")]["gap"], rtol=1e-6, atol=1e-6)
    assert "Scripts read from the corpus text: en Latin, de Latin, ru Cyrillic, zh Han" in sec["notes"][0]


def test_map_quality_table_equals_the_api(report, direct):
    from xling_probe.centering import LinearProjection, map_quality, neutrality

    _, acts, _ = direct
    got = pd.read_csv(report.out / "tables" / "map_quality.csv")
    rep = neutrality(acts, 0.5, seed=0, progress=False)
    proj = LinearProjection("en", ["de", "ru", "zh"]).fit(acts.sel(ids=list(rep.fit_ids)))
    want = map_quality(proj, acts.sel(ids=list(rep.heldout_ids)))
    assert list(got["layer"]) == list(want["layer"]) and list(got["source"]) == list(want["source"])
    for col in ("orthogonality_deviation", "sv_cv", "sv_ratio", "rank", "p_at_1_raw", "p_at_1_projected", "r2"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-5, atol=1e-6, err_msg=col)
    assert (got["n_fit"] == 6).all() and (got["n_heldout"] == 6).all()
    (sec,) = [s for s in _manifest(report)["sections"] if s["key"] == "map_quality"]
    mean = want.groupby("layer")[["p_at_1_projected", "orthogonality_deviation"]].mean()
    best = int(mean["p_at_1_projected"].to_numpy().argmax())
    assert f"held-out P@1 after the map is highest at layer {mean.index[best]}" in sec["finding"]
    up = int((want.groupby("layer")["p_at_1_projected"].mean() > want.groupby("layer")["p_at_1_raw"].mean()).sum())
    assert f"The map raises held-out P@1 above that of the raw vectors at {up} of {len(mean)} layers." in sec["finding"]
    assert "rank deficient" in sec["finding"]  # 6 fit pairs, width 64: the min-norm map has rank < width
    page = report.index.read_text(encoding="utf-8")
    assert "Linear map into en: held-out retrieval and orthogonality" in page and "orthogonality_deviation" in page


def test_transliteration_figure_holds_the_table():
    from xling_probe.plots import transliteration_curves
    from xling_probe.plots.style import caption_of

    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 3, 10, 8)).astype(np.float32)
    original = xp.Activations(data, layers=(0, 1, 2), languages=("en", "ru", "zh"), ids=[str(i) for i in range(10)])
    romanized = xp.Activations(data + 0.5 * rng.normal(size=data.shape).astype(np.float32), layers=(0, 1, 2),
                               languages=("en", "ru", "zh"), ids=[str(i) for i in range(10)])
    table = xp.transliteration_gap(original, romanized, pairs=[("en", "ru"), ("en", "zh")], n_boot=30)
    fig = transliteration_curves(table)
    by_name = {t.name: t for t in fig.data}
    for b in ("ru", "zh"):
        for version, name in (("original", f"en–{b} original"), ("romanized", f"en–{b} romanized"),
                              ("romanized - original", f"en–{b} change")):
            rows = table[(table.lang_b == b) & (table.version == version)]
            np.testing.assert_allclose(np.asarray(by_name[name].y, float), rows["gap"], rtol=1e-12)
            band = by_name[f"en–{b} {version} interval"]
            np.testing.assert_allclose(np.asarray(band.y, float), list(rows["gap_high"]) + list(rows["gap_low"])[::-1])
    assert by_name["en–ru change"].xaxis == "x2" and "95% bootstrap intervals" in caption_of(fig)
    with pytest.raises(MetricError):
        transliteration_curves(table[table.version == "original"])


# ------------------------------------------------------------------------------------- skipping, with reasons
def _sim(langs, n_layers=2, seed=0):
    from xling_probe.measures.result import SimilarityResult

    rng = np.random.default_rng(seed)
    n = len(langs)
    value = rng.random((1, n_layers, n, n))
    value = (value + value.transpose(0, 1, 3, 2)) / 2
    for k in range(n):
        value[:, :, k, k] = np.nan
    pairs = tuple((a, b) for i, a in enumerate(langs) for b in langs[i + 1:])
    return SimilarityResult(metrics=("cka_debiased",), layers=tuple(range(n_layers)), languages=tuple(langs),
                            pairs=pairs, arrays={"value": value})


def test_distance_stage_skips_with_reasons(monkeypatch):
    from xling_probe.report.stages import distance_stage

    def run(grid, enabled):
        stages = _Stages(("distances",), progress=False)
        sections, tables, figs, notes = [], {}, {}, []
        distance_stage(stages, grid, sections, tables, figs, notes, enabled=enabled, seed=0)
        return stages.record()[0], sections, tables, notes

    rec, sections, _, _ = run(_sim(["en", "de", "fr", "ru"]), False)
    assert rec["status"] == "skipped" and "--distances" in rec["reason"] and not sections
    rec, sections, tables, notes = run(_sim(["en", "de", "fr"]), True)
    assert rec["status"] == "skipped" and "at least 4 languages, this run has 3 (en, de, fr)" in rec["reason"]
    assert sections[0].title.endswith("(skipped)") and notes and not tables
    import xling_probe.distances as dist

    def no_package(*args, **kwargs):
        raise MetricError("language distances need the 'urielplus' package: pip install 'urielplus>=1.3'")

    monkeypatch.setattr(dist, "language_distances", no_package)
    rec, sections, tables, notes = run(_sim(["en", "de", "fr", "ru"]), {"source": "uriel"})
    assert "urielplus' package" in sections[0].notes[0] and "language distances skipped" in notes[0] and not tables
    monkeypatch.undo()
    rec, sections, tables, notes = run(_sim(["en", "de", "fr", "ru"]), {"source": "uriel", "permutations": 9})
    assert rec["status"] == "ran" and set(tables) == {"distance_correlations", "distance_summary", "language_distances"}


def test_transliteration_stage_skips_with_reasons(tiny_encoder, monkeypatch):
    from xling_probe.report.stages import transliteration_stage

    def run(corpus, enabled):
        acts = xp.extract(tiny_encoder, corpus, cache=False, progress=False)
        stages = _Stages(("transliteration",), progress=False)
        sections, tables, figs, notes = [], {}, {}, []
        transliteration_stage(stages, tiny_encoder, corpus, acts, sections, tables, figs, notes, enabled=enabled,
                              pivot="en", bootstrap=5, seed=0, batch_size=16, max_length=32, progress=False,
                              cache=False, extract_options={})
        return stages.record()[0], sections, tables, notes

    latin = xp.ParallelCorpus.sample().select_languages(["en", "de", "fr"]).head(5)
    rec, sections, _, _ = run(latin, False)
    assert rec["status"] == "skipped" and "--transliteration" in rec["reason"] and not sections
    rec, sections, tables, notes = run(latin, True)
    assert rec["status"] == "skipped" and "written in Latin script (en, de, fr): there is nothing to romanize" in rec["reason"]
    assert "nothing to romanize" in sections[0].notes[0] and not tables
    import xling_probe.transliteration as tr

    def no_uroman():
        raise CorpusError("romanization needs the 'uroman' package: pip install 'uroman>=1.3'")

    monkeypatch.setattr(tr, "_uroman", no_uroman)
    rec, sections, tables, notes = run(xp.ParallelCorpus.sample().select_languages(["en", "ru"]).head(5), True)
    assert "'uroman' package" in sections[0].notes[0] and not tables


def test_cli_report_passes_distances_and_transliteration(tiny_decoder_dir, tmp_path, monkeypatch):
    import xling_probe.report.build as build

    seen = {}

    @functools.wraps(build.build_report)
    def fake(out, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(build, "build_report", fake)
    with pytest.raises(SystemExit):
        main(["report", "--model", str(tiny_decoder_dir), "--distances", "--distance-source", "uriel",
              "--distance-permutations", "99", "--transliteration", "--out", str(tmp_path / "r")])
    assert seen["distances"] == {"source": "uriel", "permutations": 99} and seen["transliteration"] is True
    seen.clear()
    with pytest.raises(SystemExit):
        main(["report", "--model", str(tiny_decoder_dir), "--out", str(tmp_path / "s")])
    assert seen["distances"] is False and seen["transliteration"] is False
    assert STAGES.index("distances") < STAGES.index("transliteration") < STAGES.index("static_export")
