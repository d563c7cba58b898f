"""Language distances (URIEL / URIEL+), code mapping, the Mantel and partial Mantel tests, per-layer correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kstest, pearsonr, spearmanr

from xling_probe.distances import (
    angular_distances,
    distance_correlations,
    iso639_3_candidates,
    language_distances,
    mantel,
    partial_mantel,
    script_of_code,
    scripts_from_texts,
    to_iso639_3,
)
from xling_probe.errors import LanguageCodeError, MetricError
from xling_probe.measures.result import SimilarityResult


def _sym(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.normal(size=(n, n))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0.0)
    return a


def _upper(a: np.ndarray) -> np.ndarray:
    return a[np.triu_indices(a.shape[0], 1)]


# ---------------------------------------------------------------------- Mantel
def test_mantel_recovers_a_planted_correlation():
    rng = np.random.default_rng(0)
    n = 12
    dist = _sym(rng, n)
    sim = -dist + 0.5 * _sym(rng, n)  # negatively related, as similarity vs distance
    res = mantel(sim, dist, permutations=499, seed=1)
    assert res.r == pytest.approx(spearmanr(_upper(sim), _upper(dist))[0], abs=1e-12)
    assert res.r < -0.6 and res.p_value <= 0.01
    assert res.n_pairs == n * (n - 1) // 2 and res.n_dropped == 0
    pe = mantel(sim, dist, permutations=99, method="pearson")
    assert pe.r == pytest.approx(pearsonr(_upper(sim), _upper(dist))[0], abs=1e-12)
    # seeded: the same p-value twice; one-sided alternatives
    assert mantel(sim, dist, permutations=499, seed=1).p_value == res.p_value
    assert mantel(sim, dist, permutations=199, alternative="less").p_value <= 0.01
    assert mantel(sim, dist, permutations=199, alternative="greater").p_value > 0.9


def test_mantel_null_is_uniform():
    ps = []
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        ps.append(mantel(_sym(rng, 8), _sym(rng, 8), permutations=199, seed=seed).p_value)
    ps = np.array(ps)
    assert 0.02 <= np.mean(ps < 0.05) <= 0.09
    assert kstest(ps, "uniform").pvalue > 0.01


def test_mantel_nan_pairs_dataframes_and_asymmetry():
    rng = np.random.default_rng(3)
    n = 9
    langs = [f"l{i}" for i in range(n)]
    dist = _sym(rng, n)
    sim = -dist + 0.3 * _sym(rng, n)
    sim_nan = sim.copy()
    sim_nan[0, 1] = sim_nan[1, 0] = np.nan
    sim_nan[2, 5] = sim_nan[5, 2] = np.nan
    res = mantel(sim_nan, dist, permutations=199)
    keep = np.isfinite(_upper(sim_nan))
    assert res.n_dropped == 2 and res.n_pairs == n * (n - 1) // 2 - 2
    assert res.r == pytest.approx(spearmanr(_upper(sim_nan)[keep], _upper(dist)[keep])[0], abs=1e-12)
    assert 0 < res.p_value < 0.05
    # DataFrames are aligned by label
    d = pd.DataFrame(dist, index=langs, columns=langs)
    s = pd.DataFrame(sim, index=langs, columns=langs)
    shuffled = d.loc[langs[::-1], langs[::-1]]
    assert mantel(s, shuffled, permutations=0).r == pytest.approx(mantel(sim, dist, permutations=0).r)
    # a directional matrix is averaged with its transpose
    skew = sim + np.triu(np.ones((n, n)), 1) * 0.1 - np.tril(np.ones((n, n)), -1) * 0.1
    assert mantel(skew, dist, permutations=0).r == pytest.approx(mantel(sim, dist, permutations=0).r)
    with pytest.raises(MetricError):
        mantel(sim[:2, :2], dist[:2, :2])
    with pytest.raises(MetricError):
        mantel(sim, dist, method="kendall")


def _partial_formula(x, y, z):
    rxy, rxz, ryz = (np.corrcoef(a, b)[0, 1] for a, b in ((x, y), (x, z), (y, z)))
    return (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))


def test_partial_mantel_equals_the_formula():
    rng = np.random.default_rng(5)
    n = 10
    z = (rng.random((n, n)) > 0.5).astype(float)
    z = np.triu(z, 1) + np.triu(z, 1).T
    y = z + 0.5 * _sym(rng, n)
    x = -y - z + 0.3 * _sym(rng, n)
    xu, yu, zu = _upper(x), _upper(y), _upper(z)
    res = partial_mantel(x, y, z, permutations=199, method="pearson")
    assert res.r == pytest.approx(_partial_formula(xu, yu, zu), abs=1e-12)
    sp = partial_mantel(x, y, z, permutations=199)
    from scipy.stats import rankdata

    assert sp.r == pytest.approx(_partial_formula(rankdata(xu), rankdata(yu), rankdata(zu)), abs=1e-12)
    assert sp.r_xy == pytest.approx(spearmanr(xu, yu)[0], abs=1e-12)
    assert sp.r < 0 and sp.p_value < 0.05
    # with NaN pairs: same formula on the pairs left
    x2 = x.copy()
    x2[0, 3] = x2[3, 0] = np.nan
    keep = np.isfinite(_upper(x2))
    r2 = partial_mantel(x2, y, z, permutations=49, method="pearson")
    assert r2.r == pytest.approx(_partial_formula(xu[keep], yu[keep], zu[keep]), abs=1e-12)
    assert r2.n_dropped == 1 and np.isfinite(r2.p_value)
    # a constant control leaves the partial correlation undefined
    const = partial_mantel(x, y, np.ones((n, n)), permutations=9)
    assert np.isnan(const.r) and np.isnan(const.p_value)


# ---------------------------------------------------------------------- codes and URIEL
def test_code_mapping():
    assert to_iso639_3("en") == "eng" and to_iso639_3("eng") == "eng"
    assert to_iso639_3("zh") == "cmn" and to_iso639_3("cmn_hans") == "cmn"
    assert to_iso639_3("ar") == "arb" and to_iso639_3("pes_1") == "pes" and to_iso639_3("fa") == "pes"
    assert to_iso639_3("deu_1996") == "deu" and to_iso639_3("por_BR") == "por" and to_iso639_3("fuv2") == "fuv"
    assert to_iso639_3("zh", known={"zho"}) == "zho"
    assert iso639_3_candidates("xx") == [] and to_iso639_3("xx") is None
    assert script_of_code("ru") == "Cyrl" and script_of_code("zh-Hant") == "Hant" and script_of_code("en") == "Latn"
    assert scripts_from_texts({"ru": "Привет мир", "en": ["hello", "world"]}) == {"ru": "Cyrillic", "en": "Latin"}


@pytest.fixture(scope="module")
def uriel_distances():
    return language_distances(["en", "deu", "zh", "es", "pt", "ja", "ru", "xx"], source="uriel")


def test_uriel_distances_are_symmetric_and_know_facts(uriel_distances):
    d = uriel_distances
    assert d.languages == ("en", "de", "zh", "es", "pt", "ja", "ru", "xx")
    assert d.unmapped == ("xx",) and d.iso639_3["de"] == "deu" and d.iso639_3["zh"] == "cmn"
    assert set(d.kinds) == {"syntactic", "phonological", "inventory", "genetic", "geographic", "featural", "script"}
    for kind in d.kinds:
        m = d[kind].to_numpy()
        known = [i for i in range(len(d.languages)) if np.isfinite(m[i, i])]
        sub = m[np.ix_(known, known)]
        assert np.allclose(sub, sub.T, equal_nan=True)
        assert np.all(np.diag(sub) == 0)
        assert np.all(np.isnan(m[-1]))  # xx is unmapped
        assert np.nanmin(m) >= 0 and np.nanmax(m) <= 1
    g, geo = d["genetic"], d["geographic"]
    assert g.loc["en", "de"] < g.loc["en", "zh"]
    assert g.loc["es", "pt"] < g.loc["es", "ru"]
    assert geo.loc["es", "pt"] < geo.loc["es", "ja"]
    s = d["script"]
    assert s.loc["en", "de"] == 0 and s.loc["en", "ru"] == 1 and s.loc["zh", "ja"] == 1
    assert set(d.to_dataframe()["kind"]) == set(d.kinds)
    assert d.coverage().set_index("kind").loc["genetic", "languages_with_data"] == 7
    with pytest.raises(LanguageCodeError):
        language_distances(["en", "xx"], kinds=("genetic",), source="uriel", strict=True)
    with pytest.raises(MetricError):
        language_distances(["en", "eng"], source="uriel")
    with pytest.raises(MetricError):
        language_distances(["en", "de"], kinds=("bogus",), source="uriel")


def test_matrix_distances_equal_urielplus_new_distance(uriel_distances):
    """The matrix form equals URIEL+'s own new_distance pair by pair (URIEL+ rounds to 4 decimals)."""
    from urielplus.urielplus import URIELPlus

    import logging

    level = logging.getLogger().level
    u = URIELPlus()
    logging.getLogger().setLevel(logging.WARNING)
    try:
        iso = uriel_distances.iso639_3
        pairs = [("en", "de"), ("en", "zh"), ("es", "pt"), ("ja", "ru")]
        for kind in ("genetic", "syntactic", "geographic", "inventory", "featural"):
            for a, b in pairs:
                expected = u.new_distance(kind, [iso[a], iso[b]])
                assert uriel_distances[kind].loc[a, b] == pytest.approx(expected, abs=6e-5), (kind, a, b)
    finally:
        logging.getLogger().setLevel(level)


def test_angular_distances_formula():
    x = np.array([[1.0, 0.0, np.nan], [0.0, 1.0, 1.0], [1.0, 1.0, np.nan], [np.nan, np.nan, np.nan],
                  [0.0, 0.0, 0.0]])
    d = angular_distances(x)
    assert d[0, 1] == pytest.approx(1.0)  # orthogonal on the shared features 0, 1
    assert d[0, 2] == pytest.approx(2 * np.arccos(1 / np.sqrt(2)) / np.pi)
    assert np.isnan(d[3]).all() and d[2, 2] == 0
    # an all-zero vector counts as constant: cos = sum(v) / (sqrt(k) |v|)
    assert d[4, 1] == pytest.approx(2 * np.arccos(2 / (np.sqrt(3) * np.sqrt(2))) / np.pi)


# ---------------------------------------------------------------------- per layer
def _similarity(langs, dist, rng, n_layers=3):
    n = len(langs)
    value = np.full((1, n_layers, n, n), np.nan)
    for layer in range(n_layers):
        strength = layer  # layer 0: no relation, later layers: similarity falls with distance
        s = -strength * dist + _sym(rng, n)
        np.fill_diagonal(s, np.nan)
        value[0, layer] = s
    pairs = tuple((a, b) for i, a in enumerate(langs) for b in langs[i + 1:])
    return SimilarityResult(metrics=("cka",), layers=tuple(range(n_layers)), languages=tuple(langs), pairs=pairs,
                            arrays={"value": value})


def test_distance_correlations_per_layer():
    rng = np.random.default_rng(7)
    langs = ["en", "de", "fr", "es", "ru", "zh", "ja", "ar", "hi", "fi"]
    n = len(langs)
    dist = np.abs(_sym(rng, n))
    np.fill_diagonal(dist, 0)
    script = np.array([[0.0 if (i < 4) == (j < 4) else 1.0 for j in range(n)] for i in range(n)])
    tables = {"genetic": pd.DataFrame(dist, index=langs, columns=langs),
              "script": pd.DataFrame(script, index=langs, columns=langs)}
    result = _similarity(langs, dist, rng)
    table = distance_correlations(result, tables, permutations=199, seed=0)
    assert list(table.columns) == ["layer", "kind", "metric", "r", "p", "partial_r", "partial_p", "n_pairs",
                                   "n_languages", "method", "control"]
    gen = table[table["kind"] == "genetic"].set_index("layer")
    assert gen.loc[2, "r"] < -0.5 and gen.loc[2, "p"] < 0.05 and gen.loc[2, "partial_r"] < -0.5
    assert abs(gen.loc[0, "r"]) < gen.loc[2, "r"] * -1
    assert (gen["n_pairs"] == n * (n - 1) // 2).all()
    assert table[table["kind"] == "script"]["partial_r"].isna().all()
    direct = mantel(result.matrix("cka", 2), tables["genetic"], permutations=199, seed=0)
    assert gen.loc[2, "r"] == pytest.approx(direct.r) and gen.loc[2, "p"] == pytest.approx(direct.p_value)
    with pytest.raises(MetricError):
        distance_correlations(result, {"genetic": tables["genetic"].iloc[:5, :5]}, control=None)


def test_distance_correlation_figure():
    from xling_probe.distances import distance_correlation_figure

    rng = np.random.default_rng(8)
    langs = ["en", "de", "fr", "es", "ru", "zh"]
    n = len(langs)
    dist = np.abs(_sym(rng, n))
    script = np.array([[0.0 if (i < 4) == (j < 4) else 1.0 for j in range(n)] for i in range(n)])
    tables = {"genetic": pd.DataFrame(dist, index=langs, columns=langs),
              "script": pd.DataFrame(script, index=langs, columns=langs)}
    table = distance_correlations(_similarity(langs, dist, rng), tables, permutations=19)
    fig = distance_correlation_figure(table)
    assert [t.name for t in fig.data] == ["genetic", "script"]
    assert list(fig.data[0].x) == [0, 1, 2]
    part = distance_correlation_figure(table, value="partial_r")
    assert [t.name for t in part.data] == ["genetic"]  # the control itself has no partial r
    with pytest.raises(MetricError):
        distance_correlation_figure(table, value="bogus")
