"""The same analysis code on the hf, transformer_lens and nnsight backends gives the same numbers.

One function (what a notebook cell does: extract, similarity, neutrality, the logit-lens drift) runs on
each backend of one tiny Gemma 3; the results agree to float32 rounding. TransformerLens' bridge runs
eager attention, so the hf and nnsight handles here wrap the bridge's own (eager) model.
"""

from __future__ import annotations

import numpy as np
import pytest

import xling_probe as xp
from tiny import sentencepiece_tokenizer, tiny_gemma

SENTENCES = {
    "en": ["The cat sleeps on the sofa.", "The dog runs in the garden.", "I like books.", "I like flowers.",
           "The sun and the moon.", "Bread and milk."],
    "fr": ["Le chat dort sur le canapé.", "Le chien court dans le jardin.", "J'aime les livres.",
           "J'aime les fleurs.", "Le soleil et la lune.", "Du pain et du lait."],
    "de": ["Die Katze schläft auf dem Sofa.", "Der Hund läuft im Garten.", "Ich mag Bücher.", "Ich mag Blumen.",
           "Die Sonne und der Mond.", "Brot und Milch."],
}


def analysis(model):
    """A notebook's cells, unchanged whatever the backend."""
    corpus = xp.ParallelCorpus.from_columns([f"s{k}" for k in range(6)], SENTENCES)
    acts = xp.extract(model, corpus, progress=False, cache=False)
    sim = xp.similarity(acts, metrics=["cka", "p_at_1"], null_permutations=0, bootstrap=0)
    drift = xp.language_drift(model, source="fr", target="de", limit=4, shots=1, progress=False)
    return acts.data, sim.value, drift.curve("p_target")


@pytest.fixture(scope="module")
def backends():
    tok = sentencepiece_tokenizer()
    tl = xp.load_model(tiny_gemma(tok), tokenizer=tok, backend="transformer_lens", device="cpu")
    return {
        "transformer_lens": tl,
        "hf": xp.load_model(tl.model, tokenizer=tok, backend="hf", device="cpu"),
        "nnsight": xp.load_model(tl.model, tokenizer=tok, backend="nnsight", device="cpu"),
    }


def test_same_code_same_numbers_on_every_backend(backends):
    results = {name: analysis(handle) for name, handle in backends.items()}
    acts_hf, sim_hf, drift_hf = results["hf"]
    for name in ("nnsight", "transformer_lens"):
        acts, sim, drift = results[name]
        assert np.abs(acts - acts_hf).max() / np.abs(acts_hf).max() < 1e-5, name
        np.testing.assert_allclose(sim, sim_hf, rtol=1e-4, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(drift, drift_hf, rtol=1e-4, atol=1e-7, err_msg=name)
