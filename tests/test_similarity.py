"""The similarity engine on small synthetic activations: numbers against the metric functions,
nulls and intervals against explicit resampling, labels, summaries, the CLI and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xling_probe import Activations
from xling_probe.errors import MetricError
from xling_probe.measures.metrics import anc, linear_cka, mexa_alignment, mutual_knn, retrieval_precision
from xling_probe.measures.engine import cross_layer_similarity, draws, similarity

LANGS = ("en", "de", "zh", "ru")
NOISE = (2.0, 0.6, 0.3, 1.5)  # per layer: languages agree most in the middle (a rise, then a drop)


def make_acts(n=40, d=12, noise=NOISE, langs=LANGS, seed=0) -> Activations:
    g = np.random.default_rng(seed)
    meaning = g.normal(size=(n, d))
    data = np.stack([
        np.stack([meaning + s * g.normal(size=(n, d)) + g.normal(size=d) for _ in langs]) for s in noise
    ]).astype(np.float32)
    return Activations(data=data, layers=tuple(range(len(noise))), languages=langs,
                       ids=tuple(f"s{i}" for i in range(n)), meta={"model": "synthetic"})


ALL = ("cka", "cka_debiased", "anc", "anc_abs", "p@1", "p@3", "mexa", "mknn@5")


@pytest.fixture(scope="module")
def acts():
    return make_acts()


@pytest.fixture(scope="module")
def result(acts):
    return similarity(acts, metrics=ALL, null_permutations=7, bootstrap=30, seed=3, progress=False)


def x64(acts, layer, lang):
    return acts.get(layer, lang).astype(np.float64)


def value(res, metric, layer, a, b, field="value"):
    return res.sel(metric, layer, a, b, field=field)


# ------------------------------------------------------------------ values equal the metric functions
def test_engine_values_equal_metric_functions_at_every_layer_and_pair(acts, result):
    assert len(result.pairs) == 6
    for layer in acts.layers:
        for a, b in result.pairs:
            x, y = x64(acts, layer, a), x64(acts, layer, b)
            fwd, bwd = retrieval_precision(x, y)
            fwd3, bwd3 = retrieval_precision(x, y, k=3)
            expected = {
                ("cka", a, b): linear_cka(x, y), ("cka_debiased", a, b): linear_cka(x, y, debiased=True),
                ("anc", a, b): anc(x, y), ("anc_abs", a, b): anc(x, y, absolute=True),
                ("p@1", a, b): fwd, ("p@1", b, a): bwd, ("p@3", a, b): fwd3, ("p@3", b, a): bwd3,
                ("mexa", a, b): mexa_alignment(x, y), ("mexa", b, a): mexa_alignment(x, y),
                ("mknn@5", a, b): mutual_knn(x, y, 5), ("cka", b, a): linear_cka(x, y),
            }
            for (m, p, q), v in expected.items():
                assert value(result, m, layer, p, q) == pytest.approx(v, abs=1e-12), (m, layer, p, q)


def test_gram_and_feature_forms_give_identical_values_nulls_and_intervals(acts):
    # en is the second language of three pairs: the Gram-form null permutes its side (see _cka_null_products)
    kw = dict(metrics=("cka", "cka_debiased"), null_permutations=4, bootstrap=10, progress=False,
              pairs=[("de", "en"), ("zh", "en"), ("ru", "en"), ("de", "zh")])
    gram = similarity(acts, cka_form="gram", **kw)
    feat = similarity(acts, cka_form="feature", **kw)
    assert gram.settings["cka_form"] == "gram" and feat.settings["cka_form"] == "feature"
    for f in gram.arrays:
        np.testing.assert_allclose(gram.arrays[f], feat.arrays[f], atol=1e-12, err_msg=f)


def test_layer_chunking_does_not_change_numbers(acts, result):
    tiny = similarity(acts, metrics=ALL, null_permutations=7, bootstrap=30, seed=3, progress=False, max_memory_gb=1e-6)
    assert tiny.settings["layer_chunk"] == 1 and result.settings["layer_chunk"] == len(acts.layers)
    for f in result.arrays:
        np.testing.assert_allclose(tiny.arrays[f], result.arrays[f], atol=1e-12, err_msg=f)


# ------------------------------------------------------------------ null and bootstrap against explicit resampling
def explicit_cka_resample(x, y, idx, debiased):
    """CKA of rows ``idx`` built explicitly: entries between two copies of one sentence are zeroed
    (they are not an independent pair), then biased HSIC = tr(K H L H), unbiased = Song et al."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    K, L = (xc @ xc.T)[np.ix_(idx, idx)], (yc @ yc.T)[np.ix_(idx, idx)]
    copies = (idx[:, None] == idx[None, :]) & ~np.eye(len(idx), dtype=bool)
    K[copies], L[copies] = 0.0, 0.0
    n = len(idx)
    if debiased:
        from test_metrics import unbiased_hsic_reference as h
    else:
        H = np.eye(n) - 1.0 / n

        def h(A, B):
            return np.trace(A @ H @ B @ H)
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


def test_null_and_bootstrap_equal_explicit_resampling(acts, result):
    layer, a, b = 2, "en", "zh"
    x, y = x64(acts, layer, a), x64(acts, layer, b)
    perms, boots = draws(acts.n_sentences, 7, 30, seed=3)
    checks = {
        "cka": (lambda x, y: linear_cka(x, y), lambda idx: explicit_cka_resample(x, y, idx, False)),
        "cka_debiased": (lambda x, y: linear_cka(x, y, debiased=True), lambda idx: explicit_cka_resample(x, y, idx, True)),
        "anc": (anc, lambda idx: anc(x[idx], y[idx])),
    }
    for m, (fn, boot_fn) in checks.items():
        null = np.array([fn(x, y[p]) for p in perms])
        assert value(result, m, layer, a, b, "null_mean") == pytest.approx(null.mean(), abs=1e-12)
        assert value(result, m, layer, a, b, "null_std") == pytest.approx(null.std(ddof=1), abs=1e-12)
        assert value(result, m, layer, a, b, "null_max") == pytest.approx(null.max(), abs=1e-12)
        boot = np.array([boot_fn(idx) for idx in boots])
        lo, hi = np.percentile(boot, [2.5, 97.5])
        assert value(result, m, layer, a, b, "ci_low") == pytest.approx(lo, abs=1e-12), m
        assert value(result, m, layer, a, b, "ci_high") == pytest.approx(hi, abs=1e-12), m
    # retrieval and MEXA: the null re-pairs, the bootstrap resamples queries over the fixed pool
    s = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    null_fwd = [np.mean(s.argmax(1) == p) for p in perms]  # a_i must retrieve b_perm(i)
    null_bwd = [retrieval_precision(x, y[p])[1] for p in perms]
    assert value(result, "p@1", layer, a, b, "null_mean") == pytest.approx(np.mean(null_fwd), abs=1e-12)
    assert value(result, "p@1", layer, b, a, "null_mean") == pytest.approx(np.mean(null_bwd), abs=1e-12)
    assert value(result, "mexa", layer, a, b, "null_mean") == pytest.approx(
        np.mean([mexa_alignment(x, y[p]) for p in perms]), abs=1e-12)
    hits = s.argmax(1) == np.arange(len(s))
    lo, hi = np.percentile([hits[idx].mean() for idx in boots], [2.5, 97.5])
    assert (value(result, "p@1", layer, a, b, "ci_low"), value(result, "p@1", layer, a, b, "ci_high")) == \
        pytest.approx((lo, hi), abs=1e-12)
    p_value = (1 + sum(v >= value(result, "cka", layer, a, b) for v in [linear_cka(x, y[p]) for p in perms])) / 8
    assert value(result, "cka", layer, a, b, "p_value") == pytest.approx(p_value)


def test_values_are_above_their_null_for_aligned_languages_and_not_for_unrelated_ones(result):
    assert result.above_null[:, 1:3][~np.isnan(result.value[:, 1:3])].all()  # low-noise layers
    unrelated = make_acts(n=60, noise=(50.0,), seed=1)
    res = similarity(unrelated, metrics=("cka_debiased", "anc", "p@1", "mexa"), null_permutations=19, bootstrap=0,
                     progress=False)
    df = res.to_dataframe()
    assert df["above_null"].mean() < 0.5  # chance: about 1 in 20 per value
    assert df.loc[df.metric == "anc", "value"].abs().max() < 0.1


def test_draws_are_seeded_and_bootstrap_intervals_contain_the_value(acts, result):
    again = similarity(acts, metrics=ALL, null_permutations=7, bootstrap=30, seed=3, progress=False)
    for f in result.arrays:
        np.testing.assert_array_equal(again.arrays[f], result.arrays[f])
    other = similarity(acts, metrics=("cka",), null_permutations=7, bootstrap=30, seed=4, progress=False)
    assert not np.allclose(other.null_mean[0], result.null_mean[0], equal_nan=True)
    df = result.to_dataframe()
    inside = (df.ci_low <= df.value + 1e-12) & (df.value <= df.ci_high + 1e-12)
    assert inside.mean() > 0.9


# ------------------------------------------------------------------ labels, tables, summaries
def test_pairs_pivot_explicit_and_directional_entries(acts):
    res = similarity(acts, metrics=("p@1", "cka"), pairs="pivot:en", null_permutations=0, bootstrap=0, progress=False)
    assert res.pairs == (("en", "de"), ("en", "zh"), ("en", "ru"))
    x, y = x64(acts, 1, "en"), x64(acts, 1, "ru")
    fwd, bwd = retrieval_precision(x, y)
    assert (value(res, "p@1", 1, "en", "ru"), value(res, "p@1", 1, "ru", "en")) == (fwd, bwd)
    assert np.isnan(value(res, "cka", 1, "de", "zh"))  # not requested
    explicit = similarity(acts, metrics="cka", pairs=[("zh", "de"), ("de", "zh"), ("eng", "deu")],
                          null_permutations=0, bootstrap=0, progress=False)
    assert explicit.pairs == (("zh", "de"), ("en", "de"))
    assert explicit.languages == ("en", "de", "zh")
    assert not explicit.has_null
    with pytest.raises(MetricError, match="without a null"):
        explicit.above_null


def test_tidy_dataframe_and_xarray_hold_the_same_numbers(result):
    df = result.to_dataframe()
    slots = sum(len(result.slots(m)) for m in result.metrics)
    assert len(df) == slots * len(result.layers) == (6 * 6 + 2 * 12) * 4
    row = df[(df.metric == "p@1") & (df.layer == 2) & (df.lang_a == "ru") & (df.lang_b == "de")].iloc[0]
    assert row.value == value(result, "p@1", 2, "ru", "de")
    assert row.above_null == (row.value > row.null_max)
    assert row.null_z == pytest.approx((row.value - row.null_mean) / row.null_std)
    assert set(df.loc[df.metric == "anc", "excluded_neurons"]) == {0}
    ds = result.to_xarray()
    assert ds["value"].sel(metric="cka", layer=3, lang_a="de", lang_b="zh").item() == value(result, "cka", 3, "de", "zh")
    assert bool(ds["above_null"].sel(metric="mexa", layer=2, lang_a="en", lang_b="ru"))


def test_layer_mean_peaks_and_first_align_then_predict_profile(result):
    lm = result.layer_mean()
    df = result.to_dataframe()
    for metric in ("cka", "p@1"):
        manual = df[df.metric == metric].groupby("layer")["value"].mean()
        np.testing.assert_allclose(lm.loc[lm.metric == metric, "mean"].to_numpy(), manual.to_numpy(), atol=1e-15)
    peaks = result.peak_layers()
    curve = result.curve("anc", "en", "de")
    row = peaks[(peaks.metric == "anc") & (peaks.lang_a == "en") & (peaks.lang_b == "de")].iloc[0]
    assert row.peak_layer == curve.idxmax() == 2 and row.mean_over_layers == pytest.approx(curve.mean())
    prof = result.profile()
    mean_rows = prof[prof.lang_a == "mean"].set_index("metric")
    assert mean_rows.loc["cka_debiased", "first_align_then_predict"]
    assert mean_rows.loc["anc", "peak_layer"] == 2
    assert mean_rows.loc["anc", "rise"] > 0.2 and mean_rows.loc["anc", "drop"] > 0.1
    flat = similarity(make_acts(noise=(0.3, 0.6, 1.0, 2.0)), metrics="anc", null_permutations=0, bootstrap=0,
                      progress=False).profile()
    assert not flat.loc[flat.lang_a == "mean", "first_align_then_predict"].item()  # falls from the start
    assert "anc (symmetric):" in str(result) and "*" in str(result)
    assert result.summary().equals(result.layer_mean())  # the table form; str(result) is the text form
    assert "p@1 (both directions):" in str(result)


def test_direction_choice_of_the_summaries_matches_a_direct_computation(acts, result):
    """forward = a -> b as the pair is written (a queries), backward = b -> a, both = their mean;
    symmetric metrics ignore the choice and say so."""
    fwd = np.array([[retrieval_precision(x64(acts, layer, a), x64(acts, layer, b))[0] for a, b in result.pairs]
                    for layer in acts.layers])  # [layer, pair]
    bwd = np.array([[retrieval_precision(x64(acts, layer, a), x64(acts, layer, b))[1] for a, b in result.pairs]
                    for layer in acts.layers])
    assert np.abs(fwd.mean(1) - bwd.mean(1)).max() > 0.01  # the two directions differ on these data
    expected = {"forward": fwd.mean(1), "backward": bwd.mean(1), "both": (fwd.mean(1) + bwd.mean(1)) / 2}
    cka = result.layer_mean().query("metric == 'cka'")
    for direction, curve in expected.items():
        lm = result.layer_mean(direction)
        p1 = lm[lm.metric == "p@1"]
        np.testing.assert_allclose(p1["mean"].to_numpy(), curve, atol=1e-12)
        assert set(p1.direction) == {direction} and p1.n_pairs.tolist() == [12 if direction == "both" else 6] * 4
        other = lm[lm.metric == "cka"]
        assert set(other.direction) == {"symmetric"}
        np.testing.assert_array_equal(other["mean"].to_numpy(), cka["mean"].to_numpy())
        prof = result.profile(direction=direction)
        row = prof[(prof.metric == "p@1") & (prof.lang_a == "mean")].iloc[0]
        k = int(np.argmax(curve))
        assert row.direction == direction and row.peak_layer == acts.layers[k]
        assert row.peak_value == pytest.approx(curve[k]) and row.first == pytest.approx(curve[0])
        pair_rows = prof[(prof.metric == "p@1") & (prof.lang_a != "mean")]
        assert len(pair_rows) == 6 and set(pair_rows.direction) == {direction}
        per_pair = {"forward": fwd, "backward": bwd, "both": (fwd + bwd) / 2}[direction]
        for pi, (a, b) in enumerate(result.pairs):
            la, lb = (b, a) if direction == "backward" else (a, b)
            r = pair_rows[(pair_rows.lang_a == la) & (pair_rows.lang_b == lb)].iloc[0]
            assert r["last"] == pytest.approx(per_pair[-1, pi]) and r["first"] == pytest.approx(per_pair[0, pi])
        assert set(prof.loc[prof.metric == "cka", "direction"]) == {"symmetric"}
        text = result.format_summary(direction)
        name = {"both": "both directions", "forward": "forward, a->b", "backward": "backward, b->a"}[direction]
        assert f"p@1 ({name}): L0:{curve[0]:.3f}" in text and "cka (symmetric):" in text
    tidy = result.to_dataframe()
    assert set(tidy.loc[tidy.metric == "p@1", "direction"]) == {"forward", "backward"}
    a, b = result.pairs[0]
    assert tidy.query("metric == 'p@1' and lang_a == @a and lang_b == @b").direction.unique().tolist() == ["forward"]
    assert set(result.peak_layers().query("metric == 'anc'").direction) == {"symmetric"}
    with pytest.raises(MetricError, match="direction must be one of"):
        result.layer_mean("a->b")


# ------------------------------------------------------------------ layer x layer
def test_cross_layer_matrix_matches_pairwise_metrics(acts):
    for metric, fn in (("cka", linear_cka), ("cka_debiased", lambda x, y: linear_cka(x, y, debiased=True)),
                       ("anc", anc), ("anc_abs", lambda x, y: anc(x, y, absolute=True))):
        res = cross_layer_similarity(acts, "en", "de", metric=metric)
        assert res.matrix.shape == (4, 4)
        for i in range(4):
            for j in range(4):
                assert res.matrix[i, j] == pytest.approx(fn(x64(acts, i, "en"), x64(acts, j, "de")), abs=1e-12)
    same = cross_layer_similarity(acts, "en", "en", metric="cka")
    np.testing.assert_allclose(np.diag(same.matrix), 1.0, atol=1e-12)
    tidy = same.to_dataframe()
    assert len(tidy) == 16 and tidy.loc[(tidy.layer_a == 1) & (tidy.layer_b == 2), "value"].item() == same.matrix[1, 2]
    assert same.to_xarray().sel(layer_a=3, layer_b=0).item() == same.matrix[3, 0]
    assert list(same.best_match()) == [0, 1, 2, 3]
    with pytest.raises(MetricError, match="supports"):
        cross_layer_similarity(acts, "en", "de", metric="p@1")


# ------------------------------------------------------------------ bad input
def test_bad_inputs_have_clear_errors(acts):
    kw = dict(null_permutations=0, bootstrap=0, progress=False)
    with pytest.raises(MetricError, match="unknown metric 'cosine'"):
        similarity(acts, metrics=("cka", "cosine"), **kw)
    with pytest.raises(MetricError, match="language 'fr' .* is not in"):
        similarity(acts, pairs=[("en", "fr")], **kw)
    with pytest.raises(MetricError, match="language 'ja' .* is not in"):
        similarity(acts, pairs="pivot:ja", **kw)
    with pytest.raises(MetricError, match="N >= 4"):
        similarity(make_acts(n=3), metrics=("cka_debiased",), **kw)
    assert np.isfinite(similarity(make_acts(n=3), metrics=("cka",), **kw).value).sum() > 0
    broken = make_acts()
    data = broken.data.copy()
    data[2, 1, 5, 3] = np.nan
    with pytest.raises(MetricError, match="NaN or inf in the activations of language 'de' at layer 2"):
        similarity(broken.replace(data), **kw)
    with pytest.raises(MetricError, match="itself"):
        similarity(acts, pairs=[("en", "eng")], **kw)
    with pytest.raises(MetricError, match="cannot read pair 'every'"):
        similarity(acts, pairs="every", **kw)
    with pytest.raises(MetricError, match="layer 9 is not available"):
        similarity(acts, layers=[0, 9], **kw)
    with pytest.raises(MetricError, match="null_permutations must be"):
        similarity(acts, null_permutations=-1, bootstrap=0, progress=False)
    with pytest.raises(MetricError, match="ci must be"):
        similarity(acts, ci=95, **kw)
    with pytest.raises(MetricError, match="Activations"):
        similarity(acts.data, **kw)
    const = acts.data.copy()
    const[:, :, :, :] = 1.0
    with pytest.raises(MetricError, match="zero variance"):
        similarity(acts.replace(const), metrics=("anc",), **kw)


def test_different_sentence_counts_cannot_be_paired(acts):
    """Activations hold one sentence axis for all languages; mismatched sets are refused when built."""
    from xling_probe.errors import ExtractionError

    with pytest.raises(ExtractionError, match="does not match labels"):
        Activations(data=acts.data[:, :, :39], layers=acts.layers, languages=acts.languages, ids=acts.ids)


# ------------------------------------------------------------------ CLI
def test_cli_on_a_saved_activation_folder_writes_csv_and_json(acts, tmp_path, capsys):
    from xling_probe.cli.main import main

    folder = acts.save(tmp_path / "acts")
    out = tmp_path / "out"
    rc = main(["similarity", "--acts", str(folder), "--out", str(out), "--metrics", "cka,p@1,mexa",
               "--pairs", "en-de,en-zh", "--null-permutations", "5", "--bootstrap", "20", "--cross-layer", "en-de"])
    assert rc == 0
    assert {p.name for p in out.iterdir()} >= {"similarity.csv", "layer_mean.csv", "peaks.csv", "profile.csv",
                                              "similarity.json", "cross_layer_cka_en_de.csv"}
    table = pd.read_csv(out / "similarity.csv")
    api = similarity(Activations.load(folder), metrics=("cka", "p@1", "mexa"), pairs=[("en", "de"), ("en", "zh")],
                     null_permutations=5, bootstrap=20, progress=False).to_dataframe()
    np.testing.assert_allclose(table["value"].to_numpy(), api["value"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(table["ci_high"].to_numpy(), api["ci_high"].to_numpy(), atol=1e-12)
    def no_nan(token):
        raise AssertionError(f"similarity.json is not strict JSON: {token}")

    payload = json.loads((out / "similarity.json").read_text(), parse_constant=no_nan)
    assert payload["pairs"] == [["en", "de"], ["en", "zh"]] and payload["settings"]["null_permutations"] == 5
    assert len(payload["values"]) == len(table)
    assert len(payload["cross_layer"]["pairs"]["en-de"]["matrix"]) == 4
    assert "cka (symmetric):" in capsys.readouterr().out


def test_cli_bad_metric_is_a_clear_error(acts, tmp_path, capsys):
    from xling_probe.cli.main import main

    folder = acts.save(tmp_path / "acts")
    assert main(["similarity", "--acts", str(folder), "--out", str(tmp_path / "o"), "--metrics", "cka,bleu"]) == 2
    assert "unknown metric 'bleu'" in capsys.readouterr().err
    assert main(["similarity", "--acts", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2


def test_cli_runs_a_model_on_a_data_file(tiny_decoder_dir, tmp_path):
    from xling_probe.cli.main import main

    pairs = [("The house is red.", "Das Haus ist rot."), ("A dog sleeps.", "Ein Hund schläft."),
             ("We eat bread today.", "Wir essen heute Brot."), ("Where is the station?", "Wo ist der Bahnhof?"),
             ("Music makes me happy.", "Musik macht mich froh."), ("It rains in spring.", "Im Frühling regnet es."),
             ("My sister reads books.", "Meine Schwester liest Bücher."), ("Cold water, please.", "Kaltes Wasser, bitte.")]
    rows = ["id\ten\tde"] + [f"s{i}\t{en}\t{de}" for i, (en, de) in enumerate(pairs)]
    (tmp_path / "c.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["similarity", "--model", str(tiny_decoder_dir), "--device", "cpu", "--data", str(tmp_path / "c.tsv"),
                 "--out", str(out), "--null-permutations", "3", "--bootstrap", "5"]) == 0
    table = pd.read_csv(out / "similarity.csv")
    assert set(table.metric) == {"cka", "cka_debiased", "anc", "p@1", "mexa"}
    assert table["value"].notna().all() and table.layer.nunique() >= 2
