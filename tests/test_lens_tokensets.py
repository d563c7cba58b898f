"""Token sets, word lists and filters on locally built tokenizers (SentencePiece and byte-level BPE)."""

from __future__ import annotations

import json

import pytest

from xling_probe.errors import LensError
from xling_probe.lens import WordList, build_item_sets, load_words, token_scheme, token_set
from xling_probe.lens.tokensets import byte_chars


def sp_reference(tokenizer, word: str) -> set[str]:
    """Definition, by brute force over the whole vocabulary: tokens that are a non-empty prefix of
    the word, written with or without the ``▁`` marker."""
    out = set()
    for tok in tokenizer.get_vocab():
        body = tok[1:] if tok.startswith("▁") else tok
        if body and word.startswith(body):
            out.add(tok)
    return out


def bpe_reference(tokenizer, word: str) -> set[str]:
    """Same definition in bytes: a token's bytes (minus a leading space, the ``Ġ`` marker) form a
    non-empty prefix of the word's UTF-8 bytes."""
    inverse = {c: b for b, c in enumerate(byte_chars())}
    data = word.encode("utf-8")
    out = set()
    for tok in tokenizer.get_vocab():
        if not all(c in inverse for c in tok):
            continue  # special tokens
        raw = bytes(inverse[c] for c in tok)
        body = raw[1:] if raw.startswith(b" ") else raw
        if body and data.startswith(body):
            out.add(tok)
    return out


def byte_fallback_sp(sp_tokenizer):
    """The tiny SentencePiece tokenizer with byte fallback switched on (as in Gemma and Llama 2)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(sp_tokenizer.backend_tokenizer.to_str())
    spec["model"]["byte_fallback"] = True
    tok = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>", padding_side="left")


def test_schemes_are_detected(sp_tokenizer, bpe_tokenizer):
    assert token_scheme(sp_tokenizer).kind == "sentencepiece" and token_scheme(sp_tokenizer).marker == "▁"
    assert token_scheme(bpe_tokenizer).kind == "byte_bpe" and token_scheme(bpe_tokenizer).marker == "Ġ"


@pytest.mark.parametrize("word", ["flower", "fleur", "Blume", "цветок", "花", "Katze", "livre"])
def test_sentencepiece_sets_match_the_definition(sp_tokenizer, word):
    ts = token_set(sp_tokenizer, word)
    assert set(ts.tokens) == sp_reference(sp_tokenizer, word)
    assert list(ts.ids) == sorted(sp_tokenizer.convert_tokens_to_ids(list(ts.tokens)))
    assert not ts.byte_fallback  # this tokenizer has no byte fallback: no <0x..> token added


def test_sentencepiece_known_members(sp_tokenizer):
    vocab = sp_tokenizer.get_vocab()
    ts = token_set(sp_tokenizer, "flower")
    assert "flower" in vocab and "flower" in ts.tokens  # the whole word is one token here
    assert "f" in ts.tokens
    assert "fl" not in ts.tokens and "fl" not in vocab  # only vocabulary tokens
    assert token_set(sp_tokenizer, "花").tokens == ("花",)


@pytest.mark.parametrize("word", ["flower", "fleur", "Blume", "цветок", "花", "꽃", "ดอกไม้"])
def test_byte_level_sets_match_the_definition(bpe_tokenizer, word):
    ts = token_set(bpe_tokenizer, word)
    assert set(ts.tokens) == bpe_reference(bpe_tokenizer, word)


def test_byte_level_chinese_uses_byte_characters(bpe_tokenizer):
    # 花 = E8 8A B1: three byte-characters è Ĭ ±; the tokenizer has all three prefixes
    ts = token_set(bpe_tokenizer, "花")
    assert set(ts.tokens) == {"è", "èĬ", "èĬ±"}
    assert bpe_tokenizer.convert_tokens_to_string(["èĬ±"]) == "花"
    assert "Ġflo" in token_set(bpe_tokenizer, "flower").tokens


def test_first_byte_fallback_token(sp_tokenizer):
    tok = byte_fallback_sp(sp_tokenizer)
    word = "ดอกไม้"  # Thai: not in the training text, written as bytes E0 B8 94 ...
    assert tok.tokenize(word)[1] == "<0xE0>"
    ts = token_set(tok, word)
    assert ts.tokens == ("<0xE0>",) and ts.byte_fallback
    # a word the vocabulary covers gets no byte token
    assert token_set(tok, "flower").tokens == token_set(sp_tokenizer, "flower").tokens


def test_without_byte_fallback_an_unknown_script_gives_an_empty_set(sp_tokenizer):
    assert token_set(sp_tokenizer, "ดอกไม้").ids == ()


def test_single_token_mode(sp_tokenizer, bpe_tokenizer):
    assert token_set(sp_tokenizer, "flower", single_token=True).tokens == ("flower",)
    assert token_set(sp_tokenizer, "цветок", single_token=True).ids == ()  # цвет + о + к
    assert token_set(bpe_tokenizer, "fleur", single_token=True).tokens == ("fleur", "Ġfleur")
    assert token_set(bpe_tokenizer, "flower", single_token=True).ids == ()  # flo + wer


def test_alternatives_are_united(sp_tokenizer):
    both = token_set(sp_tokenizer, ["fleur", "Blume"])
    assert set(both.ids) == set(token_set(sp_tokenizer, "fleur").ids) | set(token_set(sp_tokenizer, "Blume").ids)
    assert both.word == "fleur"
    with pytest.raises(LensError, match="no word"):
        token_set(sp_tokenizer, ["", " "])


def small_words() -> WordList:
    return WordList.from_dict({
        "concept": ["flower", "dog", "book", "piano", "thai", "water"],
        "en": ["flower", "dog", "book", "piano", "flower", "water"],
        "fr": ["fleur", "chien", "livre", "piano", "fleur", "eau"],
        "th": ["", "", "", "", "ดอกไม้", ""],
        "zh": ["花", "狗", "书", "钢琴", "", "水"],
    })


def test_filters_and_drop_report(sp_tokenizer):
    words = small_words()
    sets = build_item_sets(sp_tokenizer, words, ["fr", "zh"], latent="en", target="fr")
    kept = [words.concepts[k] for k in sets.kept]
    # flower/fleur share 'f' and '▁f'; piano is inside piano; thai has no Chinese word; 水 and 钢琴
    # are not in the tiny vocabulary and it has no byte fallback
    assert kept == ["dog", "book"]
    reasons = set(sets.dropped.entries)
    assert ("flower", "fr", "latent (en) and target (fr) token sets overlap") in reasons
    assert ("piano", "fr", "latent (en) word is a substring of the target (fr) word") in reasons
    assert ("thai", "zh", "no word in zh") in reasons
    assert ("water", "zh", "empty token set in zh") in reasons
    assert len(sets.dropped) == 4 and sets.dropped.n_total == 6
    assert sets.dropped.concepts == ("flower", "piano", "thai", "water")
    df = sets.dropped.to_dataframe()
    assert list(df.columns) == ["concept", "language", "reason"] and len(df) == len(sets.dropped.entries)
    assert [ts.word for ts in sets.sets["zh"]] == ["狗", "书"]
    assert [ts.word for ts in sets.sets["en"]] == ["dog", "book"]
    assert "dropped 4 of 6 items" in str(sets.dropped)


def test_empty_token_set_is_a_reported_drop(sp_tokenizer):
    words = small_words()
    sets = build_item_sets(sp_tokenizer, words, ["th"], latent="en", target="th")
    assert sets.kept == ()
    assert ("thai", "th", "empty token set in th") in sets.dropped.entries


def test_single_token_filter(sp_tokenizer):
    words = small_words()
    sets = build_item_sets(sp_tokenizer, words, ["zh"], latent="en", target="zh", single_token=True)
    # 'dog' is d + o + g pieces here, 水 is unknown: neither is one token
    assert [words.concepts[k] for k in sets.kept] == ["flower", "book"]
    assert ("dog", "en", "not a single token in en") in sets.dropped.entries
    assert ("water", "zh", "not a single token in zh") in sets.dropped.entries
    assert [set(ts.tokens) for ts in sets.sets["en"]] == [{"flower"}, {"book", "▁book"}]


def test_filters_off_keep_items(sp_tokenizer):
    words = small_words()
    sets = build_item_sets(sp_tokenizer, words, ["fr"], latent="en", target="fr", drop_overlap=False,
                           drop_substring=False)
    assert [words.concepts[k] for k in sets.kept] == ["flower", "dog", "book", "piano", "thai", "water"]


def test_word_list_csv_and_language_errors(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("en,fra_Latn,cloze_fr\nflower,fleur|fleurs,La ___ est rouge.\nwater,eau,\n", encoding="utf-8")
    words = WordList.from_csv(path)
    assert words.languages == ("en", "fr") and words.concepts == ("flower", "water")
    assert words.alternatives("fr", 0) == ("fleur", "fleurs") and words.word("fra", 0) == "fleur"
    assert words.extras["cloze_fr"] == ("La ___ est rouge.", "")
    with pytest.raises(LensError, match="no words for language 'zh'"):
        words.resolve_language("zh")
    bad = tmp_path / "bad.csv"
    bad.write_text("en,wordz\nflower,x\n", encoding="utf-8")
    with pytest.raises(LensError, match="neither a language code"):
        WordList.from_csv(bad)
    with pytest.raises(LensError, match="not found"):
        WordList.from_csv(tmp_path / "missing.csv")


def test_bundled_word_list():
    words = load_words()
    assert len(words) >= 100
    for lang in ("en", "de", "fr", "es", "ru", "zh"):
        assert lang in words.languages
        assert sum(bool(a) for a in words.words[lang]) >= 100
    assert words.word("de", words.concepts.index("dog")) == "Hund"
