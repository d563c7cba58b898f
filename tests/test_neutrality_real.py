"""Language neutrality of the offline Gemma 3 270M on PUD (en + 5 languages incl. zh and ar)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PUD, need_shared
from xling_probe import extract, load_corpus
from xling_probe.centering.evaluate import neutrality

LANGUAGES = ["en", "zh", "ar", "de", "ru", "ja"]


@pytest.mark.real
def test_centering_gains_on_held_out_pud(real_model, capsys):
    corpus = load_corpus(need_shared(PUD)).select_languages(LANGUAGES).head(160)
    acts = extract(real_model, corpus, progress=False)
    report = neutrality(acts, split=100, seed=0, probe="logistic", progress=False)
    knn = neutrality(acts, split=100, seed=0, progress=False)  # the default probe
    with capsys.disabled():
        print(f"\nlanguage neutrality, Gemma 3 270M, PUD {LANGUAGES}, fit {len(report.fit_ids)} / "
              f"held-out {len(report.heldout_ids)} sentences (mean pooling, BOS excluded)")
        print(report)
        print("k-NN language-ID probe (raw, centered):")
        print(np.round(knn.language_id, 3))
    assert len(report.heldout_ids) == 100 and set(report.fit_ids).isdisjoint(report.heldout_ids)
    raw, centered = report.retrieval_mean
    # docs/science.md, "Layer profiles": raw P@1 peaks in the middle layers and collapses at the last layer...
    assert raw.argmax() not in (0, len(raw) - 1)
    assert raw.max() - raw[-1] > 0.3
    # ...while centering (means from the fit split) keeps the last layer well aligned
    assert centered[-1] - raw[-1] > 0.2
    # language identity is linearly readable from the raw states at every layer (chance = 1/6)
    assert report.chance == pytest.approx(1 / 6)
    assert np.all(report.language_id[0] > 0.9)
    # after centering no linear probe can beat chance (equal language means), yet a k-NN probe
    # still finds the language in the last layer: what centering leaves is not linear
    np.testing.assert_allclose(report.language_id[1], report.chance, atol=0.02)
    assert knn.language_id[1, -1] > 2 * knn.chance
    # and the language means explain a large share of the raw variance, almost none once centered
    assert np.all(report.variance_share[0] > 0.1) and np.all(report.variance_share[1] < 0.05)
