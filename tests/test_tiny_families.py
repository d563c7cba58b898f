"""The tiny model factories of tests/tiny_families.py: forward, save/reload, language tags."""

from __future__ import annotations

import warnings

import pytest
import torch

from tiny_families import (
    DECODERS, ENCODER_DECODERS, FAMILIES, KIND, LANG_TAGS, auto_model_class, build, lang_tag_id, save_family,
    src_lang_value, vocab_size_for,
)

SENTENCES = ["The cat sleeps on the sofa.", "Le chien court dans le jardin et le chat dort."]
LANGS = ["en", "fr"]
EXPECTED_CLASSES = {
    "llama": ("LlamaForCausalLM", "LlamaTokenizer"),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Tokenizer"),
    "gemma3": ("Gemma3ForCausalLM", None),
    "gpt2": ("GPT2LMHeadModel", None),
    "bert": ("BertModel", "BertTokenizer"),
    "xlmr": ("XLMRobertaModel", None),
    "t5": ("T5ForConditionalGeneration", "T5Tokenizer"),
    "mt5": ("MT5ForConditionalGeneration", "T5Tokenizer"),
    "m2m100": ("M2M100ForConditionalGeneration", "M2M100Tokenizer"),
    "nllb": ("M2M100ForConditionalGeneration", "NllbTokenizer"),
    "mbart": ("MBartForConditionalGeneration", "MBart50Tokenizer"),
    "marian": ("MarianMTModel", "MarianTokenizer"),
}


def _batch(family, tok):
    """A padded batch of an English and a French sentence (tagged per language where the family tags)."""
    if family in LANG_TAGS:
        rows = []
        for text, lang in zip(SENTENCES, LANGS):
            tok.src_lang = src_lang_value(family, lang)
            rows.append(tok(text)["input_ids"])
        enc = tok.pad({"input_ids": rows}, return_tensors="pt")
    else:
        enc = tok(SENTENCES, padding=True, return_tensors="pt")
    enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    assert enc["attention_mask"].sum(1).tolist()[0] != enc["attention_mask"].sum(1).tolist()[1]  # really padded
    if KIND[family] == "encoder-decoder":
        start = torch.full((2, 1), model_start(family, tok), dtype=torch.long)
        enc["decoder_input_ids"] = torch.cat([start, enc["input_ids"][:, :3]], dim=1)
    return enc


def model_start(family, tok):
    return {"t5": tok.pad_token_id, "mt5": tok.pad_token_id, "marian": tok.pad_token_id}.get(family, tok.eos_token_id)


def _outputs(model, enc):
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    main = out.logits if hasattr(out, "logits") else out.last_hidden_state
    hidden = out.decoder_hidden_states if getattr(out, "decoder_hidden_states", None) is not None else out.hidden_states
    return main, hidden, out


@pytest.mark.parametrize("family", FAMILIES)
def test_family_builds_runs_and_reloads(family, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    model, tok = build(family, seed=0)
    model_cls, tok_cls = EXPECTED_CLASSES[family]
    assert type(model).__name__ == model_cls
    if tok_cls:
        assert type(tok).__name__ == tok_cls
    cfg = model.config
    assert cfg.hidden_size == 32 and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert cfg.vocab_size >= vocab_size_for(tok, pad_to=1)
    if KIND[family] == "encoder-decoder":
        layers = (cfg.num_layers, cfg.num_decoder_layers) if family in ("t5", "mt5") else (cfg.encoder_layers, cfg.decoder_layers)
        assert layers == (2, 2)
        assert cfg.decoder_start_token_id == model_start(family, tok)
        assert cfg.pad_token_id == tok.pad_token_id and cfg.eos_token_id == tok.eos_token_id
    else:
        assert cfg.num_hidden_layers == 2

    enc = _batch(family, tok)
    assert int(enc["input_ids"].max()) < cfg.vocab_size
    main, hidden, _ = _outputs(model, enc)
    assert torch.isfinite(main).all()
    assert len(hidden) == 3  # embeddings + 2 layers (decoder side for encoder-decoders)

    # same seed, same weights
    again, _ = build(family, seed=0)
    assert torch.equal(_outputs(again, enc)[0], main)

    folder = save_family(family, tmp_path / family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg2 = AutoConfig.from_pretrained(folder, local_files_only=True)
        model2 = auto_model_class(family).from_pretrained(folder, local_files_only=True).eval()
        tok2 = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert type(cfg2) is type(cfg)
    assert type(model2) is type(model)
    assert type(tok2) is type(tok)
    enc2 = _batch(family, tok2)
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(enc2[key], enc[key]), key
    assert torch.equal(_outputs(model2, enc2)[0], main)  # atol 0


@pytest.mark.parametrize("family", sorted(LANG_TAGS))
def test_source_language_tag_is_the_prefix(family):
    _, tok = build(family)
    assert set(LANG_TAGS[family]) >= {"en", "fr", "de", "es", "zh", "ru"}
    ids = {lang: lang_tag_id(tok, family, lang) for lang in LANG_TAGS[family]}
    assert len(set(ids.values())) == len(ids) and tok.unk_token_id not in ids.values()
    for lang, tag in LANG_TAGS[family].items():
        assert tok.convert_tokens_to_ids(tag) == ids[lang]
        tok.src_lang = src_lang_value(family, lang)
        row = tok("Le chat dort.")["input_ids"]
        assert row[0] == ids[lang] and row[-1] == tok.eos_token_id
        assert tok.convert_ids_to_tokens(row[0]) == tag
    if family == "m2m100":
        assert tok.get_lang_id("fr") == tok.convert_tokens_to_ids("__fr__")
    tok.tgt_lang = src_lang_value(family, "de")
    target = tok(text_target="Die Katze schläft.")["input_ids"]
    assert target[0] == ids["de"] and target[-1] == tok.eos_token_id


def test_forced_bos_is_the_target_tag():
    for family in LANG_TAGS:
        model, tok = build(family)
        assert model.generation_config.forced_bos_token_id == lang_tag_id(tok, family, "fr")
        assert model.config.decoder_start_token_id == tok.eos_token_id == 2


@pytest.mark.parametrize("family", ["t5", "mt5", "marian"])
def test_untagged_seq2seq_specials(family):
    _, tok = build(family)
    row = tok("Le chat dort.")["input_ids"]
    assert row[-1] == tok.eos_token_id and tok.eos_token_id not in row[:-1]
    if family != "marian":
        assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    else:
        assert (tok.eos_token_id, tok.unk_token_id, tok.pad_token_id) == (0, 1, len(tok) - 1)


def test_decoder_bos_conventions():
    bos = {family: build(family)[1]("Le chat dort.")["input_ids"][0] for family in DECODERS}
    _, llama = build("llama")
    _, qwen = build("qwen2")
    assert bos["llama"] == llama.bos_token_id
    assert qwen.bos_token_id is None and bos["qwen2"] != qwen.eos_token_id
    assert set(ENCODER_DECODERS) | set(DECODERS) <= set(FAMILIES)


def test_unknown_family():
    with pytest.raises(KeyError):
        build("nope")
