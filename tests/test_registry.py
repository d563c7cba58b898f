"""The metric registry and the selection API of the results, against definitions and direct array computations."""

from __future__ import annotations

import itertools
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from xling_probe import Activations
from xling_probe.centering.result import NeutralityReport
from xling_probe.centering.scores import ProjectionScores
from xling_probe.errors import MetricError
from xling_probe.measures.cross_layer import CrossLayerResult
from xling_probe.measures.metrics import anc, linear_cka, mexa_alignment, mutual_knn, retrieval_precision
from xling_probe.measures.registry import DEFAULT_METRICS, METRICS, cka_form, metric_spec, parse_metrics
from xling_probe.measures.result import SimilarityResult


# ------------------------------------------------------------------ registry
def _all_permutation_mean(score, x, y):
    """Mean of ``score(x, y[perm])`` over every permutation of the rows of y: the exact shuffled-pairing mean."""
    return float(np.mean([score(x, y[list(p)]) for p in itertools.permutations(range(len(y)))]))


@pytest.mark.parametrize("name, score", [
    ("p@1", lambda x, y: retrieval_precision(x, y)[0]),
    ("p@2", lambda x, y: retrieval_precision(x, y, k=2)[0]),
    ("mknn@2", lambda x, y: mutual_knn(x, y, k=2)),
    ("cka_debiased", lambda x, y: linear_cka(x, y, debiased=True)),
    ("anc", lambda x, y: anc(x, y)),
])
def test_chance_level_is_the_exact_mean_over_every_shuffled_pairing(name, score):
    g = np.random.default_rng(0)
    n = 6
    x, y = g.normal(size=(n, 4)), g.normal(size=(n, 4))
    assert metric_spec(name).chance(n) == pytest.approx(_all_permutation_mean(score, x, y), abs=1e-12)


def test_chance_of_anc_abs_matches_a_shuffled_pairing_simulation():
    g = np.random.default_rng(1)
    n, d = 40, 400
    x, y = g.normal(size=(n, d)), g.normal(size=(n, d))
    sim = np.mean([anc(x, y[g.permutation(n)], absolute=True) for _ in range(20)])
    assert metric_spec("anc_abs").chance(n) == pytest.approx(sim, rel=0.03)


def test_chance_formulas_and_unknown_chance():
    assert metric_spec("p@1").chance(50) == pytest.approx(1 / 50)
    assert metric_spec("p@5").chance(50) == pytest.approx(5 / 50)
    assert metric_spec("mknn@10").chance(51) == pytest.approx(10 / 50)
    assert metric_spec("cka").chance(50) is None and metric_spec("mexa").chance(50) is None  # depend on the data
    x = np.random.default_rng(2).normal(size=(5, 3))
    assert mexa_alignment(x, x) == 1.0  # bounds of MEXA: identical sets reach the top
    assert metric_spec("mexa").bounds == (0.0, 1.0)


def test_specs_say_family_direction_k_bounds_and_cross_layer():
    p5 = metric_spec("p@5")
    assert (p5.family, p5.directional, p5.k, p5.bounds, p5.cross_layer, p5.label) == \
        ("retrieval", True, 5, (0.0, 1.0), False, "retrieval P@5")
    assert metric_spec("mknn@3").family == "mknn" and not metric_spec("mknn@3").directional
    assert metric_spec("anc").bounds == (-1.0, 1.0) and metric_spec("cka_debiased").bounds == (-1.0, 1.0)
    assert {m for m, s in METRICS.items() if s.cross_layer} == {"cka", "cka_debiased", "anc", "anc_abs"}
    assert all(not metric_spec(m).directional for m in METRICS)
    assert metric_spec("p@1").ident == "p_at_1"
    assert set(DEFAULT_METRICS) <= set(METRICS) | {"p@1"}


@pytest.mark.parametrize("alias, name", [("p_at_1", "p@1"), ("P@1", "p@1"), (" p@3 ", "p@3"),
                                         ("cka_unbiased", "cka_debiased"), ("mknn", "mknn@10"),
                                         ("MKNN_at_5", "mknn@5"), ("CKA", "cka")])
def test_aliases_resolve_to_one_canonical_name(alias, name):
    assert metric_spec(alias).name == name


def test_parse_metrics_takes_strings_lists_and_drops_repeats():
    assert parse_metrics("cka, p_at_1,P@1") == ("cka", "p@1")
    assert parse_metrics(["mknn", "anc"]) == ("mknn@10", "anc")


@pytest.mark.parametrize("bad, message", [("cosine", "unknown metric 'cosine'; known metrics: cka"),
                                          ("p@0", "K must be at least 1"), ("q@3", "unknown metric"),
                                          ("", "no metric requested")])
def test_unknown_metrics_list_the_known_ones(bad, message):
    with pytest.raises(MetricError, match=message):
        parse_metrics(bad)


def test_cka_form_is_the_min_rule_for_one_pair_and_a_cost_rule_for_many():
    assert cka_form(100, 10) == "feature" and cka_form(10, 100) == "gram"
    assert cka_form(50, 2000, languages=4, pairs=6, permutations=20, bootstrap=200) == "gram"
    assert cka_form(5000, 8, languages=2, pairs=1) == "feature"
    assert cka_form(20000, 4096, languages=10, pairs=45, budget_gb=0.5) == "feature"  # Gram matrices do not fit


# ------------------------------------------------------------------ SimilarityResult by name
LANGS = ("en", "fr", "zh")


@pytest.fixture
def hand():
    """metrics (cka, p@1) x 4 layers x 3 languages, pairs (en, fr) and (en, zh); fr-zh not computed."""
    g = np.random.default_rng(3)
    value = np.full((2, 4, 3, 3), np.nan)
    null_max = np.full_like(value, np.nan)
    for a, b in ((0, 1), (0, 2)):
        v = g.uniform(size=4)
        value[0, :, a, b] = value[0, :, b, a] = v
        value[1, :, a, b], value[1, :, b, a] = g.uniform(size=4), g.uniform(size=4)
        null_max[:, :, a, b] = null_max[:, :, b, a] = 0.5
    arrays = {"value": value, "null_max": null_max, "null_mean": null_max / 2}
    return SimilarityResult(metrics=("cka", "p@1"), layers=(0, 2, 4, 6), languages=LANGS,
                            pairs=(("en", "fr"), ("en", "zh")), arrays=arrays,
                            settings={"null_permutations": 5, "bootstrap": 0}), arrays


def test_sel_reads_by_name_in_any_spelling(hand):
    res, arrays = hand
    assert res.sel("p_at_1", 4, "eng", "fra") == arrays["value"][1, 2, 0, 1]
    assert res.sel("p@1", -1, "fr", "en") == arrays["value"][1, 3, 1, 0]
    np.testing.assert_array_equal(res.sel("cka", None, "en", "zh"), arrays["value"][0, :, 0, 2])
    np.testing.assert_array_equal(res.sel("cka", 2), arrays["value"][0, 1])
    np.testing.assert_array_equal(res.sel("cka", [0, 6], "en"), arrays["value"][0, [0, 3], 0])
    assert res.sel("cka", 2, "en", "fr", field="null_max") == 0.5
    with pytest.raises(MetricError, match="was not computed"):
        res.sel("anc", 2, "en", "fr")
    with pytest.raises(MetricError, match="layer 3 is not available"):
        res.sel("cka", 3, "en", "fr")
    with pytest.raises(MetricError, match="no 'ci_low'"):
        res.sel("cka", 2, "en", "fr", field="ci_low")


def test_matrix_rows_are_the_query_side(hand):
    res, arrays = hand
    m = res.matrix("p@1", 2)
    assert list(m.index) == list(LANGS) == list(m.columns) and m.index.name == "lang_a"
    np.testing.assert_array_equal(m.to_numpy(), arrays["value"][1, 1])
    assert m.loc["fr", "en"] == arrays["value"][1, 1, 1, 0] and np.isnan(m.loc["en", "en"])


def test_pair_curves_and_peak_layer_against_direct_computations(hand):
    res, arrays = hand
    pc = res.pair_curves("p@1")
    assert list(pc.columns) == ["en→fr", "en→zh", "fr→en", "zh→en"] and list(pc.index) == [0, 2, 4, 6]
    np.testing.assert_array_equal(pc["zh→en"], arrays["value"][1, :, 2, 0])
    assert list(res.pair_curves("cka", "en-zh").columns) == ["en-zh"]
    for metric, mi in (("cka", 0), ("p@1", 1)):
        mean = np.nanmean(arrays["value"][mi].reshape(4, -1), axis=1)  # every computed entry
        assert res.peak_layer(metric) == res.layers[int(np.argmax(mean))]
    fwd = np.mean([arrays["value"][1, :, 0, 1], arrays["value"][1, :, 0, 2]], axis=0)
    assert res.peak_layer("p@1", direction="forward") == res.layers[int(np.argmax(fwd))]
    one = arrays["value"][1, :, 2, 0]
    assert res.peak_layer("p@1", pairs=[("zh", "en")], direction="forward") == res.layers[int(np.argmax(one))]


def test_peak_layer_takes_the_first_layer_on_ties():
    value = np.full((1, 3, 2, 2), np.nan)
    value[0, :, 0, 1] = value[0, :, 1, 0] = [0.2, 0.7, 0.7]
    res = SimilarityResult(metrics=("cka",), layers=(1, 2, 3), languages=("en", "de"), pairs=(("en", "de"),),
                           arrays={"value": value})
    assert res.peak_layer("cka") == 2


def test_above_null_count(hand):
    res, arrays = hand
    v, nm = arrays["value"][1, 2], arrays["null_max"][1, 2]
    slots = [(0, 1), (0, 2), (1, 0), (2, 0)]
    assert res.above_null_count("p@1", 4) == (sum(v[i, j] > nm[i, j] for i, j in slots), 4)
    assert res.above_null_count("p@1", 4, pairs=[("fr", "en")]) == (int(v[1, 0] > nm[1, 0]), 1)


def test_arrays_of_frozen_results_are_read_only(hand):
    res, arrays = hand
    for arr in (res.arrays["value"], res.field("null_max"), res.value, res.sel("cka", 2)):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1.0
    arrays["value"][0, 0, 0, 1] = 9.0  # the caller's array stays the caller's
    with pytest.raises(TypeError):
        res.arrays["value"] = arrays["value"]
    with pytest.raises(TypeError):
        res.arrays["value"] = arrays["value"]
    with pytest.raises(ValueError, match="read-only"):
        pickle.loads(pickle.dumps(res)).value[0] = 1.0  # still read-only after a round trip
    cross = CrossLayerResult("cka", "en", "de", (0, 1), (0, 1), np.eye(2))
    with pytest.raises(ValueError, match="read-only"):
        cross.matrix[0, 0] = 0.0


def test_to_dict_is_strict_json_with_none_for_nan(hand):
    res, _ = hand

    def no_nan(token):
        raise AssertionError(f"not strict JSON: {token}")

    payload = json.loads(json.dumps(res.to_dict()), parse_constant=no_nan)
    assert payload["metrics"] == ["cka", "p@1"] and payload["pairs"] == [["en", "fr"], ["en", "zh"]]
    assert len(payload["values"]) == len(res.to_dataframe())
    cross = CrossLayerResult("cka", "en", "de", (0, 1), (0, 1), np.array([[1.0, np.nan], [0.5, 1.0]]))
    assert json.loads(json.dumps(cross.to_dict()), parse_constant=no_nan)["matrix"] == [[1.0, None], [0.5, 1.0]]
    assert cross.sel(1, 0) == 0.5 and list(cross.sel(layer_a=-1)) == [0.5, 1.0]


# ------------------------------------------------------------------ NeutralityReport and ProjectionScores by name
def _report():
    g = np.random.default_rng(4)
    retrieval = g.uniform(size=(2, 3, 2, 2))  # condition, layer, pair, direction
    return NeutralityReport(conditions=("raw", "centered"), layers=(0, 1, 2), languages=("en", "de", "zh"),
                            pairs=(("en", "de"), ("en", "zh")), retrieval=retrieval,
                            language_id=g.uniform(size=(2, 3)), variance_share=g.uniform(size=(2, 3)),
                            chance=1 / 3, fit_ids=("a", "b"), heldout_ids=("c", "d"), settings={"k": 1})


def test_neutrality_report_sel_and_curve():
    rep = _report()
    r = np.array(rep.retrieval)
    assert rep.sel("retrieval", "centered", 1) == pytest.approx(r[1, 1].mean())
    assert rep.sel("p@1", "raw", -1, direction="backward") == pytest.approx(r[0, 2, :, 1].mean())
    np.testing.assert_allclose(rep.curve("retrieval", "raw", "forward"), r[0, :, :, 0].mean(-1))
    np.testing.assert_array_equal(rep.sel("language_id", None, 0), rep.language_id[:, 0])
    np.testing.assert_allclose(rep.pair_retrieval("de", "en", "raw", "forward"), r[0, :, 0, 1])
    assert rep.value("variance_share", "centered", 2) == rep.variance_share[1, 2]
    assert rep.metric == "p@1" and "p_at_1_raw" in rep.summary().columns
    assert set(rep.to_dataframe().metric) == {"p@1", "p@1_mean", "language_id_accuracy", "language_variance_share"}
    with pytest.raises(ValueError, match="read-only"):
        rep.retrieval[0, 0, 0, 0] = 1.0
    json.dumps(rep.to_dict())
    with pytest.raises(MetricError, match="condition 'projected' is not in this report"):
        rep.sel("retrieval", "projected", 0)


def test_projection_scores_sel_to_dict_to_xarray():
    g = np.random.default_rng(5)
    p1, r2 = g.uniform(size=(2, 2, 2, 2)), g.uniform(size=(2, 2))
    r2[1, 1] = np.nan
    sc = ProjectionScores(layers=(3, 5), sources=("de", "zh"), target="en", method="lstsq", p_at_1=p1, r2=r2,
                          ids=("a", "b"))
    assert sc.sel("p@1", 5, "deu", direction="forward", stage="projected") == p1[1, 0, 0, 1]
    np.testing.assert_array_equal(sc.sel("p_at_1", stage="raw"), p1[..., 0])
    assert sc.sel("r2", 3, "zh") == r2[0, 1]
    payload = json.loads(json.dumps(sc.to_dict()))
    assert payload["r2"][1][1] is None and payload["p@1"][0][0][0][0] == p1[0, 0, 0, 0]
    assert sc.to_xarray()["p_at_1"].sel(layer=5, source="zh", stage="raw", direction="target->source").item() == \
        p1[1, 1, 1, 0]
    assert set(sc.to_dataframe().metric) == {"p@1", "r2"}
    assert isinstance(sc.summary(), pd.DataFrame)
    with pytest.raises(ValueError, match="read-only"):
        sc.p_at_1[0, 0, 0, 0] = 0.0


def test_engine_reads_the_registry_for_aliases():
    from xling_probe.measures.engine import similarity

    g = np.random.default_rng(6)
    data = g.normal(size=(2, 2, 12, 5)).astype(np.float32)
    acts = Activations(data=data, layers=(0, 1), languages=("en", "de"), ids=tuple(map(str, range(12))))
    res = similarity(acts, metrics="P_at_1,cka_unbiased", null_permutations=0, bootstrap=0, progress=False)
    assert res.metrics == ("p@1", "cka_debiased")
    assert res.sel("p_at_1", 1, "en", "de") == pytest.approx(retrieval_precision(data[1, 0], data[1, 1])[0])
