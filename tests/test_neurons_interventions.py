"""Interventions on FFN neurons (tiny models): the hook equals editing the weights, errors, perplexity, steering."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import xling_probe as xp
from xling_probe.errors import XlingProbeError
from xling_probe.neurons import (
    PerplexityChange,
    activation_probabilities,
    find_ffn,
    neuron_intervention,
    perplexity,
    perplexity_change,
    random_like,
    select_language_neurons,
    steering,
)
from xling_probe.neurons.perplexity import nll

LANGS = ["en", "fr", "zh", "ru"]
NEURONS = {0: [1, 5, 63], 2: [0, 17]}


@pytest.fixture(scope="module")
def corpus():
    return xp.ParallelCorpus.sample(languages=LANGS, n=24)


def logits(handle, texts):
    enc = handle.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return handle.model(**enc).logits


def zeroed_copy(handle, neurons):
    """A deep copy whose down projections have the input weights of ``neurons`` set to 0."""
    model = copy.deepcopy(handle.model)
    copied = xp.load_model(model, tokenizer=handle.tokenizer, device="cpu")
    sites = find_ffn(copied)
    with torch.no_grad():
        for block, idx in neurons.items():
            w = sites[block].down.weight
            if type(sites[block].down).__name__ == "Conv1D":  # GPT-2: weight [in, out]
                w[idx, :] = 0.0
            else:
                w[:, idx] = 0.0
    return copied


@pytest.mark.parametrize("family, neurons", [("tiny_decoder", NEURONS), ("tiny_gpt2_model", {0: [1, 5, 63], 1: [0, 17]})])
def test_deactivating_with_the_hook_equals_zeroing_the_down_projection_columns(family, neurons, corpus, request):
    handle = request.getfixturevalue(family)
    texts = list(corpus.sentences["fr"][:4])
    before = logits(handle, texts)
    with neuron_intervention(handle, neurons) as info:
        hooked = logits(handle, texts)
    assert info.blocks == tuple(neurons) and len(info.table) == 5
    reference = logits(zeroed_copy(handle, neurons), texts)
    assert torch.allclose(hooked, reference, atol=1e-6, rtol=0)
    assert not torch.allclose(hooked, before, atol=1e-3)
    assert torch.equal(logits(handle, texts), before)  # the hooks are gone


def test_setting_a_value_reaches_the_down_projection(tiny_decoder):
    site = find_ffn(tiny_decoder)[1]
    seen = {}
    h = site.down.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0].clone()))
    try:
        with neuron_intervention(tiny_decoder, {1: [3, 4]}, value=[2.5, -1.0]):
            logits(tiny_decoder, ["Le chat dort."])
    finally:
        h.remove()
    # Hooks run in registration order: this one was registered first, so it sees the input before the change;
    # check the change through a second capture registered after.
    with neuron_intervention(tiny_decoder, {1: [3, 4]}, value=[2.5, -1.0]):
        h = site.down.register_forward_pre_hook(lambda m, a: seen.__setitem__("y", a[0].clone()))
        try:
            logits(tiny_decoder, ["Le chat dort."])
        finally:
            h.remove()
    assert torch.all(seen["y"][..., 3] == 2.5) and torch.all(seen["y"][..., 4] == -1.0)
    assert torch.equal(seen["y"][..., :3], seen["x"][..., :3])


def test_hooks_are_removed_after_an_error(tiny_decoder):
    sites = find_ffn(tiny_decoder)
    with pytest.raises(RuntimeError, match="boom"):
        with neuron_intervention(tiny_decoder, NEURONS):
            raise RuntimeError("boom")
    assert all(not s.down._forward_pre_hooks for s in sites)


def test_out_of_range_neurons_and_blocks_are_refused(tiny_decoder):
    with pytest.raises(XlingProbeError, match=r"neuron index 64 \(block 1\) out of range: each block has 64 neurons \(0..63\)"):
        with neuron_intervention(tiny_decoder, {1: [2, 64]}):
            pass
    with pytest.raises(XlingProbeError, match=r"block 3 out of range: the model has blocks 0..2"):
        with neuron_intervention(tiny_decoder, {3: [0]}):
            pass
    with pytest.raises(XlingProbeError, match="2 values for 3 neurons"):
        with neuron_intervention(tiny_decoder, {1: [0, 1, 2]}, value=[1.0, 2.0]):
            pass


def test_perplexity_equals_the_models_own_loss(tiny_decoder, corpus):
    texts = list(corpus.sentences["en"][:6])
    total, n = 0.0, 0
    for t in texts:
        enc = tiny_decoder.tokenizer(t, return_tensors="pt")
        with torch.no_grad():
            out = tiny_decoder.model(**enc, labels=enc["input_ids"])
        k = enc["input_ids"].shape[1] - 1
        total += float(out.loss) * k
        n += k
    assert perplexity(tiny_decoder, texts, batch_size=4) == pytest.approx(np.exp(total / n), rel=1e-5)
    _, count = nll(tiny_decoder, texts, batch_size=3)
    assert count == n


def test_perplexity_under_the_hook_equals_the_zeroed_model(tiny_decoder, corpus):
    texts = list(corpus.sentences["ru"][:6])
    hooked = perplexity(tiny_decoder, texts, neurons=NEURONS)
    assert hooked == pytest.approx(perplexity(zeroed_copy(tiny_decoder, NEURONS), texts), rel=1e-6)


def test_random_control_has_the_same_count_per_block_and_is_seeded():
    table = np.array([[0, 1], [0, 2], [2, 5]])
    a = random_like(table, 64, seed=3, exclude=table)
    assert sorted(a[:, 0].tolist()) == [0, 0, 2]
    assert not {tuple(r) for r in a.tolist()} & {tuple(r) for r in table.tolist()}
    assert np.array_equal(a, random_like(table, 64, seed=3, exclude=table))
    with pytest.raises(XlingProbeError, match="only 1 neurons"):
        random_like(np.array([[0, 0], [0, 1]]), 2, exclude=np.array([[0, 0]]))


@pytest.fixture(scope="module")
def fitted(tiny_decoder, corpus):
    probs = activation_probabilities(tiny_decoder, corpus, cache=False, progress=False)
    return probs, select_language_neurons(probs, fraction=0.05, filter_percentile=80, assign_percentile=80,
                                          min_tokens=10)


def test_perplexity_change_matrix_matches_single_runs(tiny_decoder, corpus, fitted, tmp_path):
    _, sel = fitted
    held = xp.ParallelCorpus.sample(languages=LANGS).take(xp.ParallelCorpus.sample().ids[100:106])
    res = perplexity_change(tiny_decoder, held, sel, seed=1, progress=False)
    langs = [x for x in LANGS if len(sel.index(x))]
    assert res.off == tuple(LANGS) and res.evaluated == tuple(LANGS)
    a, b = langs[0], "zh"
    j = LANGS.index(b)
    base = perplexity(tiny_decoder, held.sentences[b])
    assert res.base[j] == pytest.approx(base, rel=1e-9)
    off = perplexity(tiny_decoder, held.sentences[b], neurons=sel, language=a)
    assert res.after[LANGS.index(a), j] == pytest.approx(off, rel=1e-9)
    m = res.matrix()
    assert m.loc[a, b] == pytest.approx(off / base)
    assert res.matrix("difference").loc[a, b] == pytest.approx(off - base)
    ctrl = random_like(sel.index(a), sel.n_neurons, seed=1 + LANGS.index(a), exclude=sel.index(a))
    assert res.control[LANGS.index(a), j] == pytest.approx(perplexity(tiny_decoder, held.sentences[b], neurons=ctrl))
    assert list(res.n_neurons) == [len(sel.index(x)) for x in LANGS]
    back = PerplexityChange.load(res.save(tmp_path / "ppl.json"))
    assert np.allclose(back.after, res.after, equal_nan=True) and back.summary() == pytest.approx(res.summary(), nan_ok=True)


def test_perplexity_needs_a_causal_model(tiny_encoder, corpus):
    with pytest.raises(XlingProbeError, match="causal language model"):
        perplexity(tiny_encoder, ["hello"])


def test_steering_reports_shares_with_and_without_the_intervention(tiny_decoder, corpus, fitted):
    probs, sel = fitted
    # a target other than the prompts' language (steering en toward en is skipped by design)
    target = next(x for x in LANGS if x != "en" and len(sel.index(x)))
    prompts = {"en": list(corpus.sentences["en"][:3])}
    table = steering(tiny_decoder, prompts, sel, probs, targets=[target], max_new_tokens=4, detect=LANGS)
    row = table.iloc[0]
    assert (row.prompt_language, row.target, row.n) == ("en", target, 3)
    assert 0.0 <= row.share_steered <= 1.0 and 0.0 <= row.share_baseline <= 1.0
    assert all(not s.down._forward_pre_hooks for s in find_ffn(tiny_decoder))
