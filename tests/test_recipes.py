"""Recipes: extract(recipe="mexa") against HF output_hidden_states, and the recipe argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xling_probe import ExtractionError, ParallelCorpus, extract
from xling_probe.recipes import RecipeError

SENTENCES = {
    "en": ["The cat sleeps.", "I like books and flowers very much, and the dog runs in the garden.", "Water."],
    "fr": ["Le chat dort.", "J'aime beaucoup les livres et les fleurs, et le chien court dans le jardin.", "Eau."],
    "zh": ["猫在睡觉。", "我很喜欢书和花，狗在花园里跑。", "水。"],
}


@pytest.fixture
def corpus():
    return ParallelCorpus.from_columns([f"s{k}" for k in range(3)], SENTENCES)


def mexa_reference(handle, text: str) -> np.ndarray:
    """MEXA's sentence vectors by their definition, one unpadded sentence at a time: every entry of
    HF ``hidden_states`` (the last one after the final norm, as HF returns it), pooled with the
    position-weighted mean over all tokens, BOS included: e = sum_t t h_t / sum_t t, t = 1..T."""
    enc = handle.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        hs = handle.model(**enc, output_hidden_states=True).hidden_states
    states = torch.stack([h[0] for h in hs]).double().numpy()  # [n_states, T, d]
    t = np.arange(1, states.shape[1] + 1, dtype=np.float64)
    return (states * t[None, :, None]).sum(axis=1) / t.sum()


@pytest.mark.parametrize("model_fixture", ["tiny_decoder", "tiny_gpt2_model"])
def test_mexa_recipe_equals_hf_hidden_states_with_bos_weighted_mean(request, corpus, model_fixture):
    handle = request.getfixturevalue(model_fixture)
    acts = extract(handle, corpus, recipe="mexa", cache=False, progress=False, batch_size=2)
    assert acts.layers == tuple(range(handle.n_states))
    assert acts.meta["recipe"] == "mexa" and acts.meta["last_state"] == "final_norm_applied"
    assert acts.meta["pooling"] == "weighted_mean" and acts.meta["include_special"] is True
    for lang in corpus.languages:
        for i, text in enumerate(corpus.sentences[lang]):
            expected = mexa_reference(handle, text)
            np.testing.assert_allclose(acts.data[:, acts.language_index(lang), i], expected, rtol=1e-5, atol=1e-5)
    # the default extraction keeps the raw residual stream at the last layer: it differs there only
    raw = extract(handle, corpus, pooling="weighted_mean", include_special=True, cache=False, progress=False)
    np.testing.assert_allclose(raw.data[:-1], acts.data[:-1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(raw.data[-1], acts.data[-1], atol=1e-3)
    assert raw.meta["last_state"] == "raw residual stream (no final norm)" and "recipe" not in raw.meta


def test_mexa_recipe_on_a_layer_subset_and_in_the_cache(tiny_decoder, corpus, tmp_path):
    last = tiny_decoder.n_states - 1
    full = extract(tiny_decoder, corpus, recipe="mexa", cache=False, progress=False)
    part = extract(tiny_decoder, corpus, recipe="mexa", layers=[1, -1], cache=True, cache_root=tmp_path,
                   progress=False)
    np.testing.assert_allclose(part.data, full.data[[1, last]], rtol=1e-5, atol=1e-6)
    # a cached plain extraction of the same pooling is not served for the recipe (different last state)
    plain = extract(tiny_decoder, corpus, pooling="weighted_mean", include_special=True, layers=[1, -1],
                    cache=True, cache_root=tmp_path, progress=False)
    assert not np.allclose(plain.data[-1], part.data[-1], atol=1e-3)
    again = extract(tiny_decoder, corpus, recipe="mexa", layers=[1, -1], cache=True, cache_root=tmp_path,
                    progress=False)
    np.testing.assert_array_equal(again.data, part.data)
    early = extract(tiny_decoder, corpus, recipe="mexa", layers=[0, 1], cache=False, progress=False)
    assert early.meta["last_state"] == "not extracted"


def test_mexa_recipe_refuses_contradicting_arguments(tiny_decoder, corpus):
    with pytest.raises(RecipeError, match="recipe='mexa' sets pooling='weighted_mean', but pooling='mean'"):
        extract(tiny_decoder, corpus, recipe="mexa", pooling="mean", cache=False)
    with pytest.raises(ExtractionError, match="include_special=False was given"):
        extract(tiny_decoder, corpus, recipe="mexa", include_special=False, cache=False)
    with pytest.raises(RecipeError, match="unknown recipe 'mexa2'"):
        extract(tiny_decoder, corpus, recipe="mexa2", cache=False)
    # arguments that agree with the recipe are fine
    ok = extract(tiny_decoder, corpus, recipe="mexa", pooling="weighted_mean", include_special=True, layers=[0],
                 cache=False, progress=False)
    assert ok.meta["recipe"] == "mexa"


def test_mexa_score_as_documented(tiny_decoder, corpus):
    """The recipes docstring: MEXA's score = similarity(metrics=["mexa"], pairs="pivot:en"), then
    the mean and the max over layers per pair (peak_layers)."""
    from xling_probe.measures.metrics import mexa_alignment
    from xling_probe.measures.engine import similarity

    acts = extract(tiny_decoder, corpus, recipe="mexa", cache=False, progress=False)
    res = similarity(acts, metrics=["mexa"], pairs="pivot:en", null_permutations=0, bootstrap=0, progress=False)
    peaks = res.peak_layers().set_index("lang_b")
    for lang in ("fr", "zh"):
        per_layer = [mexa_alignment(acts.get(layer, "en").astype(np.float64), acts.get(layer, lang).astype(np.float64))
                     for layer in acts.layers]
        assert peaks.loc[lang, "mean_over_layers"] == pytest.approx(np.mean(per_layer))
        assert peaks.loc[lang, "max_over_layers"] == pytest.approx(np.max(per_layer))
