"""LanguageCentering and LinearProjection on synthetic data with a known construction."""

from __future__ import annotations

import numpy as np
import pytest

from xling_probe.extraction.activations import Activations
from xling_probe.centering.estimators import LanguageCentering, LinearProjection, fit_linear_map
from xling_probe.errors import ExtractionError, MetricError, NotFittedError

LANGS = ("en", "de", "zh", "ar")


def synthetic(n=40, d=12, langs=LANGS, n_layers=2, offset_scale=3.0, noise=0.0, seed=0):
    """Each language = a known shared signal + a known language offset (+ optional noise).

    Returns ``(acts, shared [layer, n, d], offsets [layer, language, d])``; sentence i of
    language g at layer l is ``shared[l, i] + offsets[l, g] (+ noise)``.
    """
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n_layers, n, d))
    offsets = offset_scale * rng.normal(size=(n_layers, len(langs), d))
    data = shared[:, None] + offsets[:, :, None]
    if noise:
        data = data + noise * rng.normal(size=data.shape)
    acts = Activations(data.astype(np.float32), layers=tuple(range(n_layers)), languages=langs,
                       ids=tuple(f"s{i:03d}" for i in range(n)), meta={"model": "synthetic"})
    return acts, shared, offsets


def random_rotation(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


# ====================================================================== centering
def test_centering_recovers_shared_signal_with_fit_split_means():
    acts, shared, offsets = synthetic()
    fit_ids, held_ids = acts.ids[:30], acts.ids[30:]
    centerer = LanguageCentering().fit(acts.sel(ids=fit_ids))
    # the fitted mean of language g = mean shared signal over the fit sentences + offset g
    expected_means = shared[:, :30].mean(axis=1)[:, None] + offsets
    np.testing.assert_allclose(centerer.means_, expected_means, atol=1e-5)
    centered = centerer.transform(acts.sel(ids=held_ids))
    # held-out sentence i of every language becomes shared_i - mean(shared over fit sentences)
    recovered = shared[:, 30:] - shared[:, :30].mean(axis=1, keepdims=True)
    for g in range(len(LANGS)):
        np.testing.assert_allclose(centered.data[:, g], recovered, atol=1e-5)
    assert centered.ids == tuple(held_ids) and centered.languages == LANGS and centered.layers == (0, 1)
    assert centered.meta["centering"]["means_from"] == "fit split"
    assert centered.meta["model"] == "synthetic"
    assert centerer.languages_ == LANGS and centerer.layers_ == (0, 1) and centerer.fit_ids_ == tuple(fit_ids)


def test_fit_transform_centers_on_itself():
    acts, shared, _ = synthetic(n=10)
    centered = LanguageCentering().fit_transform(acts)
    for g in range(len(LANGS)):
        np.testing.assert_allclose(centered.data[:, g], shared - shared.mean(axis=1, keepdims=True), atol=1e-5)
    # centered on itself, every language mean is zero
    np.testing.assert_allclose(centered.data.mean(axis=2), 0.0, atol=1e-5)
    assert centered.meta["centering"]["means_from"] == "itself"


def test_transform_subset_of_languages_and_layers_uses_their_own_means():
    acts, _, _ = synthetic()
    centerer = LanguageCentering().fit(acts)
    part = acts.sel(layers=[1], languages=["zh", "en"])
    out = centerer.transform(part)
    np.testing.assert_allclose(out.data[0, 0], acts.get(1, "zh") - acts.get(1, "zh").mean(0), atol=1e-5)
    np.testing.assert_allclose(out.data[0, 1], acts.get(1, "en") - acts.get(1, "en").mean(0), atol=1e-5)


def test_centering_errors():
    acts, _, _ = synthetic()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LanguageCentering().transform(acts)
    with pytest.raises(MetricError, match="at least 2 sentences"):
        LanguageCentering().fit(acts.sel(ids=acts.ids[:1]))
    centerer = LanguageCentering().fit(acts.sel(languages=["en", "de"]))
    with pytest.raises(NotFittedError, match=r"\['zh', 'ar'\] were not fitted"):
        centerer.transform(acts)
    with pytest.raises(NotFittedError, match=r"layers \[1\] were not fitted"):
        LanguageCentering().fit(acts.sel(layers=[0])).transform(acts)
    wide, _, _ = synthetic(d=5)
    with pytest.raises(MetricError, match="hidden size 5"):
        LanguageCentering().fit(acts).transform(wide)
    with pytest.raises(MetricError, match="must be an Activations"):
        LanguageCentering().fit(np.zeros((1, 2, 3, 4)))
    bad = acts.data.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(MetricError, match="NaN"):
        LanguageCentering().fit(acts.replace(bad))


# ====================================================================== projections
def test_procrustes_recovers_a_known_rotation_exactly():
    acts, _, _ = synthetic(n=60, d=8, langs=("en", "zh"), n_layers=1)
    x = acts.get(0, "zh").astype(np.float64)
    rotation, shift = random_rotation(8, seed=1), np.arange(8.0)
    data = acts.data.copy()
    data[0, 0] = x @ rotation + shift  # en is an exact rotation (+ translation) of zh
    acts = acts.replace(data)
    proj = LinearProjection("en", "zh", method="procrustes").fit(acts.sel(ids=acts.ids[:40]))
    np.testing.assert_allclose(proj.coef_[0, 0], rotation, atol=1e-5)
    np.testing.assert_allclose(proj.intercept_[0, 0], shift, atol=1e-4)
    held = acts.sel(ids=acts.ids[40:])
    mapped = proj.transform(held)
    np.testing.assert_allclose(mapped.get(0, "zh"), held.get(0, "en"), atol=1e-4)
    np.testing.assert_array_equal(mapped.get(0, "en"), held.get(0, "en"))  # the target is left alone
    scores = proj.evaluate(held)
    assert scores.r2[0, 0] == pytest.approx(1.0, abs=1e-8)
    assert scores.p_at_1[0, 0, :, 1].tolist() == [1.0, 1.0]


def test_procrustes_map_is_orthogonal_on_noisy_data():
    acts, _, _ = synthetic(n=50, d=6, langs=("en", "zh"), n_layers=1, noise=1.0)
    coef, _ = fit_linear_map(acts.get(0, "zh"), acts.get(0, "en"), "procrustes")
    np.testing.assert_allclose(coef.T @ coef, np.eye(6), atol=1e-10)


def test_least_squares_recovers_a_known_affine_map():
    rng = np.random.default_rng(3)
    d, n = 6, 40
    a, b = rng.normal(size=(d, d)), rng.normal(size=d)
    x = rng.normal(size=(2, n, d))
    data = np.stack([x @ a + b, x], axis=1).astype(np.float32)  # en = zh A + b at both layers
    acts = Activations(data, layers=(3, 7), languages=("en", "zh"), ids=[str(i) for i in range(n)])
    proj = LinearProjection("en", method="lstsq").fit(acts.sel(ids=acts.ids[:25]))
    assert proj.sources_ == ("zh",) and proj.target_ == "en" and proj.layers_ == (3, 7)
    for li in range(2):
        np.testing.assert_allclose(proj.coef_[li, 0], a, atol=1e-4)
        np.testing.assert_allclose(proj.intercept_[li, 0], b, atol=1e-4)
    scores = proj.evaluate(acts.sel(ids=acts.ids[25:]))
    np.testing.assert_allclose(scores.r2, 1.0, atol=1e-8)
    df = scores.to_dataframe()
    assert len(df) == 2 * 1 * (2 * 2 + 1)
    r2_rows = df[df.metric == "r2"]
    assert r2_rows.value.tolist() == pytest.approx([1.0, 1.0], abs=1e-8)


def test_ridge_matches_the_penalised_least_squares_objective():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    coef, intercept = fit_linear_map(x, y, "lstsq", alpha=2.5)
    ref = Ridge(alpha=2.5, fit_intercept=True).fit(x, y)
    np.testing.assert_allclose(coef, ref.coef_.T, atol=1e-10)
    np.testing.assert_allclose(intercept, ref.intercept_, atol=1e-10)


def test_projection_pairs_separate_activations_by_sentence_id():
    acts, _, _ = synthetic(n=30, d=5, langs=("en", "zh"), n_layers=1, noise=0.5)
    source = acts.sel(languages=["zh"])
    # the target comes from another extraction: other order, a few sentences missing
    order = list(acts.ids[::-1])[:-4]
    target = acts.sel(languages=["en"], ids=order)
    split = acts.sel(ids=acts.ids[4:])  # the ids both sides share
    a = LinearProjection("en", "zh").fit(source, target)
    b = LinearProjection("en", "zh").fit(split)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-5)
    assert set(a.fit_ids_) == set(acts.ids[4:])


def test_projection_errors():
    acts, _, _ = synthetic(n=20, d=4)
    with pytest.raises(MetricError, match="unknown projection method"):
        LinearProjection("en", method="cca")
    with pytest.raises(MetricError, match="alpha"):
        LinearProjection("en", alpha=-1)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LinearProjection("en").transform(acts)
    with pytest.raises(ExtractionError, match="not in these activations"):
        LinearProjection("fr").fit(acts)
    with pytest.raises(MetricError, match="cannot also be a source"):
        LinearProjection("en", ["en", "zh"]).fit(acts)
    # languages extracted from two corpora without shared sentence ids cannot be paired
    other = Activations(acts.data[:, :1], layers=acts.layers, languages=("en",),
                        ids=[f"other{i}" for i in range(20)])
    with pytest.raises(MetricError, match="share 0 sentence id"):
        LinearProjection("en", "zh").fit(acts.sel(languages=["zh"]), other)
    proj = LinearProjection("en", "zh").fit(acts.sel(ids=acts.ids[:12]))
    with pytest.raises(MetricError, match="used to fit the projection"):
        proj.evaluate(acts)
    assert proj.evaluate(acts, allow_fit_ids=True).ids == acts.ids
    with pytest.raises(MetricError, match="none of the fitted source languages"):
        proj.evaluate(acts.sel(languages=["en", "de"], ids=acts.ids[12:]))
    with pytest.raises(NotFittedError, match="layers"):
        LinearProjection("en", "zh").fit(acts.sel(layers=[0])).transform(acts)
