"""Extraction on the offline Gemma 3 270M: the truth behind the tiny-model tests."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import PUD, need_shared
from xling_probe import ParallelCorpus, extract, load_model

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def pud():
    return ParallelCorpus.from_tsv(need_shared(PUD), languages=["en", "de", "zh", "ar"]).head(24)


def test_real_model_facts(real_model):
    assert (real_model.n_blocks, real_model.d_model, real_model.kind) == (18, 640, "decoder")
    assert real_model.has_unembedding and real_model.name == "gemma3-270m"
    assert len(real_model.tokenizer) >= 262_000


def test_states_match_hf_and_last_is_raw(real_model, pud):
    acts = extract(real_model, pud, progress=False, cache=False, batch_size=8)
    assert acts.shape == (19, 4, 24, 640) and np.isfinite(acts.data).all()
    tok = real_model.tokenizer
    for lang in ("de", "zh"):
        text = pud.sentences[lang][5]
        enc = tok([text], return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask")[0].bool()
        with torch.no_grad():
            hs = real_model.parts.runner(**enc, output_hidden_states=True).hidden_states
        for layer in (0, 1, 9, 17):  # hidden_states[l] is the input of block l for l < 18
            ref = hs[layer][0, ~special].mean(0).numpy()
            got = acts.get(layer, lang)[5]
            assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-4
        # hidden_states[18] is after the final norm; ours is the raw residual stream
        raw_last = acts.get(18, lang)[5]
        normed = hs[18][0, ~special].mean(0).numpy()
        assert np.linalg.norm(raw_last) > 20 * np.linalg.norm(normed)


def test_translations_are_closer_than_other_sentences_mid_network(real_model):
    corpus = ParallelCorpus.sample(languages=["en", "fr", "zh"], n=40)
    acts = extract(real_model, corpus, progress=False, layers=[9])
    x, y = acts.get(9, "en"), acts.get(9, "zh")
    x = x - x.mean(0)
    y = y - y.mean(0)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    diag = np.diag(cos).mean()
    off = (cos.sum() - np.trace(cos)) / (cos.size - len(cos))
    print(f"\nlayer 9 en-zh (centered) cosine: translations {diag:.3f}, other pairs {off:.3f}")
    assert diag > off + 0.2


def test_transformer_lens_backend_matches_hf(real_model, pud):
    # The bridge runs eager attention; compare against an HF copy on eager too (sdpa vs eager ~1e-3).
    eager = copy.deepcopy(real_model.model)
    eager.set_attn_implementation("eager")
    hf = load_model(eager, tokenizer=real_model.tokenizer, device="cpu")
    tl = load_model(hf, backend="transformer_lens")
    assert tl.bridge is not None and hf.model.config._attn_implementation == "eager"
    small = pud.head(8)
    a = extract(hf, small, progress=False, cache=False)
    b = extract(tl, small, progress=False, cache=False)
    rel = np.linalg.norm(a.data - b.data, axis=-1) / np.linalg.norm(a.data, axis=-1)
    print(f"\nbackend max relative difference over layers, languages, sentences: {rel.max():.2e}")
    assert rel.max() < 1e-4
    # the user's model object was not switched to eager behind their back
    assert real_model.model.config._attn_implementation != "eager" or real_model.model is eager
