"""Tiny randomly initialised models of many Hugging Face families, with locally trained tokenizers.

Nothing is downloaded: every tokenizer is trained here on ``tiny.TRAIN_TEXT`` (``tokenizers`` for the
tokenizers-backed classes, ``sentencepiece`` for the classes that read a ``.model`` file) and every model
is built from its config (hidden 32, 2 layers, 2 heads, float32, eval mode, ``torch.manual_seed(seed)``).

    model, tokenizer = build("nllb", seed=0)
    folder = save_family("nllb", tmp_path / "nllb")   # reloads with AutoConfig/AutoModel*/AutoTokenizer

Families (``FAMILIES``) and the classes they use (transformers 5.x):

=========  ================================  ===========================================  =================
family     model                             tokenizer                                    language tag
=========  ================================  ===========================================  =================
llama      LlamaForCausalLM                  LlamaTokenizer (Metaspace BPE, byte fallback) -
qwen2      Qwen2ForCausalLM                  Qwen2Tokenizer (byte-level BPE, no BOS)      -
gemma3     Gemma3ForCausalLM                 tiny.sentencepiece_tokenizer() (BOS)         -
gpt2       GPT2LMHeadModel                   tiny.byte_bpe_tokenizer()                    -
bert       BertModel                         BertTokenizer(Fast) from a vocab.txt         -
xlmr       XLMRobertaModel                   tiny.sentencepiece_tokenizer("encoder")      -
t5         T5ForConditionalGeneration        T5Tokenizer (pad=0, eos=1, unk=2)            -
mt5        MT5ForConditionalGeneration       T5Tokenizer                                  -
m2m100     M2M100ForConditionalGeneration    M2M100Tokenizer (slow, sentencepiece)        ``__fr__`` prefix
nllb       M2M100ForConditionalGeneration    NllbTokenizer(Fast)                          ``fra_Latn`` prefix
mbart      MBartForConditionalGeneration     MBart50Tokenizer(Fast)                       ``fr_XX`` prefix
marian     MarianMTModel (en -> fr)          MarianTokenizer (slow, source/target.spm)    -
=========  ================================  ===========================================  =================

Tagged families put the *source* tag first and ``</s>`` last: ``[tag] tokens </s>``.  For M2M100 one sets
``tok.src_lang = "fr"`` (the ISO code); for NLLB and mBART-50 one sets ``tok.src_lang = "fra_Latn"`` /
``"fr_XX"`` (the tag itself).  ``LANG_TAGS[family][iso]`` gives the tag, ``src_lang_value`` the value to
assign to ``src_lang``.  Decoder start: M2M100/NLLB/mBART use ``</s>`` (id 2) and force the target tag as
the first generated token (``generation_config.forced_bos_token_id``, set here to the default target
language, French); T5/mT5 start with ``<pad>`` (0); Marian starts with ``<pad>`` (its last id).
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import torch

from tiny import TRAIN_TEXT, _texts, byte_bpe_tokenizer, sentencepiece_tokenizer, tiny_gemma, tiny_gpt2, tiny_xlmr

FAMILIES = ("llama", "qwen2", "gemma3", "gpt2", "bert", "xlmr", "t5", "mt5", "m2m100", "nllb", "mbart", "marian")
DECODERS = ("llama", "qwen2", "gemma3", "gpt2")
ENCODERS = ("bert", "xlmr")
ENCODER_DECODERS = ("t5", "mt5", "m2m100", "nllb", "mbart", "marian")
KIND = {f: "decoder" for f in DECODERS} | {f: "encoder" for f in ENCODERS} | {f: "encoder-decoder" for f in ENCODER_DECODERS}

# ISO 639-1 code -> the family's language tag (only families that tag languages).
LANG_TAGS: dict[str, dict[str, str]] = {
    "m2m100": {c: f"__{c}__" for c in ("en", "fr", "de", "es", "zh", "ru", "ja", "ko", "ar", "hi")},
    "nllb": {
        "en": "eng_Latn", "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn", "zh": "zho_Hans",
        "ru": "rus_Cyrl", "ja": "jpn_Jpan", "ko": "kor_Hang", "ar": "arb_Arab", "hi": "hin_Deva",
    },
    "mbart": {
        "en": "en_XX", "fr": "fr_XX", "de": "de_DE", "es": "es_XX", "zh": "zh_CN",
        "ru": "ru_RU", "ja": "ja_XX", "ko": "ko_KR", "ar": "ar_AR", "hi": "hi_IN",
    },
}
DEFAULT_SRC, DEFAULT_TGT = "en", "fr"
MARIAN_PAIR = ("en", "fr")

_FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def src_lang_value(family: str, iso: str) -> str:
    """What to assign to ``tokenizer.src_lang`` / ``tgt_lang`` for a language (M2M100 wants the bare code)."""
    return iso if family == "m2m100" else LANG_TAGS[family][iso]


def lang_tag_id(tokenizer, family: str, iso: str) -> int:
    """The id of the family's tag for ``iso``."""
    if family == "m2m100":
        return tokenizer.get_lang_id(iso)
    return tokenizer.convert_tokens_to_ids(LANG_TAGS[family][iso])


@functools.lru_cache(maxsize=None)
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tiny-families-"))


# ----------------------------------------------------------------------------- tokenizer training


@functools.lru_cache(maxsize=None)
def _spm_model(layout: str) -> Path:
    """A tiny SentencePiece unigram model (byte fallback) written into the work folder.

    ``fairseq``: <s>=0 <pad>=1 </s>=2 <unk>=3 (M2M100); ``marian``: </s>=0 <unk>=1, no BOS/PAD.
    """
    import sentencepiece as spm

    ids = {"fairseq": dict(bos_id=0, pad_id=1, eos_id=2, unk_id=3), "marian": dict(eos_id=0, unk_id=1, bos_id=-1, pad_id=-1)}
    prefix = _workdir() / f"spm-{layout}"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_texts()), model_prefix=str(prefix), vocab_size=600, model_type="unigram",
        character_coverage=1.0, byte_fallback=True, hard_vocab_limit=False, max_sentencepiece_length=8,
        num_threads=1, minloglevel=2, **ids[layout],
    )
    return prefix.with_suffix(".model")


def _spm_vocab_json(model_file: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    """vocab.json mapping every piece of the model to its id (then ``extra`` tokens appended)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    for token in extra:
        vocab.setdefault(token, len(vocab))
    path = _workdir() / name
    path.write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")
    return path


def _train_unigram(specials: list[str], vocab_size: int = 600) -> list[tuple[str, float]]:
    """A Metaspace unigram vocabulary, ``specials`` first (ids 0..), as (piece, score) pairs."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", max_piece_length=8)
    tok.train_from_iterator(_texts(), trainer=trainer)
    vocab = [(str(p), float(s)) for p, s in json.loads(tok.to_str())["model"]["vocab"]]
    assert [p for p, _ in vocab[: len(specials)]] == specials, vocab[: len(specials)]
    return vocab


def _train_bpe(specials: list[str], *, byte_level: bool, vocab_size: int = 700, extra_alphabet=()) -> tuple[dict, list]:
    """A BPE (vocab, merges) pair; Metaspace (``▁``) or byte-level (``Ġ``) pre-tokenisation."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials + list(extra_alphabet), initial_alphabet=alphabet)
    tok.train_from_iterator(_texts(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


@functools.lru_cache(maxsize=None)
def _tokenizer(family: str):
    if family == "gemma3":
        return sentencepiece_tokenizer("decoder")
    if family == "xlmr":
        return sentencepiece_tokenizer("encoder")
    if family == "gpt2":
        return byte_bpe_tokenizer()
    if family == "llama":
        from transformers import LlamaTokenizer

        byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
        vocab, merges = _train_bpe(["<unk>", "<s>", "</s>"], byte_level=False, vocab_size=900, extra_alphabet=byte_tokens)
        tok = LlamaTokenizer(vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                             add_bos_token=True, add_eos_token=False)
        tok.pad_token = "</s>"  # Llama has no pad token; the usual workaround
        return tok
    if family == "qwen2":
        from transformers import Qwen2Tokenizer

        vocab, merges = _train_bpe(["<|endoftext|>"], byte_level=True)
        return Qwen2Tokenizer(vocab=vocab, merges=merges)
    if family == "bert":
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
        from transformers import BertTokenizerFast
        from transformers.models.bert.tokenization_bert import load_vocab

        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        wp.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=True)
        wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        wp.train_from_iterator(_texts(), trainer=trainers.WordPieceTrainer(vocab_size=700, special_tokens=specials))
        vocab = wp.get_vocab()
        vocab_txt = _workdir() / "bert-vocab.txt"
        vocab_txt.write_text("".join(t + "\n" for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])), encoding="utf-8")
        return BertTokenizerFast(vocab=dict(load_vocab(str(vocab_txt))), do_lower_case=False, strip_accents=False)
    if family in ("t5", "mt5"):
        from transformers import T5Tokenizer

        vocab = _train_unigram(["<pad>", "</s>", "<unk>"])
        return T5Tokenizer(vocab=vocab, extra_ids=0)
    if family == "m2m100":
        from transformers import M2M100Tokenizer

        model_file = _spm_model("fairseq")
        return M2M100Tokenizer(
            vocab_file=str(_spm_vocab_json(model_file, "m2m100-vocab.json")), spm_file=str(model_file),
            src_lang=DEFAULT_SRC, tgt_lang=DEFAULT_TGT,
        )
    if family == "nllb":
        from transformers import NllbTokenizerFast

        vocab, merges = _train_bpe(list(_FAIRSEQ_SPECIALS), byte_level=False)
        return NllbTokenizerFast(vocab=vocab, merges=merges, src_lang=LANG_TAGS["nllb"][DEFAULT_SRC],
                                 tgt_lang=LANG_TAGS["nllb"][DEFAULT_TGT])
    if family == "mbart":
        from transformers import MBart50TokenizerFast

        # SentencePiece order (<unk>, <s>, </s>, pieces): the class reorders it to fairseq's.
        vocab = _train_unigram(["<unk>", "<s>", "</s>"])
        return MBart50TokenizerFast(vocab=vocab, src_lang=LANG_TAGS["mbart"][DEFAULT_SRC],
                                    tgt_lang=LANG_TAGS["mbart"][DEFAULT_TGT])
    if family == "marian":
        import warnings

        from transformers import MarianTokenizer

        model_file = _spm_model("marian")
        vocab_json = _spm_vocab_json(model_file, "marian-vocab.json", extra=("<pad>",))  # pad = last id
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
            return MarianTokenizer(source_spm=str(model_file), target_spm=str(model_file), vocab=str(vocab_json),
                                   source_lang=MARIAN_PAIR[0], target_lang=MARIAN_PAIR[1])
    raise KeyError(f"unknown family {family!r}; expected one of {FAMILIES}")


def tokenizer(family: str):
    """A fresh copy of the family's tokenizer (trained once per process)."""
    import copy
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
        return copy.deepcopy(_tokenizer(family))


def vocab_size_for(tok, pad_to: int = 8) -> int:
    """Covers every id the tokenizer can emit (added/language tokens included), padded up to a multiple of ``pad_to``."""
    ids = [len(tok)] + [i + 1 for i in tok.get_vocab().values()]
    lang_ids = getattr(tok, "lang_token_to_id", None)  # M2M100: language ids follow the encoder, not in get_vocab()
    if lang_ids:
        ids.append(max(lang_ids.values()) + 1 + getattr(tok, "num_madeup_words", 0))
    n = max(ids)
    return (n + pad_to - 1) // pad_to * pad_to


# ----------------------------------------------------------------------------- models


def _decoder_ids(tok) -> dict:
    return dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def _model(family: str, tok, seed: int):
    import transformers as tf

    torch.manual_seed(seed)
    v = vocab_size_for(tok)
    small = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                 encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128)
    if family == "gemma3":
        return tiny_gemma(tok, seed=seed, layers=2)
    if family == "gpt2":
        return tiny_gpt2(tok, seed=seed)
    if family == "xlmr":
        return tiny_xlmr(tok, seed=seed)
    if family == "llama":
        cfg = tf.LlamaConfig(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=128,
                             **_decoder_ids(tok))
        model = tf.LlamaForCausalLM(cfg)
    elif family == "qwen2":
        cfg = tf.Qwen2Config(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                             tie_word_embeddings=True, **_decoder_ids(tok))
        model = tf.Qwen2ForCausalLM(cfg)
    elif family == "bert":
        cfg = tf.BertConfig(vocab_size=v, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
        model = tf.BertModel(cfg)
    elif family in ("t5", "mt5"):
        cls_cfg, cls_model = ((tf.T5Config, tf.T5ForConditionalGeneration) if family == "t5"
                              else (tf.MT5Config, tf.MT5ForConditionalGeneration))
        extra = {} if family == "t5" else dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)
        cfg = cls_cfg(vocab_size=v, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                      relative_attention_num_buckets=8, relative_attention_max_distance=128,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      decoder_start_token_id=tok.pad_token_id, **extra)
        model = cls_model(cfg)
    elif family in ("m2m100", "nllb"):
        cfg = tf.M2M100Config(vocab_size=v, **small, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id)
        model = tf.M2M100ForConditionalGeneration(cfg)
    elif family == "mbart":
        # MBart50Tokenizer defines no bos_token; <s> (id 0) is its cls_token.
        cfg = tf.MBartConfig(vocab_size=v, **small, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
                             eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id,
                             forced_eos_token_id=tok.eos_token_id, scale_embedding=True)
        model = tf.MBartForConditionalGeneration(cfg)
    elif family == "marian":
        cfg = tf.MarianConfig(vocab_size=v, decoder_vocab_size=v, **small, pad_token_id=tok.pad_token_id,
                              eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
                              forced_eos_token_id=tok.eos_token_id, bos_token_id=None, scale_embedding=True)
        model = tf.MarianMTModel(cfg)
    else:
        raise KeyError(f"unknown family {family!r}; expected one of {FAMILIES}")
    gen = getattr(model, "generation_config", None)
    if gen is not None and family in LANG_TAGS:
        gen.forced_bos_token_id = lang_tag_id(tok, family, DEFAULT_TGT)
    if gen is not None and KIND[family] == "encoder-decoder":
        gen.decoder_start_token_id = model.config.decoder_start_token_id
        gen.pad_token_id, gen.eos_token_id = model.config.pad_token_id, model.config.eos_token_id
    return model.float().eval()


def build(family: str, seed: int = 0):
    """(model, tokenizer) for a family: tiny, seeded, float32, eval mode."""
    if family not in FAMILIES:
        raise KeyError(f"unknown family {family!r}; expected one of {FAMILIES}")
    tok = tokenizer(family)
    return _model(family, tok, seed), tok


def auto_model_class(family: str):
    """The Auto class that reloads a saved family."""
    import transformers as tf

    return {"decoder": tf.AutoModelForCausalLM, "encoder": tf.AutoModel,
            "encoder-decoder": tf.AutoModelForSeq2SeqLM}[KIND[family]]


def save_family(family: str, folder, seed: int = 0) -> Path:
    """Build a family and ``save_pretrained`` model and tokenizer into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, tok = build(family, seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


__all__ = ["FAMILIES", "DECODERS", "ENCODERS", "ENCODER_DECODERS", "KIND", "LANG_TAGS", "TRAIN_TEXT", "auto_model_class",
           "build", "lang_tag_id", "save_family", "src_lang_value", "tokenizer", "vocab_size_for"]
