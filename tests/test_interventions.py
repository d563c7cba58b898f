"""Steering, INCLINE and patching on tiny models: the definitions, the held-out discipline, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xling_probe as xp
from xling_probe.errors import InterventionError
from xling_probe.interventions.mechanism import MapToward, intervene
from xling_probe.interventions.run import encode, logits, next_token_logprobs


@pytest.fixture(scope="module")
def setup(tiny_decoder):
    corpus = xp.ParallelCorpus.sample().select_languages(["en", "fr", "de", "zh"])
    acts = xp.extract(tiny_decoder, corpus, progress=False, cache=False)
    return tiny_decoder, corpus, acts


def test_steering_vectors_are_differences_of_fit_split_means(setup):
    _, corpus, acts = setup
    fit = list(corpus.ids[:50])
    v = xp.steering_vectors(acts, "fr", "zh", ids=fit)
    sub = acts.sel(ids=fit)
    want = sub.data[:, sub.language_index("zh")].mean(1, dtype=np.float64) - \
        sub.data[:, sub.language_index("fr")].mean(1, dtype=np.float64)
    np.testing.assert_allclose(v.vectors, want, rtol=1e-6, atol=1e-6)
    assert v.fit_ids == tuple(fit) and v.source == "fr" and v.target == "zh"
    r = v.random_control(seed=3)
    np.testing.assert_allclose(np.linalg.norm(r.vectors, axis=1), v.norms(), rtol=1e-5)
    assert abs(float(np.sum(r.vectors[2] * v.vectors[2]))) < 0.9 * v.norms()[2] ** 2
    with pytest.raises(InterventionError, match="both 'fr'"):
        xp.steering_vectors(acts, "fr", "fr")


def test_steer_sweeps_and_reports_a_zero_cost_baseline_and_held_out_items(setup):
    model, corpus, acts = setup
    v = xp.steering_vectors(acts, "fr", "zh", ids=corpus.ids[:60])
    res = xp.steer(model, v, corpus=corpus, layers=[1, 3], alphas=[2.0], n_items=5, max_new_tokens=4,
                   progress=False)
    assert set(res.settings["eval_ids"]).isdisjoint(v.fit_ids) and len(res.settings["eval_ids"]) == 5
    cost = res.sel("translation_cost", alpha=0.0)
    assert np.allclose(cost["mean"], 0.0)  # the baseline by construction
    base = res.sel("translation_logprob", alpha=0.0, layer=1, kind="vector")["mean"].iloc[0]
    steered = res.sel("translation_logprob", alpha=2.0, layer=3, kind="vector")["mean"].iloc[0]
    moved = res.sel("translation_cost", alpha=2.0, layer=3, kind="vector")["mean"].iloc[0]
    assert moved == pytest.approx(steered - base, abs=1e-9)
    assert set(res.table["kind"]) == {"vector", "random"}
    with pytest.raises(InterventionError, match="were used to fit"):
        xp.steer(model, v, corpus=corpus, eval_ids=list(corpus.ids[:3]), layers=[1], progress=False)


def test_incline_maps_see_only_training_ids(setup):
    model, corpus, acts = setup
    train, held = list(corpus.ids[:60]), list(corpus.ids[60:])
    maps = xp.fit_incline(acts, "fr", "en", ids=train, alpha=1.0)
    assert maps.fit_ids == tuple(train)
    # changing the held-out activations changes nothing in the maps
    data = np.array(acts.data, copy=True)
    data[:, :, 60:] = np.random.default_rng(0).standard_normal(data[:, :, 60:].shape)
    other = xp.fit_incline(acts.replace(data), "fr", "en", ids=train, alpha=1.0)
    np.testing.assert_array_equal(maps.coef, other.coef)
    proj = xp.LinearProjection("en", ["fr"], alpha=1.0).fit(acts.sel(ids=train))
    np.testing.assert_array_equal(maps.coef, proj.coef_[:, 0])
    with pytest.raises(InterventionError, match="were used to fit"):
        xp.incline(model, maps, corpus, eval_ids=train[:4], layers=[1], progress=False)
    res = xp.incline(model, maps, corpus, layers=[2], sigmas=[0.5], n_items=4, eval_ids=held[:4], progress=False)
    assert np.allclose(res.sel("reference_gain", sigma=0.0)["mean"], 0.0)
    assert res.settings["eval_ids"] == held[:4]


def test_map_toward_is_its_formula_at_the_prompt_positions(setup):
    model, _, _ = setup
    d = model.d_model
    rng = np.random.default_rng(5)
    w, b = rng.standard_normal((d, d)) * 0.1, rng.standard_normal(d)
    ids = torch.as_tensor([encode(model, ["Le chat dort sur le canapé."])[0]])
    states = xp.interventions.patching.source_states(model, "Le chat dort sur le canapé.", [2])[2]
    mapped = states + 0.3 * ((states @ torch.as_tensor(w, dtype=torch.float32) + torch.as_tensor(b, dtype=torch.float32))
                             - states)
    T = ids.shape[1]
    from xling_probe.interventions.mechanism import SetState

    with intervene(model, [SetState(2, positions=list(range(T)), values=mapped, prompt_length=T)]):
        want = logits(model, ids, torch.ones_like(ids))
    with intervene(model, [MapToward(2, coef=w, intercept=b, sigma=0.3)]):
        got = logits(model, ids, torch.ones_like(ids))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_patching_a_prompt_into_itself_changes_nothing_and_lengths_must_align(setup):
    model, _, _ = setup
    a = 'Français: "chat" - Deutsch: "'
    b = 'English: "the dog" - 中文: "'
    plain = next_token_logprobs(model, [a])[0]
    grid = xp.patch_states(model, a, a, layers=[0, 1, 3], positions=[-1, -2, 0])
    for key, logp in grid.items():
        assert torch.equal(logp, plain), key
    other = xp.patch_states(model, b, a, layers=[2], positions=[-1])
    assert not torch.equal(other[(2, -1)], plain)
    na, nb = len(encode(model, [a])[0]), len(encode(model, [b])[0])
    if na != nb:
        with pytest.raises(InterventionError, match="count positions from the end"):
            xp.patch_states(model, b, a, layers=[1], positions=[0])
    with pytest.raises(InterventionError, match="out of range"):
        xp.patch_states(model, b, a, layers=[7], positions=[-1])
    with pytest.raises(InterventionError, match="outside a prompt"):
        xp.patch_states(model, b, a, layers=[1], positions=[-500])
