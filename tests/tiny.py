"""Tiny randomly initialised models with locally trained tokenizers (no download).

- a SentencePiece-style Unigram tokenizer (``▁`` word-start marker, byte fallback) with a
  Gemma 3 decoder (RMSNorm with (1 + w), final-logit soft-capping switched on);
- a byte-level BPE tokenizer (``Ġ`` marker) with a GPT-2 decoder;
- the same SentencePiece tokenizer with an XLM-R style encoder (CLS ... SEP).
"""

from __future__ import annotations

from pathlib import Path

import torch

TRAIN_TEXT = [
    "The cat sleeps on the sofa. The dog runs in the garden. I like books and flowers.",
    "Le chat dort sur le canapé. Le chien court dans le jardin. J'aime les livres et les fleurs.",
    "Die Katze schläft auf dem Sofa. Der Hund läuft im Garten. Ich mag Bücher und Blumen.",
    "El gato duerme en el sofá. El perro corre en el jardín. Me gustan los libros y las flores.",
    "Кошка спит на диване. Собака бегает в саду. Я люблю книги и цветы.",
    "猫在沙发上睡觉。狗在花园里跑。我喜欢书和花。",
    "猫はソファで寝ています。犬は庭で走っています。本と花が好きです。",
    "고양이가 소파에서 잔다. 개가 정원에서 뛴다. 나는 책과 꽃을 좋아한다.",
    "القطة تنام على الأريكة. الكلب يجري في الحديقة. أحب الكتب والزهور.",
    "बिल्ली सोफे पर सोती है। कुत्ता बगीचे में दौड़ता है। मुझे किताबें और फूल पसंद हैं।",
    'Français: "fleur" - Deutsch: "Blume" English: "flower" Español: "flor" Русский: "цветок" 中文: "花"',
    "water house tree book dog cat sun moon bread milk apple fish bird hand eye",
    "Wasser Haus Baum Buch Hund Katze Sonne Mond Brot Milch Apfel Fisch Vogel Hand Auge",
    "eau maison arbre livre chien chat soleil lune pain lait pomme poisson oiseau main œil",
]
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]


def _texts(repeat: int = 20) -> list[str]:
    return TRAIN_TEXT * repeat


def sentencepiece_tokenizer(kind: str = "decoder"):
    """Unigram + Metaspace (``▁``) with byte fallback; BOS for decoders, CLS/SEP for encoders."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram(byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always")])
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    specials = SPECIALS + (["<cls>", "<sep>"] if kind == "encoder" else [])
    trainer = trainers.UnigramTrainer(
        vocab_size=600, special_tokens=specials + byte_tokens, unk_token="<unk>", max_piece_length=8
    )
    tok.train_from_iterator(_texts(), trainer=trainer)
    if kind == "encoder":
        cls_id, sep_id = tok.token_to_id("<cls>"), tok.token_to_id("<sep>")
        tok.post_processor = processors.TemplateProcessing(
            single="<cls> $A <sep>", pair="<cls> $A <sep> $B <sep>", special_tokens=[("<cls>", cls_id), ("<sep>", sep_id)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", cls_token="<cls>", sep_token="<sep>",
            bos_token="<cls>", eos_token="<sep>", padding_side="right",
        )
    bos_id = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        padding_side="left",
    )


def byte_bpe_tokenizer():
    """GPT-2 style byte-level BPE (``Ġ`` marker) trained on the small text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_texts(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        unk_token="<|endoftext|>", padding_side="right",
    )


def tiny_gemma(tokenizer, *, seed: int = 0, softcap: float | None = 30.0, layers: int = 3):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=128,
        sliding_window=8, layer_types=["sliding_attention", "full_attention", "sliding_attention"][:layers]
        + ["full_attention"] * max(0, layers - 3),
        final_logit_softcapping=softcap, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    model = Gemma3ForCausalLM(cfg).eval()
    # Random RMSNorm weights make the (1 + w) convention matter in tests.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0.0, 0.5)
    return model


def tiny_gpt2(tokenizer, *, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(cfg).eval()


def tiny_xlmr(tokenizer, *, seed: int = 0):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(seed)
    cfg = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
    )
    return XLMRobertaModel(cfg).eval()


def save(model, tokenizer, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
