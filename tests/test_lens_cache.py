"""The lens cache (issue 19, item 4): a repeated drift is a cache hit with equal numbers that runs no
model; other words or settings miss; a corrupted entry is recomputed; the final layer's logits are the KL
reference (computed once)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xling_probe.lens import WordList, language_drift
from xling_probe.lens.core import Lens, lens_stats

from test_lens_drift import TINY_WORDS


@pytest.fixture
def words():
    return WordList.from_dict(TINY_WORDS)


def _drift(model, words, **kw):
    kw = {"source": "fr", "target": "de", "shots": 2, "n_boot": 50, "progress": False, **kw}
    return language_drift(model, words, **kw)


class _NoForward:
    """Makes every forward pass of the model fail: a cache hit must not need one."""

    def __init__(self, monkeypatch, model):
        def boom(*_a, **_k):
            raise AssertionError("the model ran although the result is cached")

        monkeypatch.setattr(model.parts.runner, "forward", boom)
        monkeypatch.setattr(model.model, "forward", boom)


def _same(a, b):
    assert a.concepts == b.concepts and a.layers == b.layers and a.prompts == b.prompts
    assert a.dropped.entries == b.dropped.entries and a.dropped.n_total == b.dropped.n_total
    for m in a.values:
        np.testing.assert_array_equal(a.values[m], b.values[m])
        for s in a.summary[m]:
            np.testing.assert_array_equal(a.summary[m][s], b.summary[m][s])
    assert a.to_dict(items=True) == b.to_dict(items=True)


def test_second_drift_is_a_cache_hit_without_the_model(tiny_decoder, words, monkeypatch, _isolated_cache):
    first = _drift(tiny_decoder, words)
    assert list((_isolated_cache / "lens").iterdir())  # stored under the cache root
    with monkeypatch.context() as m:
        _NoForward(m, tiny_decoder)
        second = _drift(tiny_decoder, words)
        with pytest.raises(AssertionError, match="the model ran"):
            _drift(tiny_decoder, words, cache=False)  # the patch does stop the model
    _same(first, second)
    assert second.values["p_target"].flags.writeable is False


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"shots": 1}, {"n_boot": 60}, {"level": 0.9}, {"limit": 3}, {"batch_size": 2},
    {"target": "en"}, {"chunk_elements": 500}, {"words": "other"},
])
def test_other_words_or_settings_miss(tiny_decoder, words, monkeypatch, change):
    _drift(tiny_decoder, words)
    if change == {"words": "other"}:
        table = {k: list(v) for k, v in TINY_WORDS.items()}
        table["de"][1] = "Katze"  # one word differs
        kw, wl = {}, WordList.from_dict(table)
    else:
        kw, wl = change, words
    calls = []
    runner = tiny_decoder.parts.runner
    original = runner.forward
    monkeypatch.setattr(runner, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    _drift(tiny_decoder, wl, **kw)
    assert calls, f"{change} was answered from the cache"


def test_corrupted_entry_is_recomputed(tiny_decoder, words, _isolated_cache):
    first = _drift(tiny_decoder, words)
    (entry,) = (_isolated_cache / "lens").iterdir()
    arrays = entry / "arrays.npz"
    raw = bytearray(arrays.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    arrays.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupted"):
        again = _drift(tiny_decoder, words)
    _same(first, again)
    assert (entry / "done.json").is_file()  # written again, complete
    _same(first, _drift(tiny_decoder, words))


def test_unfinished_entry_does_not_count(tiny_decoder, words, _isolated_cache):
    first = _drift(tiny_decoder, words)
    (entry,) = (_isolated_cache / "lens").iterdir()
    (entry / "done.json").unlink()  # as if killed before the last write
    calls = []
    runner = tiny_decoder.parts.runner
    original = runner.forward
    runner.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        again = _drift(tiny_decoder, words)
    finally:
        del runner.forward
    assert calls
    _same(first, again)


def test_final_layer_logits_are_the_kl_reference_once(tiny_decoder):
    lens = Lens(tiny_decoder)
    torch.manual_seed(0)
    resid = torch.randn(4, 5, tiny_decoder.d_model)
    sets = {"a": [[1, 2], [3], [4, 5, 6], [7], [8]]}
    ref = lens_stats(lens, resid, resid[-1].clone(), sets=sets, rank_of="a")
    calls = []
    original = lens.logits_normed
    lens.logits_normed = lambda x, *a: calls.append(tuple(x.shape)) or original(x, *a)
    once = lens_stats(lens, resid, resid[-1], sets=sets, rank_of="a", final_is_last=True)
    assert calls and all(shape[0] == 4 for shape in calls)  # no separate [P, d] pass for the reference
    assert float(once.kl_to_final_bits[-1].abs().max()) == 0.0
    for name in ("lse", "entropy_bits", "kl_to_final_bits"):
        np.testing.assert_allclose(getattr(once, name), getattr(ref, name), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(once.rank, ref.rank)
    # several chunks of layers: the ones without the last layer still get their reference
    small = lens_stats(lens, resid, resid[-1], sets=sets, rank_of="a", final_is_last=True, chunk_elements=300)
    np.testing.assert_allclose(small.kl_to_final_bits, ref.kl_to_final_bits, rtol=1e-4, atol=1e-5)


def test_lens_table_is_cached_too(tiny_decoder, monkeypatch):
    from xling_probe.lens import lens_table

    first = lens_table(tiny_decoder, "the dog reads a book", top_k=3)
    with monkeypatch.context() as m:
        _NoForward(m, tiny_decoder)
        second = lens_table(tiny_decoder, "the dog reads a book", top_k=3)
    for name in ("top_ids", "top_probs", "entropy_bits", "kl_to_final_bits"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert second.input_tokens == first.input_tokens and second.layers == first.layers
    assert (second.top_tokens == first.top_tokens).all()
    assert not second.top_probs.flags.writeable
    calls = []
    runner = tiny_decoder.parts.runner
    original = runner.forward
    monkeypatch.setattr(runner, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    lens_table(tiny_decoder, "the dog reads a book", top_k=4)  # another setting: computed
    assert calls


def test_cli_no_cache_reads_and_writes_no_entry(tiny_decoder_dir, tmp_path, _isolated_cache):
    """``xling-probe drift --no-cache`` computes afresh and leaves the lens cache empty; without it, one entry."""
    import pandas as pd

    from xling_probe.cli.main import main

    words = tmp_path / "words.csv"
    pd.DataFrame(TINY_WORDS).to_csv(words, index=False)
    argv = ["drift", "--model", str(tiny_decoder_dir), "--device", "cpu", "--words", str(words), "--source", "fr",
            "--target", "de", "--shots", "2", "--n-boot", "20"]
    lens = _isolated_cache / "lens"
    assert main([*argv, "--no-cache", "--out", str(tmp_path / "a")]) == 0
    assert not lens.exists() or not any(lens.iterdir())
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert len(list(lens.iterdir())) == 1
    a, b = (pd.read_csv(next((tmp_path / x).glob("*.csv"))) for x in "ab")
    pd.testing.assert_frame_equal(a, b)
