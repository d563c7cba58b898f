"""The similarity engine on the offline Gemma 3 270M with PUD (en, de, zh, ru; 100 sentences).

Run with ``pytest -m real -s tests/test_similarity_real.py`` (or ``-rA``) to see the per-layer
curves in the log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import PUD, need_shared

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def pud_result(real_model):
    from xling_probe import ParallelCorpus, extract
    from xling_probe.measures.engine import cross_layer_similarity, similarity

    corpus = ParallelCorpus.from_tsv(need_shared(PUD), languages=["en", "de", "zh", "ru"]).head(100)
    acts = extract(real_model, corpus, progress=False)
    result = similarity(acts, pairs="all", progress=False)  # defaults: 20 permutations, 200 bootstrap samples
    cross = cross_layer_similarity(acts, "en", "zh", metric="cka_debiased")
    return acts, result, cross


def test_real_model_similarity_curves_are_finite_above_null_and_logged(pud_result):
    acts, result, cross = pud_result
    assert result.layers == tuple(range(19)) and len(result.pairs) == 6
    lm = result.layer_mean()
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        print("\n=== per-layer mean over the 6 pairs of en, de, zh, ru (Gemma 3 270M, PUD, 100 sentences) ===")
        print(lm.pivot(index="layer", columns="metric", values="mean").round(3).to_string())
        print("=== chance level (mean of 20 shuffled pairings) ===")
        print(lm.pivot(index="layer", columns="metric", values="null_mean").round(3).to_string())
        print("=== share of pairs above every shuffled pairing ===")
        print(lm.pivot(index="layer", columns="metric", values="share_above_null").round(2).to_string())
        print("=== P@1 en -> x per layer ===")
        print(pd.DataFrame({b: result.curve("p@1", "en", b) for b in ("de", "zh", "ru")}).round(3).to_string())
        print("=== 'first align, then predict' profile (mean over pairs) ===")
        print(result.profile().query("lang_a == 'mean'").round(3).to_string(index=False))
        print("=== debiased CKA, layer of en vs layer of zh (every 3rd layer) ===")
        print(pd.DataFrame(cross.matrix, index=cross.layers_a, columns=cross.layers_b).iloc[::3, ::3].round(2).to_string())

    df = result.to_dataframe()
    numbers = df[["value", "null_mean", "null_std", "null_max", "ci_low", "ci_high"]].to_numpy()
    assert np.isfinite(numbers).all()
    assert np.isfinite(cross.matrix).all()
    # every per-layer mean curve lies above its chance level at every layer
    assert (lm["mean"] > lm["null_mean"]).all()
    # from layer 4 on, every pair beats all 20 shuffled pairings (p <= 1/21) for every metric
    late = df[df.layer >= 4]
    assert late["above_null"].all(), late.loc[~late["above_null"], ["metric", "layer", "lang_a", "lang_b", "value"]]
    # the ANC and debiased-CKA intervals sit far above chance in the middle layers
    mid = df[(df.layer == 10) & df.metric.isin(["anc", "cka_debiased"])]
    assert (mid["ci_low"] > mid["null_max"]).all()


def test_real_model_first_align_then_predict(pud_result):
    _, result, _ = pud_result
    prof = result.profile().query("lang_a == 'mean'").set_index("metric")
    p1 = prof.loc["p@1"]
    # retrieval peaks high in the middle layers and falls in the last ones (docs/science.md, "Layer profiles": ~0.8 -> ~0.2)
    assert 0.2 < p1["peak_position"] < 0.9 and p1["peak_value"] > 0.7
    assert p1["drop"] > 0.3 and p1["first_align_then_predict"]
    assert prof.loc["mexa", "first_align_then_predict"]
