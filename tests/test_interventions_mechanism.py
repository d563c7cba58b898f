"""The intervention mechanism: exact identities, hand-run equivalence, hook removal, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xling_probe as xp
from xling_probe.errors import InterventionError
from xling_probe.interventions.mechanism import AddVector, MapToward, SetState, hooks_installed, intervene
from xling_probe.interventions.run import continuation_logprobs, encode, generate, logits, next_token_logprobs

PROMPTS = ["The cat sleeps on the sofa.", "Le chien court dans le jardin et", "Die Katze"]


def _ids(handle, text):
    ids = torch.as_tensor([encode(handle, [text])[0]])
    return ids, torch.ones_like(ids)


@pytest.fixture(scope="module")
def backends(sp_tokenizer):
    from tiny import tiny_gemma

    tl = xp.load_model(tiny_gemma(sp_tokenizer), tokenizer=sp_tokenizer, backend="transformer_lens", device="cpu")
    out = {"hf": xp.load_model(tl.model, tokenizer=sp_tokenizer, backend="hf", device="cpu"),
           "transformer_lens": tl}
    pytest.importorskip("nnsight")
    out["nnsight"] = xp.load_model(tl.model, tokenizer=sp_tokenizer, backend="nnsight", device="cpu")
    return out


@pytest.mark.parametrize("backend", ["hf", "transformer_lens", "nnsight"])
def test_zero_strength_and_self_patching_reproduce_the_logits_exactly(backends, backend):
    h = backends[backend]
    ids, mask = _ids(h, PROMPTS[0])
    base = logits(h, ids, mask)
    d = h.d_model
    rng = np.random.default_rng(0)
    for layer in (0, 1, h.n_blocks):
        with intervene(h, [AddVector(layer, vector=rng.standard_normal(d), alpha=0.0)]):
            assert torch.equal(logits(h, ids, mask), base)
        with intervene(h, [MapToward(layer, coef=rng.standard_normal((d, d)), intercept=rng.standard_normal(d),
                                     sigma=0.0)]):
            assert torch.equal(logits(h, ids, mask), base)
    # patching a run into itself: capture the states, write them back
    states = {}
    runner = xp.extraction.backends.make_runner(h, [1, 2])
    got = runner.run({"input_ids": ids, "attention_mask": mask}, lambda layer, x: x.detach().clone())
    states.update(got)
    T = ids.shape[1]
    with intervene(h, [SetState(2, positions=list(range(T)), values=states[2][0], prompt_length=T)]):
        assert torch.equal(logits(h, ids, mask), base)
    if backend != "transformer_lens":
        assert hooks_installed(h) == 0


def test_a_steering_vector_equals_adding_it_to_the_stored_state_and_running_the_rest_by_hand(tiny_gpt2_model):
    h = tiny_gpt2_model
    ids, mask = _ids(h, "The dog runs in the garden.")
    v = torch.as_tensor(np.random.default_rng(1).standard_normal(h.d_model), dtype=torch.float32)
    m = h.model.transformer
    with torch.inference_mode():
        x = m.wte(ids) + m.wpe(torch.arange(ids.shape[1])[None])
        for i, block in enumerate(m.h):
            if i == 1:
                x = x + 0.7 * v  # state 1 = the output of block 0
            x = block(x)[0] if isinstance(block(x), tuple) else block(x)
        by_hand = h.model.lm_head(m.ln_f(x))
    with intervene(h, [AddVector(1, vector=v, alpha=0.7)]):
        hooked = logits(h, ids, mask)
    torch.testing.assert_close(hooked, by_hand.float(), rtol=1e-5, atol=1e-5)
    assert (hooked - logits(h, ids, mask)).abs().max() > 1e-3  # the edit did something


def test_hooks_are_removed_after_an_exception(backends):
    h = backends["hf"]
    before = hooks_installed(h)
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(h, [AddVector(1, vector=np.ones(h.d_model)), AddVector(0, vector=np.ones(h.d_model))]):
            assert hooks_installed(h) > before
            raise RuntimeError("boom")
    assert hooks_installed(h) == before
    tl = backends["transformer_lens"]
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(tl, [AddVector(1, vector=np.ones(tl.d_model))]):
            raise RuntimeError("boom")
    ids, mask = _ids(tl, PROMPTS[1])
    torch.testing.assert_close(logits(tl, ids, mask), logits(backends["hf"], ids, mask), rtol=1e-4, atol=1e-4)


def test_the_same_steering_gives_the_same_numbers_on_both_backends(backends):
    v = np.random.default_rng(2).standard_normal(backends["hf"].d_model)
    res = {}
    for name, h in backends.items():
        edits = [AddVector(2, vector=v, alpha=1.5)]
        res[name] = (continuation_logprobs(h, PROMPTS[:2], [" le jardin", " der Garten"], edits=edits),
                     next_token_logprobs(h, PROMPTS, edits=edits))
    np.testing.assert_allclose(res["hf"][0], res["transformer_lens"][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(res["hf"][1], res["transformer_lens"][1], rtol=1e-3, atol=1e-3)
    # the nnsight handle runs the same torch modules: the same numbers to float rounding
    np.testing.assert_allclose(res["nnsight"][0], res["hf"][0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(res["nnsight"][1], res["hf"][1], rtol=1e-5, atol=1e-5)
    assert (res["hf"][1] - next_token_logprobs(backends["hf"], PROMPTS)).abs().max() > 1e-3


def test_a_remote_handle_is_refused_with_a_reason(backends):
    import dataclasses

    remote = dataclasses.replace(backends["nnsight"], remote=True)
    with pytest.raises(InterventionError, match="run on a local model"):
        next_token_logprobs(remote, PROMPTS, edits=[AddVector(1, vector=np.ones(remote.d_model))])


def test_generation_under_an_intervention_is_deterministic_under_a_seed(backends):
    h = backends["hf"]
    v = np.random.default_rng(3).standard_normal(h.d_model) * 3
    kw = dict(edits=[AddVector(1, vector=v, alpha=1.0)], max_new_tokens=6, do_sample=True, seed=11)
    a, b = generate(h, PROMPTS, **kw), generate(h, PROMPTS, **kw)
    assert a == b
    plain = generate(h, PROMPTS, max_new_tokens=6)
    steered = generate(h, PROMPTS, edits=[AddVector(1, vector=v * 20, alpha=1.0)], max_new_tokens=6)
    assert plain != steered


def test_batched_left_padded_scoring_equals_one_row_at_a_time(backends):
    h = backends["hf"]
    v = np.random.default_rng(4).standard_normal(h.d_model)
    conts = [" sur le canapé", " avec le chat", " schläft"]
    edits = [AddVector(1, vector=v, alpha=0.5)]
    together = continuation_logprobs(h, PROMPTS, conts, edits=edits, batch_size=3)
    alone = [continuation_logprobs(h, [p], [c], edits=edits, batch_size=1)[0] for p, c in zip(PROMPTS, conts)]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


def test_bad_edits_are_refused_with_what_to_change(backends):
    h = backends["hf"]
    ids, mask = _ids(h, PROMPTS[0])
    with pytest.raises(InterventionError, match=r"layer 9 is out of range: .* has states 0..3"):
        with intervene(h, [AddVector(9, vector=np.ones(h.d_model))]):
            pass
    with pytest.raises(InterventionError, match="residual stream at layer 2 non-finite"):
        with intervene(h, [AddVector(2, vector=np.ones(h.d_model), alpha=float("inf"))]):
            logits(h, ids, mask)
    T = ids.shape[1]
    with pytest.raises(InterventionError, match=r"positions \[40\] are outside the prompt of"):
        with intervene(h, [SetState(1, positions=[40], values=np.zeros((1, h.d_model)), prompt_length=T)]):
            logits(h, ids, mask)
    with pytest.raises(InterventionError, match="must have shape"):
        with intervene(h, [AddVector(1, vector=np.ones(3))]):
            logits(h, ids, mask)
    assert hooks_installed(h) == 0
