"""Per-position table (heatmap data) and script/language shares of free text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xling_probe.errors import LensError
from xling_probe.lens import Lens, language_shares, lens_table, script_of
from xling_probe.lens.shares import languages_of

TEXT = "Der Hund läuft im Garten. 猫在沙发上睡觉。"


@pytest.mark.parametrize("text, script", [
    ("flower", "Latin"), (" Blume", "Latin"), ("花", "Han"), ("цветок", "Cyrillic"), ("꽃", "Hangul"),
    ("はな", "Hiragana"), ("カタ", "Katakana"), ("زهرة", "Arabic"), ("फूल", "Devanagari"), ("ＡＢ", "Latin"),
    ("123", "none"), (" ,.", "none"), ("\ufffd", "bytes"), ("ab花", "Latin"),
])
def test_script_of(text, script):
    assert script_of(text) == script


def test_lingua_classifies_words():
    assert languages_of(["Katze", "fromage", "собака", "猫", "42"], ["de", "fr", "ru", "zh"]) == ["de", "fr", "ru", "zh", "none"]


def test_lens_table_matches_the_model(tiny_decoder):
    table = lens_table(tiny_decoder, TEXT, top_k=3)
    ids = tiny_decoder.tokenizer(TEXT)["input_ids"]
    assert table.input_ids == tuple(ids) and table.layers == (0, 1, 2, 3)
    with torch.inference_mode():
        logits = tiny_decoder.model(input_ids=torch.tensor([ids])).logits[0].float()
    probs = torch.softmax(logits, -1)
    top = torch.topk(probs, 3, dim=-1)
    assert np.array_equal(table.top_ids[-1], top.indices.numpy())  # last layer = the model's own prediction
    assert np.allclose(table.top_probs[-1], top.values.numpy(), rtol=1e-5)
    ent = -(probs * torch.log2(probs)).sum(-1).numpy()
    assert np.allclose(table.entropy_bits[-1], ent, atol=1e-4)
    assert np.allclose(table.kl_to_final_bits[-1], 0.0, atol=1e-5)
    lens = Lens(tiny_decoder)
    assert np.all(np.diff(table.top_probs, axis=-1) <= 0)  # best first
    df = table.to_dataframe()
    assert len(df) == 4 * len(ids) * 3
    row = df[(df.layer == 3) & (df.position == 2) & (df["rank"] == 1)].iloc[0]
    assert row.token_id == top.indices[2, 0] and row.token == tiny_decoder.tokenizer.decode([int(row.token_id)])
    assert row.input_token == tiny_decoder.tokenizer.decode([ids[2]])
    assert table.top1().shape == (4, len(ids))
    assert float(table.to_xarray()["top_prob"].sel(layer=3, position=2, rank=1)) == pytest.approx(float(top.values[2, 0]))
    assert lens.vocab_size == len(tiny_decoder.tokenizer)


def test_lens_table_layers_subset_and_errors(tiny_decoder, tiny_encoder):
    table = lens_table(tiny_decoder, TEXT, top_k=2, layers=[1, -1])
    full = lens_table(tiny_decoder, TEXT, top_k=2)
    assert table.layers == (1, 3)
    assert np.array_equal(table.top_ids, full.top_ids[[1, 3]])
    with pytest.raises(LensError, match="encoder"):
        lens_table(tiny_encoder, TEXT)
    with pytest.raises(LensError, match="longer than the context"):
        lens_table(tiny_decoder, "Hund " * 200)
    with pytest.raises(LensError, match="top_k"):
        lens_table(tiny_decoder, TEXT, top_k=0)


def test_shares_are_the_classified_top_k_mass(tiny_decoder):
    shares = language_shares(tiny_decoder, TEXT, top_k=4, weight="count", progress=False)
    table = lens_table(tiny_decoder, TEXT, top_k=4)
    tok = tiny_decoder.tokenizer
    real = [t for t, i in enumerate(table.input_ids) if i not in tok.all_special_ids]  # BOS left out
    assert shares.n_positions == len(real) == len(table.input_ids) - 1
    assert np.allclose(shares.shares.sum(axis=1), 1.0)
    for li in range(len(table.layers)):
        labels = [script_of(tok.decode([int(i)])) for i in table.top_ids[li, real].reshape(-1)]
        for cat in set(labels):
            assert shares.share(cat)[li] == pytest.approx(labels.count(cat) / len(labels))
            assert shares.counts[li, shares.categories.index(cat)] == labels.count(cat)
    prob = language_shares(tiny_decoder, [TEXT, "Le chat dort."], top_k=4, progress=False)
    assert np.allclose(prob.shares.sum(axis=1), 1.0) and prob.meta["n_texts"] == 2
    df = prob.to_dataframe()
    assert set(df.columns) == {"layer", "category", "share", "count"}
    assert np.allclose(df.groupby("layer").share.sum(), 1.0)
    assert len(prob.dominant()) == 4


def test_shares_by_language_and_errors(tiny_decoder):
    res = language_shares(tiny_decoder, TEXT, top_k=3, by="language", languages=["de", "fr", "zh"], progress=False)
    assert set(res.categories) <= {"de", "fr", "zh", "none", "bytes", "unknown"}
    assert np.allclose(res.shares.sum(axis=1), 1.0)
    with pytest.raises(LensError, match="by must be"):
        language_shares(tiny_decoder, TEXT, by="alphabet")
    with pytest.raises(LensError, match="non-empty"):
        language_shares(tiny_decoder, [])
