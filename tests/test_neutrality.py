"""neutrality(): per-layer language neutrality on held-out data, on synthetic constructions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from test_centering import LANGS, random_rotation, synthetic
from xling_probe.extraction.activations import Activations
from xling_probe.errors import MetricError
from xling_probe.centering.evaluate import language_id_accuracy, language_variance_share, neutrality, resolve_split


def reference_p_at_1(x, y):
    """P@1 by the definition: cosine S = norm(X) norm(Y)^T, fraction of i with argmax_j S[i, j] == i."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    s = xn @ yn.T
    own = np.arange(len(x))
    return float((s.argmax(1) == own).mean()), float((s.argmax(0) == own).mean())


def construction_share(shared, offsets):
    """Between / total from the construction: B = mean_g ||o_g - o||^2, W = mean_i ||s_i - s||^2."""
    b = ((offsets - offsets.mean(axis=-2, keepdims=True)) ** 2).sum(-1).mean(-1)
    w = ((shared - shared.mean(axis=-2, keepdims=True)) ** 2).sum(-1).mean(-1)
    return b / (b + w)


def test_variance_share_equals_the_construction():
    acts, shared, offsets = synthetic(n=30, d=10)
    np.testing.assert_allclose(language_variance_share(acts.data), construction_share(shared, offsets), rtol=1e-5)
    # no language offset -> no between-language variance; no shared signal -> all of it
    assert language_variance_share(np.repeat(shared[:, None], 3, axis=1)).tolist() == pytest.approx([0, 0], abs=1e-12)
    only_offsets = np.repeat(offsets[:, :, None], 5, axis=2)
    assert language_variance_share(only_offsets).tolist() == pytest.approx([1, 1])


def test_report_on_shared_signal_plus_offsets():
    acts, shared, offsets = synthetic(n=60, d=12, n_layers=3)
    report = neutrality(acts, split=20, seed=1, probe="logistic", progress=False)
    held = [acts.ids.index(s) for s in report.heldout_ids]
    assert report.conditions == ("raw", "centered")
    # raw: the language offsets are there and the probe reads them perfectly
    np.testing.assert_allclose(report.variance_share[0], construction_share(shared[:, held], offsets), rtol=1e-5)
    np.testing.assert_array_equal(report.language_id[0], 1.0)
    # centered with fit-split means: held-out sentences become identical across languages, so no
    # language variance is left, the probe is at chance exactly, and retrieval is perfect
    np.testing.assert_allclose(report.variance_share[1], 0.0, atol=1e-10)
    np.testing.assert_array_equal(report.language_id[1], 1 / len(LANGS))
    assert report.chance == 1 / len(LANGS)
    np.testing.assert_array_equal(report.retrieval[1], 1.0)
    # raw retrieval per pair and direction follows the definition
    h = acts.sel(ids=report.heldout_ids)
    for pi, (a, b) in enumerate(report.pairs):
        for li, layer in enumerate(report.layers):
            expected = reference_p_at_1(h.get(layer, a), h.get(layer, b))
            assert tuple(report.retrieval[0, li, pi]) == pytest.approx(expected)
    assert len(report.pairs) == 6
    summary = report.summary()
    np.testing.assert_allclose(summary.centering_gain, 1.0 - report.retrieval[0].mean(axis=(1, 2)))
    assert summary.language_id_raw.tolist() == [1.0] * 3


def test_heldout_split_never_sees_fit_sentences():
    """Held-out sentences carry extra language offsets; only leakage would let the fit side see them."""
    acts, shared, offsets = synthetic(n=40, d=8, n_layers=1, offset_scale=0.0)
    fit_ids, held_ids = list(acts.ids[:20]), list(acts.ids[20:])
    extra = 4.0 * np.random.default_rng(7).normal(size=(1, len(LANGS), 8))
    data = acts.data.copy()
    data[:, :, 20:] += extra[:, :, None].astype(np.float32)  # language signal in held-out rows only
    acts = acts.replace(data)
    report = neutrality(acts, split=(fit_ids, held_ids), progress=False)
    assert set(report.fit_ids).isdisjoint(report.heldout_ids)
    assert set(report.fit_ids) | set(report.heldout_ids) == set(acts.ids)
    expected = construction_share(shared[:, 20:], extra)
    # fit-split means hold no language offset, so centering must leave the held-out offsets intact
    np.testing.assert_allclose(report.variance_share[1], expected, rtol=1e-5)
    np.testing.assert_allclose(report.variance_share[0], expected, rtol=1e-5)
    # a probe trained on the fit split (no language signal there) cannot identify held-out languages
    assert report.language_id[0, 0] <= 0.5
    # the paper's setting centers the held-out split on itself and removes the offsets
    self_report = neutrality(acts, split=(fit_ids, held_ids), centering="self", progress=False)
    np.testing.assert_allclose(self_report.variance_share[1], 0.0, atol=1e-10)
    # changing fit rows never changes raw held-out numbers
    scrambled = acts.data.copy()
    scrambled[:, :, :20] = np.random.default_rng(0).normal(size=scrambled[:, :, :20].shape)
    other = neutrality(acts.replace(scrambled), split=(fit_ids, held_ids), progress=False)
    np.testing.assert_array_equal(other.retrieval[0], report.retrieval[0])
    np.testing.assert_array_equal(other.variance_share[0], report.variance_share[0])


def test_projection_recovers_rotated_languages():
    """Languages = rotations of a shared signal: centering cannot undo a rotation, a projection can."""
    rng = np.random.default_rng(5)
    n, d = 80, 8
    shared = rng.normal(size=(n, d))
    langs = ("en", "de", "zh")
    data = np.stack([shared @ random_rotation(d, seed=10 + g) + 2.0 * rng.normal(size=d) for g in range(3)])
    acts = Activations(data[None].astype(np.float32), layers=(5,), languages=langs, ids=[str(i) for i in range(n)])
    for method in ("procrustes", "lstsq"):
        report = neutrality(acts, split=30, projection=method, pivot="de", progress=False)
        assert report.conditions == ("raw", "centered", "projected")
        assert report.settings["pivot"] == "de"
        np.testing.assert_allclose(report.retrieval[2], 1.0)
        np.testing.assert_allclose(report.variance_share[2], 0.0, atol=1e-8)
        assert report.retrieval_mean[1, 0] < 0.9  # centering alone does not align rotated spaces
        assert report.summary().projection_gain.iloc[0] == pytest.approx(1.0 - report.retrieval_mean[0, 0])


def test_pivot_pairs_and_tidy_table():
    acts, _, _ = synthetic(n=30, d=6, noise=0.5)
    report = neutrality(acts, split=10, pairs="pivot", pivot="zh", progress=False)
    assert report.pairs == (("zh", "en"), ("zh", "de"), ("zh", "ar"))
    listed = neutrality(acts, split=10, pairs=[("zho", "eng"), ("ar", "de")], progress=False)
    assert listed.pairs == (("zh", "en"), ("ar", "de"))
    df = report.to_dataframe()
    assert len(df) == 2 * 2 * (3 * 2 + 3 + 2)
    row = df[(df.condition == "raw") & (df.layer == 1) & (df.lang_a == "zh") & (df.lang_b == "ar")
             & (df.direction == "backward")]
    assert row.value.item() == report.retrieval[0, 1, 2, 1]
    means = df[(df.metric == "p@1_mean") & (df.direction == "both")].value.to_numpy().reshape(2, 2)
    np.testing.assert_allclose(means, report.retrieval.mean(axis=(2, 3)))
    ds = report.to_xarray()
    assert float(ds.language_id.sel(condition="centered", layer=0)) == report.language_id[1, 0]
    assert report.value("variance_share", "raw", 1) == report.variance_share[0, 1]
    json.dumps(report.to_dict())


def test_split_is_seeded_and_disjoint():
    ids = [f"s{i}" for i in range(50)]
    a = resolve_split(ids, 0.2, seed=3)
    assert a == resolve_split(ids, 0.2, seed=3) and a != resolve_split(ids, 0.2, seed=4)
    assert len(a[1]) == 10 and set(a[0]).isdisjoint(a[1]) and set(a[0]) | set(a[1]) == set(ids)
    assert len(resolve_split(ids, 7)[1]) == 7


def test_language_probe_reads_a_linear_language_signal():
    rng = np.random.default_rng(2)
    offsets = rng.normal(size=(3, 1, 20))
    train = rng.normal(size=(3, 40, 20)) + 3 * offsets
    test = rng.normal(size=(3, 40, 20)) + 3 * offsets
    assert language_id_accuracy(train, test) == 1.0
    # no language signal at all: accuracy of an independent-noise test set is near chance (1/3)
    noise_acc = language_id_accuracy(rng.normal(size=(3, 200, 20)), rng.normal(size=(3, 200, 20)))
    assert abs(noise_acc - 1 / 3) < 0.1


def test_linear_probe_is_at_chance_once_language_means_coincide_knn_is_not():
    """Equal class means make zero weights the logistic optimum; a k-NN probe still sees a scale difference."""
    rng = np.random.default_rng(8)
    scales = np.array([0.2, 1.0, 5.0])[:, None, None]  # languages differ only in spread, not in mean
    directions = rng.normal(size=(3, 1, 30))
    train = scales * (rng.normal(size=(3, 150, 30)) + 4 * directions * rng.choice([-1, 1], size=(3, 150, 1)))
    test = scales * (rng.normal(size=(3, 60, 30)) + 4 * directions * rng.choice([-1, 1], size=(3, 60, 1)))
    acts = Activations(np.concatenate([train, test], axis=1)[None].astype(np.float32), layers=(0,),
                       languages=("en", "de", "zh"), ids=[str(i) for i in range(210)])
    split = (acts.ids[:150], acts.ids[150:])
    linear = neutrality(acts, split=split, probe="logistic", progress=False)
    assert linear.language_id[1, 0] == pytest.approx(1 / 3, abs=0.02)
    knn = neutrality(acts, split=split, progress=False)  # the default probe
    assert knn.language_id[1, 0] > 0.9
    assert knn.settings["probe"]["k"] == 5 and knn.settings["probe"]["name"] == "knn" and knn.probe == "knn"


def test_knn_probe_by_definition():
    train = np.array([[[1.0, 0.0], [0.9, 0.1], [0.8, 0.3]], [[0.0, 1.0], [0.1, 0.9], [0.3, 0.8]]])
    test = np.array([[[1.0, 0.05]], [[1.0, 0.2]]])  # both closest to language 0
    assert language_id_accuracy(train, test, probe="knn", k=1) == 0.5
    # random data against a reference written from the definition (majority of the k most cosine-similar)
    rng = np.random.default_rng(9)
    train, test = rng.normal(size=(3, 20, 4)) + [[[1, 0, 0, 0]]], rng.normal(size=(3, 15, 4))
    xtr, xte = train.reshape(-1, 4), test.reshape(-1, 4)
    sims = (xte / np.linalg.norm(xte, axis=1, keepdims=True)) @ (xtr / np.linalg.norm(xtr, axis=1, keepdims=True)).T
    for k in (1, 3, 7):
        nearest = np.argsort(-sims, axis=1)[:, :k] // 20
        predicted = [np.bincount(row, minlength=3).argmax() for row in nearest]
        expected = float(np.mean(np.array(predicted) == np.repeat(np.arange(3), 15)))
        assert language_id_accuracy(train, test, probe="knn", k=k) == expected
    with pytest.raises(MetricError, match="k of the k-NN probe"):
        language_id_accuracy(train, test, probe="knn", k=61)
    with pytest.raises(MetricError, match="probe must be"):
        language_id_accuracy(train, test, probe="svm")


def test_neutrality_errors():
    acts, _, _ = synthetic(n=20, d=4)
    with pytest.raises(MetricError, match="overlap in 2 sentence"):
        neutrality(acts, split=(acts.ids[:12], acts.ids[10:]), progress=False)
    with pytest.raises(MetricError, match="not in the activations"):
        neutrality(acts, split=(acts.ids[:10], ["nope", "s019"]), progress=False)
    with pytest.raises(MetricError, match="more than once"):
        neutrality(acts, split=(acts.ids[:10], ["s015", "s015"]), progress=False)
    with pytest.raises(MetricError, match="held-out split has 1 sentence"):
        neutrality(acts, split=(acts.ids[:10], acts.ids[10:11]), progress=False)
    with pytest.raises(MetricError, match="held-out size"):
        neutrality(acts, split=20, progress=False)
    with pytest.raises(MetricError, match="split must be"):
        neutrality(acts, split="half", progress=False)
    with pytest.raises(MetricError, match="at least 2 languages"):
        neutrality(acts, languages=["en"], progress=False)
    with pytest.raises(MetricError, match="centering must be"):
        neutrality(acts, centering="global", progress=False)
    with pytest.raises(MetricError, match="projection must be"):
        neutrality(acts, projection="cca", progress=False)
    with pytest.raises(MetricError, match="itself"):
        neutrality(acts, pairs=[("en", "eng")], progress=False)
    with pytest.raises(MetricError, match="cannot read pair 'some'"):
        neutrality(acts, pairs="some", progress=False)
    with pytest.raises(MetricError, match="identical"):
        language_variance_share(np.ones((2, 3, 4)))


def test_cli_writes_tables_matching_the_library(tmp_path, capsys):
    from xling_probe.cli.main import main

    acts, _, _ = synthetic(n=30, d=6, noise=0.5)
    acts.save(tmp_path / "acts")
    out = tmp_path / "out"
    rc = main(["neutrality", "--acts", str(tmp_path / "acts"), "--out", str(out), "--heldout", "10",
               "--projection", "procrustes", "--seed", "2"])
    assert rc == 0
    report = neutrality(Activations.load(tmp_path / "acts"), 10, seed=2, projection="procrustes", progress=False)
    tidy = pd.read_csv(out / "neutrality.csv")
    np.testing.assert_allclose(tidy.value.to_numpy(), report.to_dataframe().value.to_numpy())
    summary = pd.read_csv(out / "summary.csv")
    np.testing.assert_allclose(summary.centering_gain, report.summary().centering_gain)
    payload = json.loads((out / "neutrality.json").read_text())
    assert payload["heldout_ids"] == list(report.heldout_ids) and payload["settings"]["projection"] == "procrustes"
    assert "centering_gain" in capsys.readouterr().out
    assert main(["neutrality", "--acts", str(tmp_path / "acts"), "--out", str(tmp_path / "o2"),
                 "--heldout", "40"]) == 2
    # --pairs pivot --pivot X and --pairs pivot:X are the same pairs (one grammar, xling_probe.labels)
    langs = Activations.load(tmp_path / "acts").languages
    for i, extra in enumerate((["--pairs", "pivot", "--pivot", langs[1]], ["--pairs", f"pivot:{langs[1]}"])):
        assert main(["neutrality", "--acts", str(tmp_path / "acts"), "--out", str(tmp_path / f"p{i}"),
                     "--heldout", "10", *extra]) == 0
        pairs = json.loads((tmp_path / f"p{i}" / "neutrality.json").read_text())["pairs"]
        assert pairs == [[langs[1], b] for b in langs if b != langs[1]]


def test_cli_runs_a_model_on_a_corpus(tmp_path, tiny_decoder_dir):
    from xling_probe.cli.main import main

    out = tmp_path / "out"
    rc = main(["neutrality", "--model", str(tiny_decoder_dir), "--device", "cpu", "--langs", "en,de,zh",
               "--limit", "24", "--heldout", "8", "--layers", "0,2", "--probe", "knn", "--out", str(out)])
    assert rc == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary.layer.tolist() == [0, 2]
    payload = json.loads((out / "neutrality.json").read_text())
    assert len(payload["heldout_ids"]) == 8 and len(payload["fit_ids"]) == 16
    assert payload["languages"] == ["en", "de", "zh"] and payload["settings"]["probe"]["k"] == 5
    # the tidy table and the summary agree on the centered mean P@1
    tidy = pd.read_csv(out / "neutrality.csv")
    centered = tidy[(tidy.condition == "centered") & (tidy.metric == "p@1_mean")
                    & (tidy.direction == "both")].value.to_numpy()
    np.testing.assert_allclose(centered, summary.p_at_1_centered.to_numpy())
    assert main(["neutrality", "--acts", str(tmp_path), "--model", "x", "--out", str(tmp_path / "o3")]) == 2


# ------------------------------------------------------------------ values fixed by construction
@pytest.mark.parametrize("n_lang,n,d", [(2, 30, 8), (3, 24, 40), (5, 16, 64)])
def test_linear_probe_after_centering_or_projection_is_chance_by_construction(n_lang, n, d):
    """Random data with language offsets: after fit-centering (and after the affine projection,
    fitted on the same split) every class mean coincides on the fit split, so the logistic probe's
    held-out accuracy is exactly 1 / n_lang, seed after seed, and the report says so; k-NN is not flagged."""
    langs = ("en", "de", "zh", "ar", "ru")[:n_lang]
    for seed in range(4):
        rng = np.random.default_rng(seed)
        data = rng.normal(size=(1, n_lang, n, d)) + 3 * rng.normal(size=(1, n_lang, 1, d))
        acts = Activations(data.astype(np.float32), layers=(0,), languages=langs, ids=[f"s{i}" for i in range(n)])
        for projection in ("lstsq", "procrustes"):
            report = neutrality(acts, split=0.5, seed=seed, probe="logistic", projection=projection, progress=False)
            assert report.language_id[0, 0] > 0.9  # raw: the offsets are plain to see
            assert report.language_id[1, 0] == 1 / n_lang  # centered: exactly chance
            assert report.language_id[2, 0] == 1 / n_lang  # projected: exactly chance
            assert set(report.by_construction) == {("language_id", "centered"), ("language_id", "projected")}
            for cond in ("centered", "projected"):
                fixed = report.fixed("language_id", cond)
                assert fixed.label == "chance by construction" and fixed.value == 1 / n_lang
                assert "same mean" in fixed.why or "equal class means" in fixed.why
            assert report.fixed("language_id", "raw") is None and report.fixed("variance_share", "centered") is None
    knn = neutrality(acts, split=0.5, projection="lstsq", progress=False)
    assert knn.probe == "knn" and knn.by_construction == {}


def test_variance_share_is_zero_by_construction_only_for_self_centering():
    acts, _, _ = synthetic(n=40, d=8, noise=0.7)
    own = neutrality(acts, split=0.5, centering="self", progress=False)
    np.testing.assert_allclose(own.variance_share[1], 0.0, atol=1e-10)
    assert own.fixed("variance_share", "centered").label == "0 by construction"
    assert own.fixed("language_id", "centered") is None  # the k-NN probe measures
    # fit-split means applied to the held-out split leave some language variance: a measurement
    fit = neutrality(acts, split=0.5, centering="fit", progress=False)
    assert np.all(fit.variance_share[1] > 1e-4) and fit.fixed("variance_share", "centered") is None
    with pytest.raises(MetricError, match="unknown quantity"):
        fit.fixed("language", "centered")


def test_every_table_labels_the_values_fixed_by_construction():
    acts, _, _ = synthetic(n=30, d=6, noise=0.5)
    report = neutrality(acts, split=10, probe="logistic", centering="self", progress=False)
    summary = report.summary()
    assert set(summary.fixed_by_construction) == {"language_id_centered; variance_share_centered"}
    assert set(summary.probe) == {"logistic"}
    tidy = report.to_dataframe()
    flagged = tidy[tidy.fixed_by_construction]
    assert set(zip(flagged.condition, flagged.metric)) == {("centered", "language_id_accuracy"),
                                                           ("centered", "language_variance_share")}
    assert flagged.why.str.contains("docs/science.md").all() and tidy[~tidy.fixed_by_construction].why.isna().all()
    text = str(report)
    assert "language_id_centered: chance by construction (0.250)" in text
    assert "variance_share_centered: 0 by construction" in text
    assert text.count("†") == 2 * 2 + 2  # two flagged columns x two layers, plus two footnotes
    payload = report.to_dict()
    json.dumps(payload)
    assert {(f["column"], f["label"]) for f in payload["by_construction"]} == {
        ("language_id_centered", "chance by construction"), ("variance_share_centered", "0 by construction")}
    assert report.to_xarray().attrs["fixed_language_id_centered"] == "chance by construction"
    # a k-NN report with fit-centering has nothing fixed: no column, no mark
    plain = neutrality(acts, split=10, progress=False)
    assert set(plain.summary().fixed_by_construction) == {""} and "†" not in str(plain)


def test_figure_greys_out_values_fixed_by_construction():
    from xling_probe.plots import neutrality_curves

    acts, _, _ = synthetic(n=30, d=6, noise=0.5)
    report = neutrality(acts, split=10, probe="logistic", progress=False)
    fig = neutrality_curves(report)
    (fixed,) = [t for t in fig.data if t.name == "centered: chance by construction"]
    assert fixed.xaxis == "x2" and fixed.line.dash == "dot" and fixed.line.color == "#9a9a9a"
    np.testing.assert_allclose(fixed.y, report.language_id[1])
    assert not [t for t in fig.data if t.name == "centered" and t.xaxis == "x2"]  # not drawn as a finding
    notes = [a.text for a in fig.layout.annotations]
    assert "centered: chance by construction" in notes and "chance 1/4" in notes
    assert fig.layout.yaxis2.title.text and fig.layout.yaxis.title.text and fig.layout.yaxis3.title.text
    # the figure title sits in the top margin, above the subplot titles (no collision)
    assert fig.layout.title.yref == "container" and fig.layout.title.yanchor == "top" and fig.layout.margin.t >= 100
    knn = neutrality_curves(neutrality(acts, split=10, progress=False))
    assert [t for t in knn.data if t.name == "centered" and t.xaxis == "x2"]
    assert not [t for t in knn.data if "by construction" in (t.name or "")]


# ------------------------------------------------------------------ retrieval direction
def test_retrieval_summaries_by_direction_match_the_definition():
    rng = np.random.default_rng(4)
    n, d = 24, 5
    meaning = rng.normal(size=(n, d))
    # de is a noisy copy of en, zh a noisier one with a few hub rows: a -> b and b -> a differ
    data = np.stack([meaning, meaning + 0.8 * rng.normal(size=(n, d)), meaning + 1.5 * rng.normal(size=(n, d))])
    data[2, :3] *= 6.0
    acts = Activations(data[None].astype(np.float32), layers=(0,), languages=("en", "de", "zh"),
                       ids=[f"s{i}" for i in range(n)])
    report = neutrality(acts, split=12, progress=False)
    held = acts.sel(ids=report.heldout_ids)
    fwd, bwd = zip(*(reference_p_at_1(held.get(0, a), held.get(0, b)) for a, b in report.pairs))
    assert np.mean(fwd) != np.mean(bwd)
    expected = {"forward": np.mean(fwd), "backward": np.mean(bwd), "both": np.mean(fwd + bwd)}
    tidy = report.to_dataframe()
    for direction, value in expected.items():
        summary = report.summary(direction=direction)
        assert summary.direction.tolist() == [direction] and summary.p_at_1_raw.item() == pytest.approx(value)
        assert report.value("retrieval", "raw", 0, direction=direction) == pytest.approx(value)
        row = tidy[(tidy.condition == "raw") & (tidy.metric == "p@1_mean") & (tidy.direction == direction)]
        assert row.value.item() == pytest.approx(value)
    assert report.summary().p_at_1_raw.item() == pytest.approx(expected["both"])
    assert set(tidy[tidy.metric == "language_id_accuracy"].direction) == {"symmetric"}
    with pytest.raises(MetricError, match="direction must be one of"):
        report.summary(direction="a->b")


def test_report_caption_describes_the_default_figure():
    """The caption names what is plotted (k-NN probe, both directions) and which values are fixed by
    construction; it claims no drop for a value that cannot do anything else."""
    from xling_probe.report.html import TEXTS

    text = TEXTS["neutrality"]
    assert "should drop" not in text and "by construction" in text and "k-NN" in text
    assert "both directions" in text and "linear probe after centering is at chance" in text
    acts, _, _ = synthetic(n=30, d=6, noise=0.5)
    default = neutrality(acts, 0.5, progress=False)  # what the report runs
    assert default.probe == "knn" and default.settings["centering"] == "fit" and default.by_construction == {}
