"""The TransformerLens runner stops after the last wanted state (issue 19, item 1): the final norm and
the unembedding never run, and the states are bitwise those of the whole forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xling_probe import ParallelCorpus, load_model
from xling_probe.extraction import extract
from xling_probe.extraction.runners import TLRunner, pad_batch
from xling_probe.lens.core import encode, run_batches


from conftest import PUD, need_shared
from test_extract import SENTENCES


@pytest.fixture
def corpus():
    return ParallelCorpus.from_columns([f"s{k}" for k in range(4)], SENTENCES)


@pytest.fixture(scope="module")
def pud():
    return ParallelCorpus.from_tsv(need_shared(PUD), languages=["en", "zh"]).head(4)


def _tl(handle):
    return load_model(handle.model, tokenizer=handle.tokenizer, backend="transformer_lens", device="cpu")


@pytest.fixture(scope="module")
def tl_gemma(tiny_decoder):
    return _tl(tiny_decoder)


@pytest.fixture(scope="module")
def tl_gpt2(tiny_gpt2_model):
    return _tl(tiny_gpt2_model)


def _batch(handle, texts):
    rows = [handle.tokenizer(t)["input_ids"] for t in texts]
    return pad_batch(rows, [[0] * len(r) for r in rows], handle.tokenizer.pad_token_id, "left")


def _count_head(handle):
    calls = []
    head = handle.model.get_output_embeddings()  # the bridge runs this model's modules
    hook = head.register_forward_hook(lambda *_: calls.append(1))
    return calls, hook


@pytest.mark.parametrize("which", ["tl_gemma", "tl_gpt2"])
@pytest.mark.parametrize("layers", ["all", "last", "first_last"])
def test_early_stop_gives_the_states_of_the_whole_forward(request, which, layers):
    handle = request.getfixturevalue(which)
    want = {"all": list(range(handle.n_states)), "last": [handle.n_states - 1],
            "first_last": [0, handle.n_states - 1]}[layers]
    batch = _batch(handle, ["the dog reads a book", "a cat", "flower garden in the sun"])
    keep = lambda _layer, hidden: hidden.detach().clone()  # noqa: E731
    calls, hook = _count_head(handle)
    try:
        with torch.inference_mode():
            stopped = TLRunner(handle, want).run(batch, keep)
            assert not calls, "the unembedding ran although no state after the blocks is wanted"
            whole = TLRunner(handle, want, early_stop=False).run(batch, keep)
            assert calls  # the reference run does reach the head
    finally:
        hook.remove()
    assert sorted(stopped) == want
    for layer in want:
        assert torch.equal(stopped[layer], whole[layer]), layer
    # the stop hook is gone afterwards: a plain bridge call runs to the logits
    with torch.inference_mode():
        logits = handle.bridge(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert logits.shape[-1] == handle.model.config.vocab_size


def test_extraction_and_lens_do_not_run_the_head(tl_gemma, tiny_decoder, corpus):
    calls, hook = _count_head(tl_gemma)
    try:
        acts = extract(tl_gemma, corpus.select_languages(["en", "zh"]), cache=False, progress=False, batch_size=4)
        rows = encode(tl_gemma, ["the dog", "a book"])
        list(run_batches(tl_gemma, rows, list(range(tl_gemma.n_states))))
    finally:
        hook.remove()
    assert not calls
    ref = extract(tiny_decoder, corpus.select_languages(["en", "zh"]), cache=False, progress=False, batch_size=4)
    # the same tolerance as the existing TL-vs-hf comparisons (sdpa vs eager attention)
    np.testing.assert_allclose(acts.data, ref.data, rtol=1e-4, atol=1e-5)


@pytest.mark.real
def test_early_stop_on_gemma(real_model_tl, pud):
    handle = real_model_tl
    texts = list(pud.sentences["zh"][:3]) + list(pud.sentences["en"][:3])
    batch = _batch(handle, texts)
    keep = lambda _layer, hidden: hidden.detach().clone()  # noqa: E731
    layers = list(range(handle.n_states))
    calls, hook = _count_head(handle)
    try:
        with torch.inference_mode():
            stopped = TLRunner(handle, layers).run(batch, keep)
            assert not calls
            whole = TLRunner(handle, layers, early_stop=False).run(batch, keep)
    finally:
        hook.remove()
    for layer in layers:
        assert torch.equal(stopped[layer], whole[layer]), layer
