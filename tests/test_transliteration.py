"""romanize (uroman) and the matched-vs-random gap, original vs romanized, on planted arrays."""

from __future__ import annotations

import numpy as np
import pytest

from xling_probe import Activations, ParallelCorpus
from xling_probe.errors import CorpusError, MetricError
from xling_probe.lens.shares import script_of
from xling_probe.transliteration import matched_random_gap, romanize, romanize_text, transliteration_gap


@pytest.fixture(scope="module")
def corpus():
    return ParallelCorpus.from_columns(
        ["1", "2", "3"],
        {"en": ["The cat sleeps.", "Good morning, friend.", "I like tea."],
         "ru": ["Кошка спит.", "Доброе утро, друг.", "Я люблю чай."],
         "el": ["Η γάτα κοιμάται.", "Καλημέρα, φίλε.", "Μου αρέσει το τσάι."],
         "zh": ["猫在睡觉。", "早上好，朋友。", "我喜欢茶。"]},
    )


def test_romanize_keeps_latin_and_latinizes_others(corpus):
    out = romanize(corpus)
    assert out.ids == corpus.ids and out.languages == corpus.languages and out.labels == corpus.labels
    assert out.meta["romanized"]["tool"] == "uroman" and out.meta["romanized"]["languages"] == list(corpus.languages)
    assert out.sentences["en"] == corpus.sentences["en"]
    for lang in ("ru", "el", "zh"):
        for s in out.sentences[lang]:
            assert script_of(s) == "Latin", (lang, s)
            assert all(ord(ch) < 0x250 for ch in s if ch.isalpha()), s
    assert out.sentences["ru"][0].lower().startswith("koshka")
    # deterministic, and the cached copy gives the same sentences
    again = romanize(corpus)
    assert again.sentences == out.sentences
    assert romanize(corpus, cache=False).sentences == out.sentences
    assert romanize_text("café") in ("café", "cafe")
    partial = romanize(corpus, languages=["ru"])
    assert partial.sentences["zh"] == corpus.sentences["zh"] and partial.sentences["ru"] == out.sentences["ru"]
    with pytest.raises(CorpusError):
        romanize("not a corpus")


def _planted(n=40, d=16, layers=3, gaps=(0.0, 1.0, 3.0), seed=0):
    """Languages a, b: b_i = gap * shared_i + noise, a_i = gap * shared_i + noise; gap grows with the layer."""
    rng = np.random.default_rng(seed)
    data = np.empty((layers, 2, n, d))
    for li in range(layers):
        shared = rng.normal(size=(n, d))
        data[li, 0] = gaps[li] * shared + rng.normal(size=(n, d))
        data[li, 1] = gaps[li] * shared + rng.normal(size=(n, d))
    return Activations(data.astype(np.float32), layers=tuple(range(layers)), languages=("en", "ru"),
                       ids=[str(i) for i in range(n)])


def _direct(a, b):
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = an @ bn.T
    n = len(a)
    matched = np.mean(np.diag(c))
    random = np.mean(c[~np.eye(n, dtype=bool)])
    return matched, random


def test_matched_random_gap_on_a_planted_gap():
    acts = _planted()
    table = matched_random_gap(acts, n_boot=300)
    assert list(table["layer"]) == [0, 1, 2]
    for li in range(3):
        m, r = _direct(acts.data[li, 0].astype(np.float64), acts.data[li, 1].astype(np.float64))
        row = table.iloc[li]
        assert row["matched"] == pytest.approx(m, abs=1e-6) and row["random"] == pytest.approx(r, abs=1e-6)
        assert row["gap_low"] <= row["gap"] <= row["gap_high"]
    assert table.iloc[0]["gap_low"] < 0 < table.iloc[0]["gap_high"]  # no planted gap: the interval covers 0
    assert table.iloc[1]["gap_low"] > 0.2 and table.iloc[2]["gap"] > table.iloc[1]["gap"]
    # seeded
    assert matched_random_gap(acts, n_boot=300).equals(table)


def test_transliteration_gap_compares_versions():
    original = _planted(gaps=(0.0, 0.5, 0.5), seed=1)
    romanized = _planted(gaps=(0.0, 2.0, 0.5), seed=2)
    table = transliteration_gap(original, romanized, n_boot=300)
    assert set(table["version"]) == {"original", "romanized", "romanized - original"}
    diff = table[table["version"] == "romanized - original"].set_index("layer")
    orig = table[table["version"] == "original"].set_index("layer")
    rom = table[table["version"] == "romanized"].set_index("layer")
    assert diff.loc[1, "gap"] == pytest.approx(rom.loc[1, "gap"] - orig.loc[1, "gap"])
    assert diff.loc[1, "gap_low"] > 0  # romanization planted to help at layer 1
    assert diff.loc[0, "gap_low"] < 0 < diff.loc[0, "gap_high"]
    with pytest.raises(MetricError):
        transliteration_gap(original)
    other = Activations(original.data[:, :1], layers=original.layers, languages=("en",), ids=original.ids)
    with pytest.raises(MetricError):
        transliteration_gap(original, other)
