"""LAPE language neurons on tiny models: probabilities (brute force), tokens counted, entropy, selection, errors."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import xling_probe as xp
from xling_probe.errors import ModelLoadError, XlingProbeError
from xling_probe.neurons import (
    ActivationProbabilities,
    LanguageNeurons,
    activation_probabilities,
    find_ffn,
    lape_entropy,
    select_language_neurons,
)
from xling_probe.neurons.selection import kth_percentile

LANGS = ["en", "fr", "zh", "ru"]


@pytest.fixture(scope="module")
def corpus():
    return xp.ParallelCorpus.sample(languages=LANGS, n=24)


def brute_force(handle, texts, active="gate"):
    """Counts [block, neuron], tokens, sums: each sentence alone (no padding), every state captured in full."""
    sites = find_ffn(handle)
    counts = np.zeros((len(sites), sites[0].n_neurons), dtype=np.int64)
    sums = np.zeros(counts.shape)
    n_tokens = 0
    for text in texts:
        enc = handle.tokenizer(text, add_special_tokens=True, return_special_tokens_mask=True, return_tensors="pt")
        keep = ~enc["special_tokens_mask"][0].bool()
        seen_in, seen_act = {}, {}
        hooks = [s.down.register_forward_pre_hook(lambda m, a, l=s.layer: seen_in.__setitem__(l, a[0][0].clone()))
                 for s in sites]
        if active == "gate":
            hooks += [s.act.register_forward_hook(lambda m, a, o, l=s.layer: seen_act.__setitem__(l, o[0].clone()))
                      for s in sites if s.act is not None]
        with torch.no_grad():
            handle.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        for h in hooks:
            h.remove()
        for l in range(len(sites)):
            x = seen_in[l][keep].double().numpy()
            a = seen_act[l][keep].double().numpy() if (active == "gate" and sites[l].gated) else x
            counts[l] += (a > 0).sum(0)
            sums[l] += x.sum(0)
        n_tokens += int(keep.sum())
    return counts, n_tokens, sums


@pytest.mark.parametrize("family", ["tiny_decoder", "tiny_gpt2_model", "tiny_encoder"])
def test_probabilities_equal_a_brute_force_count(family, corpus, request):
    handle = request.getfixturevalue(family)
    probs = activation_probabilities(handle, corpus, batch_size=7, cache=False, progress=False)
    for g, lang in enumerate(LANGS):
        counts, n_tok, sums = brute_force(handle, corpus.sentences[lang])
        assert probs.tokens[g] == n_tok
        assert np.array_equal(probs.counts[g], counts)
        np.testing.assert_allclose(probs.sums[g], sums, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(probs.sel(lang, 1), counts[1] / n_tok)


def test_gate_and_input_criteria_differ_on_a_gated_ffn_and_agree_on_a_plain_one(tiny_decoder, tiny_gpt2_model, corpus):
    gate = activation_probabilities(tiny_decoder, corpus, cache=False, progress=False)
    inp = activation_probabilities(tiny_decoder, corpus, active="input", cache=False, progress=False)
    counts, _, _ = brute_force(tiny_decoder, corpus.sentences["en"], active="input")
    assert np.array_equal(inp.counts[0], counts)
    assert not np.array_equal(gate.counts, inp.counts)  # act(gate) > 0 is not act(gate) * up > 0
    a = activation_probabilities(tiny_gpt2_model, corpus, cache=False, progress=False)
    b = activation_probabilities(tiny_gpt2_model, corpus, active="input", cache=False, progress=False)
    assert np.array_equal(a.counts, b.counts)


def test_padding_and_special_tokens_are_never_counted(tiny_decoder, corpus):
    one = activation_probabilities(tiny_decoder, corpus, batch_size=1, cache=False, progress=False)
    many = activation_probabilities(tiny_decoder, corpus, batch_size=24, cache=False, progress=False)
    right = activation_probabilities(tiny_decoder, corpus, batch_size=24, padding_side="right", cache=False,
                                     progress=False)
    assert np.array_equal(one.counts, many.counts) and np.array_equal(one.counts, right.counts)
    np.testing.assert_allclose(one.sums, many.sums, rtol=1e-5, atol=1e-5)
    tok = tiny_decoder.tokenizer
    for g, lang in enumerate(LANGS):
        enc = tok(list(corpus.sentences[lang]), add_special_tokens=True, return_special_tokens_mask=True)
        expected = sum(len(ids) - sum(sp) for ids, sp in zip(enc["input_ids"], enc["special_tokens_mask"]))
        no_special = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in corpus.sentences[lang])
        assert one.tokens[g] == expected == no_special


def test_probabilities_are_cached_and_reused_per_language(tiny_decoder, corpus, monkeypatch):
    first = activation_probabilities(tiny_decoder, corpus, languages=["en", "fr"], progress=False)
    from xling_probe.neurons import probabilities as mod

    calls = []
    real = mod.count_texts
    monkeypatch.setattr(mod, "count_texts", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    again = activation_probabilities(tiny_decoder, corpus, languages=["en", "fr", "zh"], progress=False)
    assert calls == ["zh"]  # en and fr come from the cache
    assert np.array_equal(again.counts[:2], first.counts)


def test_save_and_load_round_trip(tiny_decoder, corpus, tmp_path):
    probs = activation_probabilities(tiny_decoder, corpus, cache=False, progress=False)
    back = ActivationProbabilities.load(probs.save(tmp_path / "p"))
    assert np.array_equal(back.counts, probs.counts) and back.languages == probs.languages
    sel = select_language_neurons(probs, fraction=0.05, min_tokens=10)
    again = LanguageNeurons.load(sel.save(tmp_path / "sel.json"))
    assert np.array_equal(again.selected, sel.selected) and again.overlap().equals(sel.overlap())


def test_entropy_matches_the_formula_on_a_hand_made_p():
    p = np.array([[0.5, 0.5, 0.0], [0.9, 0.0, 0.0], [0.2, 0.2, 0.2], [0.0, 0.0, 0.0], [0.3, 0.1, 0.0]])
    h = lape_entropy(p)
    assert h[0] == pytest.approx(np.log(2))
    assert h[1] == 0.0
    assert h[2] == pytest.approx(np.log(3))
    assert np.isnan(h[3])
    assert h[4] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))


def test_percentile_is_the_kth_smallest_value():
    values = np.arange(1, 101, dtype=float)[::-1]
    assert kth_percentile(values, 95) == 95.0 and kth_percentile(values, 0) == 1.0 and kth_percentile(values, 100) == 100.0


def hand_probabilities(p):
    """An ActivationProbabilities with ``p [language, layer, neuron]`` exactly (1000 tokens per language)."""
    counts = np.round(np.asarray(p) * 1000).astype(np.int64)
    return ActivationProbabilities("hand", tuple(f"l{k}" for k in range(counts.shape[0])),
                                   {f"l{k}": f"l{k}" for k in range(counts.shape[0])}, counts,
                                   np.full(counts.shape[0], 1000), np.zeros(counts.shape))


def test_selection_follows_the_recipe_on_hand_made_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 0.3, size=(3, 2, 50))  # 3 languages, 2 blocks, 50 neurons: all unspecific
    p[1, 0, 7] = 0.9  # specific to l1 (block 0 neuron 7)
    p[2, 1, 3] = 0.95  # specific to l2 ...
    p[0, 1, 3] = 0.9  # ... and l0 (shared)
    hand = hand_probabilities(p)
    sel = select_language_neurons(hand, fraction=0.02, filter_percentile=99, assign_percentile=99)
    assert sorted(map(tuple, sel.selected.tolist())) == [(0, 7), (1, 3)]
    assert {k: v.tolist() for k, v in sel.neurons("l1").items()} == {0: [7]}
    assert {k: v.tolist() for k, v in sel.neurons("l2").items()} == {1: [3]}
    assert sel.overlap().loc["l0", "l2"] == 1 and sel.overlap().loc["l1", "l2"] == 0
    assert sel.per_layer().loc[1, "l0"] == 1
    assert sel.thresholds["filter_value"] == kth_percentile(hand.probs, 99)


def test_no_neuron_selected_names_the_threshold_to_change():
    p = np.full((3, 1, 20), 0.5)  # every probability equal: nothing passes a strict filter
    with pytest.raises(XlingProbeError, match="lower filter_percentile"):
        select_language_neurons(hand_probabilities(p))
    q = np.random.default_rng(1).uniform(0.2, 0.3, size=(3, 1, 100))
    with pytest.raises(XlingProbeError, match="lower assign_percentile"):
        select_language_neurons(hand_probabilities(q), filter_percentile=50, assign_percentile=100)


def test_too_few_tokens_says_how_many_and_how_many_are_needed(tiny_decoder, corpus):
    probs = activation_probabilities(tiny_decoder, corpus.head(2), cache=False, progress=False)
    with pytest.raises(XlingProbeError, match=r"too few tokens .*en: \d+.*min_tokens=500"):
        select_language_neurons(probs, min_tokens=500)


def test_unlocatable_ffn_lists_the_paths_tried():
    model = nn.Module()
    model.config = SimpleNamespace(model_type="mystery")
    handle = SimpleNamespace(model=model, parts=SimpleNamespace(blocks=nn.ModuleList([nn.Linear(2, 2)])), remote=False)
    with pytest.raises(ModelLoadError, match=r"model type 'mystery'.*mlp\.down_proj.*mlp\.c_proj.*output\.dense"):
        find_ffn(handle)


@pytest.mark.parametrize("family", ["llama", "qwen2", "bert", "t5", "nllb"])
def test_ffn_found_in_other_families(family):
    from tiny_families import build

    model, tok = build(family)
    handle = xp.load_model(model, tokenizer=tok, device="cpu")
    sites = find_ffn(handle)
    assert len(sites) == handle.n_blocks and all(s.n_neurons == sites[0].n_neurons for s in sites)
    assert sites[0].gated == (family in ("llama", "qwen2"))


def plant_language_neuron(handle, corpus, language, block, neuron, strength=40.0):
    """A copy of a tiny Gemma whose neuron (block, neuron) fires exactly on the tokens only ``language`` uses.

    Every embedding gets +-strength along one direction u (+ for the tokens of ``language``'s sentences that no
    other language uses, - for all others), so the residual stream carries the sign in every block. Every
    projection that reads the residual stream (attention q/k/v, FFN gate/up) is made orthogonal to u as its
    norm weights it, so nothing else sees the sign, except the planted gate row, which reads only u.
    """
    model = copy.deepcopy(handle.model)
    tok = handle.tokenizer
    ids = {lang: {i for t in corpus.sentences[lang] for i in tok(t, add_special_tokens=False)["input_ids"]}
           for lang in corpus.languages}
    own = ids[language] - set().union(*(v for k, v in ids.items() if k != language))
    u = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    u /= u.norm()
    emb = model.get_input_embeddings().weight

    def blind(weight, norm):
        v = (1.0 + norm.weight) * u
        v /= v.norm()
        weight -= (weight @ v)[:, None] * v[None, :]
        return v

    with torch.no_grad():
        sign = torch.full((emb.shape[0],), -1.0)
        sign[sorted(own)] = 1.0
        emb += strength * sign[:, None] * u[None, :] / model.model.embed_tokens.embed_scale
        for l, layer in enumerate(model.model.layers):
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                blind(proj.weight, layer.input_layernorm)
            blind(layer.mlp.up_proj.weight, layer.pre_feedforward_layernorm)
            v = blind(layer.mlp.gate_proj.weight, layer.pre_feedforward_layernorm)
            if l == block:
                layer.mlp.gate_proj.weight[neuron] = 5.0 * v
    return xp.load_model(model, tokenizer=tok, device="cpu"), own


def test_a_planted_neuron_is_selected_for_exactly_its_language(tiny_decoder, corpus):
    planted, own = plant_language_neuron(tiny_decoder, corpus, "ru", block=2, neuron=5)
    assert own
    probs = activation_probabilities(planted, corpus, cache=False, progress=False)
    g = LANGS.index("ru")
    assert probs.probs[g, 2, 5] > 0.5 and probs.probs[:, 2, 5].sum() == probs.probs[g, 2, 5]
    # The planted neuron fires on 65% of the Russian tokens (those no other language uses), about the
    # 66th percentile of all probabilities of this random model: the thresholds are set below that.
    sel = select_language_neurons(probs, fraction=1 / (3 * 64), filter_percentile=60, assign_percentile=60,
                                  min_tokens=10)
    assert sel.selected.tolist() == [[2, 5]]
    assert sel.assigned.tolist() == [[lang == "ru" for lang in LANGS]]
    assert sel.entropy[0] == 0.0
