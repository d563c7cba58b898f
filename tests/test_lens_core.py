"""The lens itself: last layer = the model's logits, set probabilities, entropy, KL, rank, chunking."""

from __future__ import annotations

import math

import pytest
import torch

from xling_probe.errors import LensError
from xling_probe.lens import Lens, check_final_logits, lens_stats
from xling_probe.lens.core import encode, run_batches

TEXTS = ['Français: "fleur" - Deutsch: "Blume"\nFrançais: "livre" - Deutsch: "', "Der Hund läuft im Garten.",
         "猫在沙发上睡觉。"]


def states_of(model, texts, keep="all"):
    """Raw residual states of every layer for texts run one by one (no padding)."""
    layers = list(range(model.n_states))
    out = []
    for row in encode(model, texts):
        (_, inputs, states), = list(run_batches(model, [row], layers, keep=keep, batch_size=1))
        out.append((inputs, torch.stack([states[layer][0] for layer in layers])))
    return out


@pytest.mark.parametrize("fixture", ["tiny_decoder", "tiny_gpt2_model"])
def test_last_layer_reproduces_the_model_logits_at_every_position(fixture, request):
    model = request.getfixturevalue(fixture)
    lens = Lens(model)
    for inputs, resid in states_of(model, TEXTS):
        with torch.inference_mode():
            own = model.model(**inputs).logits[0].float()  # [T, V]
        ours = lens.logits(resid[-1])
        assert torch.allclose(ours, own, atol=1e-5, rtol=1e-5)
        if fixture == "tiny_decoder":
            assert own.abs().max() <= 30.0  # soft-capped at 30 by the model: we must cap the same way


def test_softcap_and_single_norm_are_what_make_it_match(sp_tokenizer):
    from tiny import tiny_gemma

    from xling_probe import load_model

    # a small cap (2.0) so that leaving it out changes the logits far beyond rounding
    model = load_model(tiny_gemma(sp_tokenizer, softcap=2.0), tokenizer=sp_tokenizer, device="cpu")
    lens = Lens(model)
    assert lens.softcap == 2.0
    rows = encode(model, TEXTS[:2])
    (_, inputs, states), = list(run_batches(model, rows, list(range(model.n_states)), batch_size=2))
    final = states[model.n_states - 1]
    assert check_final_logits(model, lens, inputs, final) < 1e-5
    assert float(lens.logits(final).abs().max()) <= 2.0
    with pytest.raises(LensError, match="final norm may be applied twice"):
        check_final_logits(model, lens, inputs, lens.normed(final))  # the norm applied twice
    lens.softcap = None
    with pytest.raises(LensError, match="does not reproduce"):
        check_final_logits(model, lens, inputs, final)


def reference(lens, resid, final, sets, rank_set):
    """Every statistic from the full float32 softmax, by the textbook formulas."""
    z = lens.logits(resid).double()  # [L, P, V]
    logp = torch.log_softmax(z, -1)
    p = logp.exp()
    logp_f = torch.log_softmax(lens.logits(final).double(), -1)  # [P, V]
    p_f = logp_f.exp()
    out = {
        "entropy_bits": -(p * logp).sum(-1) / math.log(2),
        "kl_bits": (p_f.unsqueeze(0) * (logp_f.unsqueeze(0) - logp)).sum(-1) / math.log(2),
        "sets": {name: torch.stack([p[:, j, list(ids)].sum(-1) for j, ids in enumerate(per)], 1)
                 for name, per in sets.items()},
    }
    best = torch.stack([z[:, j, list(ids)].max(-1).values for j, ids in enumerate(sets[rank_set])], 1)
    out["rank"] = 1 + (z > best.unsqueeze(-1)).sum(-1)
    out["top"] = torch.topk(p, 5, dim=-1)
    return out


def test_statistics_match_the_definitions(tiny_decoder):
    lens = Lens(tiny_decoder)
    (_, resid), = states_of(tiny_decoder, TEXTS[:1])
    n_pos = resid.shape[1]
    gen = torch.Generator().manual_seed(0)
    sets = {name: [torch.randperm(lens.vocab_size, generator=gen)[: 1 + j % 7].tolist() for j in range(n_pos)]
            for name in ("a", "b")}
    stats = lens_stats(lens, resid, resid[-1], sets=sets, rank_of="a", top_k=5, chunk_elements=1000)
    ref = reference(lens, resid, resid[-1], sets, "a")
    for name in sets:
        assert torch.allclose(stats.sets[name], ref["sets"][name], rtol=1e-5, atol=1e-9)
    assert torch.allclose(stats.entropy_bits, ref["entropy_bits"], atol=1e-4)
    assert torch.allclose(stats.kl_to_final_bits, ref["kl_bits"], atol=1e-4)
    assert torch.equal(stats.rank, ref["rank"])
    assert torch.equal(stats.top_ids, ref["top"].indices)
    assert torch.allclose(stats.top_probs.double(), ref["top"].values, rtol=1e-5)
    assert float(stats.kl_to_final_bits[-1].abs().max()) < 1e-5  # the final layer against itself
    # the whole vocabulary as one set has probability 1
    full = lens_stats(lens, resid[:2], sets={"all": [range(lens.vocab_size)] * n_pos}, chunk_elements=1000)
    assert torch.allclose(full.sets["all"], torch.ones_like(full.sets["all"]), atol=1e-6)


def test_rank_one_when_the_set_holds_the_top_token(tiny_decoder):
    lens = Lens(tiny_decoder)
    (_, resid), = states_of(tiny_decoder, TEXTS[1:2])
    top = lens.logits(resid).argmax(-1)  # [L, P]
    last = resid.shape[0] - 1
    sets = {"t": [[int(top[last, j])] for j in range(resid.shape[1])]}
    stats = lens_stats(lens, resid, sets=sets, rank_of="t", chunk_elements=700)
    assert (stats.rank[last] == 1).all()
    assert (stats.rank >= 1).all()


@pytest.mark.parametrize("fixture", ["tiny_decoder", "tiny_gpt2_model"])
def test_chunked_and_unchunked_agree(fixture, request):
    model = request.getfixturevalue(fixture)
    lens = Lens(model)
    (_, resid), = states_of(model, TEXTS[:1])
    sets = {"s": [[3, 50, 51, 400]] * resid.shape[1]}
    naive = lens_stats(lens, resid, resid[-1], sets=sets, rank_of="s", top_k=4, chunk_elements=None)
    for chunk in (257, 1000, 5000):
        chunked = lens_stats(lens, resid, resid[-1], sets=sets, rank_of="s", top_k=4, chunk_elements=chunk)
        assert torch.allclose(chunked.lse, naive.lse, rtol=1e-6)
        assert torch.allclose(chunked.sets["s"], naive.sets["s"], rtol=1e-5)
        assert torch.allclose(chunked.entropy_bits, naive.entropy_bits, atol=1e-5)
        assert torch.allclose(chunked.kl_to_final_bits, naive.kl_to_final_bits, atol=1e-5)
        assert torch.equal(chunked.rank, naive.rank)
        assert torch.equal(chunked.top_ids, naive.top_ids)


def test_left_padding_changes_nothing(tiny_decoder):
    lens = Lens(tiny_decoder)
    rows = encode(tiny_decoder, TEXTS)
    layers = list(range(tiny_decoder.n_states))
    (idx, _, batched), = list(run_batches(tiny_decoder, rows, layers, keep="last", batch_size=3))
    for b, k in enumerate(idx):
        (_, _, alone), = list(run_batches(tiny_decoder, [rows[k]], layers, keep="last", batch_size=1))
        for layer in layers:
            assert torch.allclose(lens.logits(batched[layer][b]), lens.logits(alone[layer][0]), atol=1e-4)


def test_encoder_gets_a_clear_error(tiny_encoder):
    with pytest.raises(LensError, match="encoder .*no causal unembedding"):
        Lens(tiny_encoder)


def test_bad_inputs(tiny_decoder):
    lens = Lens(tiny_decoder)
    (_, resid), = states_of(tiny_decoder, TEXTS[1:2])
    with pytest.raises(LensError, match="layers, positions, d_model"):
        lens_stats(lens, resid[0])
    with pytest.raises(LensError, match="non-empty"):
        lens_stats(lens, resid, sets={"s": [[]] * resid.shape[1]}, rank_of="s")
    with pytest.raises(LensError, match="entries for"):
        lens_stats(lens, resid, sets={"s": [[1]]})
    with pytest.raises(LensError, match="longer than the context"):
        encode(tiny_decoder, ["Hund " * 200])  # context 128
    with pytest.raises(LensError, match="ModelHandle"):
        Lens(tiny_decoder.model)
