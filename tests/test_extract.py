"""Extraction on tiny local models: pooling against hand computations, padding, layers, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xling_probe import ExtractionError, ParallelCorpus, extract
from xling_probe.extraction.extract import resolve_layers
from xling_probe.extraction.pooling import pool, pooling_weights

SENTENCES = {
    "en": ["The cat sleeps.", "I like books and flowers very much, and the dog runs in the garden.", "Water.", "The moon"],
    "fr": ["Le chat dort.", "J'aime beaucoup les livres et les fleurs, et le chien court dans le jardin.", "Eau.", "La lune"],
    "zh": ["猫在睡觉。", "我很喜欢书和花，狗在花园里跑。", "水。", "月亮"],
}


@pytest.fixture
def corpus():
    return ParallelCorpus.from_columns([f"s{k}" for k in range(4)], SENTENCES)


def hand_states(handle, text):
    """All residual states of one unpadded sentence via output_hidden_states, plus its special mask.

    HF's hidden_states[l] for l < L is the input of block l; the last entry is after the final norm
    for decoders, so the raw last state is taken from the last block's output with a hook.
    """
    enc = handle.tokenizer([text], return_tensors="pt", return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")[0].bool()
    captured = {}
    hook = handle.parts.blocks[-1].register_forward_hook(
        lambda m, a, out: captured.__setitem__("last", out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        hs = handle.parts.runner(**enc, output_hidden_states=True).hidden_states
    hook.remove()
    states = [h[0] for h in hs[:-1]] + [captured["last"][0]]
    return torch.stack(states).numpy(), special.numpy()


@pytest.mark.parametrize("pooling", ["mean", "last", "first", "weighted_mean"])
def test_pooling_matches_hand_computation(tiny_decoder, corpus, pooling):
    acts = extract(tiny_decoder, corpus, pooling=pooling, cache=False, progress=False, batch_size=3)
    assert acts.layers == tuple(range(tiny_decoder.n_blocks + 1))
    for lang in corpus.languages:
        for i, text in enumerate(corpus.sentences[lang]):
            states, special = hand_states(tiny_decoder, text)
            T = states.shape[1]
            if pooling == "mean":
                expected = states[:, ~special].mean(axis=1)
            elif pooling == "last":
                expected = states[:, -1]
            elif pooling == "first":
                expected = states[:, 0]
            else:
                t = np.arange(1, T + 1, dtype=np.float64) * (~special)
                expected = (states * t[None, :, None]).sum(axis=1) / t.sum()
            np.testing.assert_allclose(acts.data[:, acts.language_index(lang), i], expected, rtol=2e-5, atol=2e-5)


def test_last_state_is_raw_residual_not_final_norm(tiny_decoder, corpus):
    acts = extract(tiny_decoder, corpus, cache=False, progress=False, pooling="last")
    enc = tiny_decoder.tokenizer([corpus.sentences["en"][0]], return_tensors="pt")
    with torch.no_grad():
        normed_last = tiny_decoder.parts.runner(**enc, output_hidden_states=True).hidden_states[-1][0, -1]
        renormed = tiny_decoder.parts.final_norm(torch.from_numpy(acts.data[-1, 0, 0].copy()))
    assert not np.allclose(acts.data[-1, 0, 0], normed_last.numpy(), atol=1e-3)
    np.testing.assert_allclose(renormed.numpy(), normed_last.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "last", "first", "weighted_mean"])
def test_padding_side_and_batch_size_invariance(tiny_decoder, corpus, pooling):
    left = extract(tiny_decoder, corpus, pooling=pooling, padding_side="left", batch_size=4, cache=False, progress=False)
    right = extract(tiny_decoder, corpus, pooling=pooling, padding_side="right", batch_size=4, cache=False, progress=False)
    single = extract(tiny_decoder, corpus, pooling=pooling, batch_size=1, cache=False, progress=False)
    np.testing.assert_allclose(left.data, right.data, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(left.data, single.data, rtol=1e-4, atol=1e-4)


def test_include_special_changes_mean_by_the_bos_share(tiny_decoder, corpus):
    with_bos = extract(tiny_decoder, corpus, include_special=True, cache=False, progress=False, languages=["en"])
    states, special = hand_states(tiny_decoder, corpus.sentences["en"][2])
    np.testing.assert_allclose(with_bos.data[:, 0, 2], states.mean(axis=1), rtol=2e-5, atol=2e-5)


def test_layer_subset_equals_full_and_skips_later_blocks(tiny_decoder, corpus):
    full = extract(tiny_decoder, corpus, cache=False, progress=False)
    calls = []
    last_block = tiny_decoder.parts.blocks[-1]
    h = last_block.register_forward_hook(lambda *a: calls.append(1))
    part = extract(tiny_decoder, corpus, layers=[0, -2], cache=False, progress=False)
    h.remove()
    assert part.layers == (0, tiny_decoder.n_blocks - 1)
    assert calls == []  # the last block never ran
    np.testing.assert_array_equal(part.data, full.data[[0, -2]])


def test_encoder_first_is_cls_and_mean_excludes_cls_sep(tiny_encoder, corpus):
    acts = extract(tiny_encoder, corpus, pooling="first", cache=False, progress=False, languages=["en", "zh"])
    mean = extract(tiny_encoder, corpus, pooling="mean", cache=False, progress=False, languages=["en", "zh"])
    assert tiny_encoder.kind == "encoder" and not tiny_encoder.has_unembedding
    enc = tiny_encoder.tokenizer([corpus.sentences["zh"][1]], return_tensors="pt", return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")[0].bool()
    with torch.no_grad():
        hs = tiny_encoder.model(**enc, output_hidden_states=True).hidden_states
    for layer in range(len(hs)):  # encoders apply no final norm: hidden_states are the block outputs
        np.testing.assert_allclose(acts.get(layer, "zh")[1], hs[layer][0, 0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mean.get(layer, "zh")[1], hs[layer][0, ~special].mean(0).numpy(), rtol=1e-5, atol=1e-5)


def test_pooling_weights_ignore_nan_in_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [float("nan"), float("nan")]]])
    mask = torch.tensor([[1, 1, 0]])
    special = torch.tensor([[1, 0, 0]])
    w = pooling_weights(mask, special, "mean")
    assert torch.equal(pool(hidden, w), torch.tensor([[3.0, 4.0]]))
    w = pooling_weights(mask, special, "weighted_mean", include_special=True)  # t = 1, 2
    torch.testing.assert_close(pool(hidden, w), torch.tensor([[(1 + 2 * 3) / 3, (2 + 2 * 4) / 3]]))


def test_bad_layers_pooling_and_long_sentences(tiny_decoder, corpus):
    n = tiny_decoder.n_states
    assert resolve_layers([-1, 0, 0], n) == [0, n - 1]
    with pytest.raises(ExtractionError, match=f"layer {n} is out of range.*{n} residual-stream states"):
        extract(tiny_decoder, corpus, layers=[n], cache=False)
    with pytest.raises(ExtractionError, match="layer -99 is out of range"):
        extract(tiny_decoder, corpus, layers=-99, cache=False)
    with pytest.raises(ExtractionError, match="unknown pooling 'max'"):
        extract(tiny_decoder, corpus, pooling="max", cache=False)
    lengths = {lang: [len(tiny_decoder.tokenizer(s)["input_ids"]) for s in corpus.sentences[lang]] for lang in corpus.languages}
    too_long = {lang: sum(n > 6 for n in ls) for lang, ls in lengths.items()}
    assert 0 < sum(too_long.values()) < 12
    with pytest.warns(UserWarning, match=rf"{sum(too_long.values())} sentences were longer than max_length=6 .*en: {too_long['en']}"):
        acts = extract(tiny_decoder, corpus, max_length=6, cache=False, progress=False)
    assert np.isfinite(acts.data).all()
    # a truncated sentence is pooled over its first 6 tokens only
    first6 = hand_states(tiny_decoder, corpus.sentences["en"][1])[0][:, :6]
    np.testing.assert_allclose(acts.get(2, "en")[1], first6[2, 1:].mean(axis=0), rtol=2e-5, atol=2e-5)


def test_nan_activation_names_layer_and_language(tiny_decoder, corpus):
    block = tiny_decoder.parts.blocks[1]

    def poison(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[..., 0] = float("inf")
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    h = block.register_forward_hook(poison)
    try:
        with pytest.raises(ExtractionError, match=r"language 'en' at layer\(s\) \[2, 3\]"):
            extract(tiny_decoder, corpus, cache=False, progress=False)
    finally:
        h.remove()


def test_activations_labels_selection_and_roundtrip(tiny_decoder, corpus, tmp_path):
    acts = extract(tiny_decoder, corpus, cache=False, progress=False)
    sub = acts.sel(layers=[2, 0], languages=["fra", "en"], ids=["s3", "s1"])
    np.testing.assert_array_equal(sub.get(0, "fr"), acts.data[0, 1][[3, 1]])
    assert sub.texts["fr"] == ("La lune", corpus.sentences["fr"][1])
    back = type(acts).load(acts.save(tmp_path / "a"))
    np.testing.assert_array_equal(back.data, acts.data)
    assert back.languages == acts.languages and back.meta["pooling"] == "mean"
    da = acts.to_xarray()
    assert da.dims == ("layer", "language", "sentence", "hidden")
    np.testing.assert_array_equal(da.sel(layer=1, language="zh").values, acts.get(1, "zh"))
    with pytest.raises(ExtractionError, match="not in these activations.*en, fr, zh"):
        acts.get(0, "de")


@pytest.mark.parametrize("backend", ["hf", "transformer_lens"])
def test_absolute_positions_survive_left_padding(tiny_gpt2_model, corpus, backend):
    """GPT-2 adds a learned embedding per absolute position: left padding would shift every real token's
    position unless positions count real tokens. Both backends must give the unpadded one-by-one states."""
    from xling_probe import load_model

    handle = tiny_gpt2_model if backend == "hf" else load_model(
        tiny_gpt2_model.model, tokenizer=tiny_gpt2_model.tokenizer, backend="transformer_lens", device="cpu")
    sub = corpus.select_languages(["en", "zh"])
    left = extract(handle, sub, padding_side="left", batch_size=4, cache=False, progress=False)
    single = extract(handle, sub, padding_side="left", batch_size=1, cache=False, progress=False)
    lengths = {len(tiny_gpt2_model.tokenizer(s)["input_ids"]) for s in sub.sentences["zh"]}
    assert len(lengths) > 1  # the batches really are padded
    np.testing.assert_allclose(left.data, single.data, rtol=1e-4, atol=1e-5)


def test_extract_texts_writes_into_out_and_checks_it(tiny_decoder, corpus):
    import importlib

    ex = importlib.import_module("xling_probe.extraction.extract")
    texts = corpus.sentences["en"]
    n = len(texts)
    fresh, _ = ex.extract_texts(tiny_decoder, texts, [0, 1], batch_size=2)
    target = np.zeros((2, 2, n, tiny_decoder.d_model), dtype=np.float32)
    states, _ = ex.extract_texts(tiny_decoder, texts, [0, 1], batch_size=2, out=target[:, 1])
    np.testing.assert_array_equal(target[:, 1], fresh)  # written into the given view, not a copy
    assert states.base is target and not target[:, 0].any()
    with pytest.raises(ExtractionError, match=rf"out must be a float32 array of shape \(2, {n}, "):
        ex.extract_texts(tiny_decoder, texts, [0, 1], out=np.zeros((2, n + 1, tiny_decoder.d_model), dtype=np.float32))
