"""Architecture coverage: every supported family, built tiny from config with a local tokenizer.

For each family the extracted states are checked against definitions, not against the code that
made them: the HF model's own ``output_hidden_states`` (raw states 0..L-1; the last after the final
norm where the model has one) pooled by an independent mean over real, non-special tokens; left
and right padding; a sentence alone vs. in a padded batch; the hf, nnsight and (where
TransformerLens has an adapter) transformer_lens backends against each other; and the logit lens
at the last layer against the model's own logits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tiny_families as tf
import xling_probe as xp
from xling_probe.errors import ExtractionError, LensError, ModelLoadError
from xling_probe.extraction.extract import extract_texts

warnings.filterwarnings("ignore", message=".*sacremoses.*")

TEXTS = {
    "en": ["The cat sleeps on the sofa.", "I like books and flowers very much, and the dog runs in the garden.", "Water"],
    "fr": ["Le chat dort sur le canapé.", "J'aime beaucoup les livres et les fleurs, et le chien court.", "Eau"],
}
SEQ2SEQ_STACKS = [(f, s) for f in tf.ENCODER_DECODERS for s in ("encoder", "decoder")]
CASES = [(f, None) for f in tf.DECODERS + tf.ENCODERS] + SEQ2SEQ_STACKS
IDS = [f if s is None else f"{f}-{s}" for f, s in CASES]
# Families whose positions come from the attention mask or are relative, so left padding changes nothing.
LEFT_PAD_SAFE = set(tf.DECODERS) | {"xlmr", "t5", "mt5", "m2m100", "nllb"}


@pytest.fixture(scope="module")
def built():
    cache: dict[str, tuple] = {}

    def get(family):
        if family not in cache:
            cache[family] = tf.build(family)
        return cache[family]
    return get


def _handle(built, family, stack, backend="hf"):
    model, tok = built(family)
    return xp.load_model(model, tokenizer=tok, device="cpu", backend=backend, stack=stack)


def _kwargs(handle, language="fr"):
    if handle.stack is None:
        return {}
    if handle.stack == "encoder":
        return {"language": language}
    return {"language": language, "sources": TEXTS["en"], "source_language": "en"}


def _reference(handle, language="fr"):
    """Pooled states from the model's own output_hidden_states, with an independent mean pooling."""
    model, tok = handle.model, handle.tokenizer
    tag = getattr(tok, "src_lang", None)
    rows = []
    with torch.inference_mode():
        for k, text in enumerate(TEXTS[language]):
            if handle.stack is None:
                enc = tok(text, return_tensors="pt", return_special_tokens_mask=True)
                out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
                states, special = out.hidden_states, enc["special_tokens_mask"][0]
            else:
                from xling_probe.extraction.seq2seq import language_tag

                src_lang = language if handle.stack == "encoder" else "en"
                src_text = text if handle.stack == "encoder" else TEXTS["en"][k]
                t = language_tag(tok, src_lang)
                if t is not None:
                    tok.src_lang = t.strip("_") if t.startswith("__") else t
                enc = tok(src_text, return_tensors="pt", return_special_tokens_mask=True)
                if tag is not None:
                    tok.src_lang = tag
                prefix = [model.generation_config.decoder_start_token_id]
                target_tag = language_tag(tok, language)
                if target_tag is not None:
                    prefix.append(tok.convert_tokens_to_ids(target_tag))
                body = tok(text, add_special_tokens=False)["input_ids"]
                dec = torch.tensor([prefix + body])
                out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], decoder_input_ids=dec,
                            output_hidden_states=True)
                if handle.stack == "encoder":
                    states, special = out.encoder_hidden_states, enc["special_tokens_mask"][0]
                else:
                    states = out.decoder_hidden_states
                    special = torch.tensor([1] * len(prefix) + [0] * len(body))
            keep = special == 0
            rows.append(torch.stack([h[0, keep].mean(0) for h in states]))
    return torch.stack(rows, 1).numpy()  # [layers, sentences, d]


@pytest.mark.parametrize("family,stack", CASES, ids=IDS)
def test_states_equal_the_models_own_hidden_states(built, family, stack):
    h = _handle(built, family, stack)
    layers = list(range(h.n_states))
    ours, _ = extract_texts(h, TEXTS["fr"], layers, **_kwargs(h), final_norm_last=True)
    ref = _reference(h)
    assert ours.shape == ref.shape == (h.n_states, 3, h.d_model)
    # States 0..L-1 are raw in both; HF's last state is after the final norm where the stack has one,
    # and final_norm_last applies the same norm per token before pooling.
    np.testing.assert_allclose(ours[:-1], ref[:-1], rtol=1e-5, atol=1e-5)
    if h.stack == "encoder":
        # Encoder stacks: the extraction's last state is the raw block output; HF's is after the
        # encoder's final norm for pre-norm stacks (T5, M2M100, mBART) and the same for post-norm ones.
        raw, _ = extract_texts(h, TEXTS["fr"], [h.n_states - 1], **_kwargs(h))
        np.testing.assert_allclose(ours[-1], raw[0], rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_allclose(ours[-1], ref[-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family,stack", CASES, ids=IDS)
def test_nnsight_backend_equals_hf(built, family, stack):
    h = _handle(built, family, stack)
    n = _handle(built, family, stack, backend="nnsight")
    layers = list(range(h.n_states))
    a, _ = extract_texts(h, TEXTS["fr"], layers, **_kwargs(h))
    b, _ = extract_texts(n, TEXTS["fr"], layers, **_kwargs(n))
    rel = np.abs(a - b).max() / np.abs(a).max()
    assert rel < 1e-5


@pytest.mark.parametrize("family", ["gemma3", "gpt2", "llama", "qwen2"])
def test_transformer_lens_backend_equals_hf_where_it_has_an_adapter(built, family):
    model, tok = built(family)
    hf = xp.load_model(model, tokenizer=tok, device="cpu")
    tl = xp.load_model(hf, backend="transformer_lens", device="cpu")  # a copy: the bridge switches attention
    # Compare on the same attention implementation (the bridge runs eager attention).
    hf_eager = xp.load_model(tl.model, tokenizer=tok, device="cpu")
    layers = list(range(hf.n_states))
    a, _ = extract_texts(hf_eager, TEXTS["en"], layers)
    b, _ = extract_texts(tl, TEXTS["en"], layers)
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5


@pytest.mark.parametrize("family,stack", CASES, ids=IDS)
def test_padding_side_and_batch_company_do_not_change_a_sentence(built, family, stack):
    h = _handle(built, family, stack)
    layers = list(range(h.n_states))
    right, _ = extract_texts(h, TEXTS["fr"], layers, padding_side="right", **_kwargs(h))
    alone = np.stack([extract_texts(h, [TEXTS["fr"][k]], layers, **{
        **_kwargs(h), **({"sources": [TEXTS["en"][k]]} if h.stack == "decoder" else {})})[0][:, 0] for k in range(3)], 1)
    np.testing.assert_allclose(right, alone, rtol=1e-5, atol=1e-5)
    left, _ = extract_texts(h, TEXTS["fr"], layers, padding_side="left", **_kwargs(h))
    if family in LEFT_PAD_SAFE:
        np.testing.assert_allclose(left, right, rtol=1e-4, atol=1e-5)
    else:
        # Absolute positions counted from the first column (BERT, mBART, Marian): left padding shifts
        # them, so the default for these stacks must be right padding.
        default, _ = extract_texts(h, TEXTS["fr"], layers, **_kwargs(h))
        np.testing.assert_array_equal(default, right)


@pytest.mark.parametrize("family", tf.DECODERS + tf.ENCODER_DECODERS)
@pytest.mark.parametrize("backend", ["hf", "nnsight"])
def test_logit_lens_reproduces_the_models_own_logits_at_the_last_layer(built, family, backend):
    from xling_probe.lens.core import Lens, check_final_logits, encode, run_batches

    h = _handle(built, family, "decoder" if family in tf.ENCODER_DECODERS else None, backend=backend)
    lens = Lens(h)
    rows = encode(h, TEXTS["en"])
    for _idx, inputs, states in run_batches(h, rows, [h.n_states - 1], batch_size=3):
        diff = check_final_logits(h, lens, inputs, states[h.n_states - 1])
        assert diff < 1e-4


def test_the_lens_refuses_an_encoder_stack_and_names_the_decoder(built):
    h = _handle(built, "m2m100", "encoder")
    from xling_probe.lens.core import Lens

    with pytest.raises(LensError, match="stack='decoder'"):
        Lens(h)


@pytest.mark.parametrize("family", ["m2m100", "nllb", "mbart"])
def test_language_tags_come_from_corpus_codes(built, family):
    from xling_probe.extraction.seq2seq import language_tag, tokenize_source

    _, tok = built(family)
    for iso in ("en", "fr", "de", "zh"):
        tag = language_tag(tok, iso)
        assert tok.convert_tokens_to_ids(tag) == tf.lang_tag_id(tok, family, iso)
        ids = tokenize_source(tok, ["Le chat dort."], iso, 64).ids[0]
        assert ids[0] == tf.lang_tag_id(tok, family, iso)
    # Other spellings of the same language find the same tag.
    assert language_tag(tok, "fra_Latn") == language_tag(tok, "fra") == language_tag(tok, "fr")
    with pytest.raises(ExtractionError, match="no language tag for 'tlh'"):
        language_tag(tok, "tlh")


def test_tagless_families_have_no_tags(built):
    from xling_probe.extraction.seq2seq import language_tag

    for family in ("t5", "mt5", "marian"):
        assert language_tag(built(family)[1], "fr") is None


def test_decoder_tag_only_input_pools_the_prefix(built):
    h = _handle(built, "nllb", "decoder")
    tagged, _ = extract_texts(h, TEXTS["fr"], [1], decoder_input="tag", **_kwargs(h))
    # With only the start token and the tag, every sentence's decoder states depend on the source only.
    assert np.isfinite(tagged).all() and tagged.shape == (1, 3, h.d_model)
    other, _ = extract_texts(h, TEXTS["en"], [1], decoder_input="tag", **_kwargs(h))
    np.testing.assert_array_equal(tagged, other)  # the target text is not read with decoder_input="tag"
    with pytest.raises(ExtractionError, match="decoder_input"):
        extract_texts(h, TEXTS["fr"], [1], decoder_input="both", **_kwargs(h))


def test_extract_on_a_seq2seq_model_end_to_end(built):
    corpus = xp.ParallelCorpus.from_columns(["s1", "s2", "s3"], {"en": TEXTS["en"], "fr": TEXTS["fr"]})
    enc = _handle(built, "m2m100", "encoder")
    acts = xp.extract(enc, corpus, progress=False)
    assert acts.meta["stack"] == "encoder" and acts.data.shape[:3] == (enc.n_states, 2, 3)
    res = xp.similarity(acts, metrics=["cka"], pairs=[("en", "fr")], null_permutations=0, bootstrap=0)
    assert np.isfinite(res.value[0, :, 0, 1]).all()
    dec = _handle(built, "m2m100", "decoder")
    acts_dec = xp.extract(dec, corpus, progress=False)
    assert acts_dec.meta["source_language"] == "en" and acts_dec.meta["decoder_input"] == "translation"
    # The cache key holds the stack: the decoder states are not the encoder's.
    assert not np.allclose(acts_dec.data, acts.data)


def test_unknown_architecture_says_which_parts_were_not_found():
    from transformers import PretrainedConfig

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = PretrainedConfig()
            self.stem = torch.nn.Linear(4, 4)

    with pytest.raises(ModelLoadError, match=r"cannot find the transformer blocks of Odd.*top-level modules are: stem"):
        xp.load_model(Odd(), tokenizer=tf.tokenizer("gpt2"), device="cpu")


def test_stack_on_a_one_stack_model_is_refused(built):
    with pytest.raises(ModelLoadError, match="encoder-decoder"):
        _handle(built, "llama", "decoder")
    with pytest.raises(ModelLoadError, match="unknown stack"):
        _handle(built, "t5", "middle")


@pytest.mark.parametrize("family", ["m2m100", "t5"])
def test_language_drift_runs_on_the_decoder_stack_with_the_target_tag(built, family):
    from xling_probe.lens.drift import _decoder_prefix

    h = _handle(built, family, "decoder")
    n = _handle(built, family, "decoder", backend="nnsight")
    prefix = _decoder_prefix(h, "de")
    assert prefix[0] == h.model.generation_config.decoder_start_token_id
    if family == "m2m100":
        assert prefix == [prefix[0], h.tokenizer.get_lang_id("de")]  # the target language is forced
    else:
        assert len(prefix) == 1  # T5 has no language tags
    a = xp.language_drift(h, source="fr", target="de", limit=4, shots=1, progress=False)
    b = xp.language_drift(n, source="fr", target="de", limit=4, shots=1, progress=False)
    np.testing.assert_allclose(a.curve("p_target"), b.curve("p_target"), rtol=1e-5)
    assert len(a.curve("p_target")) == h.n_states


def test_the_decoder_stack_cache_is_keyed_by_the_source_sentences(built):
    dec = _handle(built, "m2m100", "decoder")
    one = xp.ParallelCorpus.from_columns(["a", "b", "c"], {"en": TEXTS["en"], "fr": TEXTS["fr"]})
    other = xp.ParallelCorpus.from_columns(["a", "b", "c"], {"en": TEXTS["en"][::-1], "fr": TEXTS["fr"]})
    a = xp.extract(dec, one, languages=["fr"], progress=False).data
    b = xp.extract(dec, other, languages=["fr"], progress=False).data
    fresh = xp.extract(dec, other, languages=["fr"], progress=False, cache=False).data
    np.testing.assert_array_equal(b, fresh)  # not the first corpus's cached states
    assert not np.array_equal(a, b)
