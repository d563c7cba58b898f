"""Parallel corpora: loaders, language codes, validation errors, splits, the bundled sample."""

from __future__ import annotations

import json
import unicodedata

import pandas as pd
import pytest

from xling_probe import CorpusError, LanguageCodeError, ParallelCorpus, load_corpus, normalize_code, split_ids
from xling_probe.data.languages import language_name
from xling_probe.labels import resolve_language


def write_tsv(path, rows):
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "code, canonical",
    [("fr", "fr"), ("fra", "fr"), ("fra_Latn", "fr"), ("FR", "fr"), ("cmn_hans", "zh-Hans"), ("zho_Hant", "zh-Hant"),
     ("arb", "ar"), ("deu", "de"), ("ell_monotonic", "el-monoton"), ("por_PT", "pt-PT"), ("hin_Deva", "hi")],
)
def test_language_codes_resolve_to_one_canonical_code(code, canonical):
    assert normalize_code(code) == canonical


def test_unknown_language_code_is_a_clear_error():
    with pytest.raises(LanguageCodeError, match="unknown language code 'xx'"):
        normalize_code("xx")
    assert language_name("fr", native=True) == "Français"
    assert resolve_language("zh", ["en", "zh-Hant"]) == "zh-Hant"
    with pytest.raises(LanguageCodeError, match="ambiguous"):
        resolve_language("zh", ["zh-Hans", "zh-Hant"])


def test_tsv_keeps_quote_characters_and_labels(tmp_path):
    # A default CSV reader would merge these rows at the unmatched quote.
    path = write_tsv(tmp_path / "c.tsv", [
        ["id", "eng", "fra_Latn"],
        ["a", 'He said "hi', 'Il a dit « salut'],
        ["b", 'Second" line', "Deuxième ligne"],
    ])
    c = ParallelCorpus.from_tsv(path)
    assert c.languages == ("en", "fr")
    assert c.labels == {"en": "eng", "fr": "fra_Latn"}
    assert c.sentences["en"] == ('He said "hi', 'Second" line')
    assert c.texts("fra") == ("Il a dit « salut", "Deuxième ligne")


def test_tsv_wrong_field_count_names_the_lines(tmp_path):
    path = write_tsv(tmp_path / "c.tsv", [["id", "en", "de"], ["1", "a", "b"], ["2", "only one"], ["3", "x", "y", "z"]])
    with pytest.raises(CorpusError, match=r"line 3 has 2.*line 4 has 4"):
        ParallelCorpus.from_tsv(path)


def test_missing_and_empty_translations_are_listed(tmp_path):
    path = write_tsv(tmp_path / "c.tsv", [["id", "en", "de"], ["1", "a", "b"], ["2", "c", " "], ["3", "", "d"]])
    with pytest.raises(CorpusError, match=r"en: 3.*de: 2"):
        ParallelCorpus.from_tsv(path)
    with pytest.warns(UserWarning, match="dropped 2 ids"):
        c = ParallelCorpus.from_tsv(path, on_missing="drop")
    assert c.ids == ("1",)


def test_duplicate_ids_unknown_codes_and_absent_languages(tmp_path):
    dup = write_tsv(tmp_path / "d.tsv", [["id", "en"], ["1", "a"], ["1", "b"], ["2", "c"], ["2", "d"]])
    with pytest.raises(CorpusError, match="duplicate sentence ids: 1, 2"):
        ParallelCorpus.from_tsv(dup)
    bad = write_tsv(tmp_path / "b.tsv", [["id", "en", "klingon"], ["1", "a", "b"]])
    with pytest.raises(LanguageCodeError, match="'klingon'"):
        ParallelCorpus.from_tsv(bad)
    ok = write_tsv(tmp_path / "o.tsv", [["id", "en", "de"], ["1", "a", "b"]])
    with pytest.raises(LanguageCodeError, match=r"not in the corpus: 'fr', 'ja'.*en, de"):
        ParallelCorpus.from_tsv(ok, languages=["en", "fr", "ja"])
    with pytest.raises(LanguageCodeError, match="'fr'"):
        ParallelCorpus.from_tsv(ok).select_languages(["fr"])
    same = write_tsv(tmp_path / "s.tsv", [["id", "fr", "fra"], ["1", "a", "b"]])
    with pytest.raises(CorpusError, match="same language"):
        ParallelCorpus.from_tsv(same)
    with pytest.raises(CorpusError, match="not found"):
        ParallelCorpus.from_tsv(tmp_path / "nope.tsv")


def test_metadata_columns_are_ignored_and_id_column_can_be_indonesian(tmp_path):
    path = write_tsv(tmp_path / "c.tsv", [["id", "orig_lang", "en", "id"], ["s1", "en", "Hello", "Halo"]])
    c = ParallelCorpus.from_tsv(path)
    assert c.languages == ("en", "id")
    assert c.ids == ("s1",) and c.sentences["id"] == ("Halo",)


def test_jsonl_flat_and_nested(tmp_path):
    flat = tmp_path / "f.jsonl"
    flat.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": 1, "en": "one", "de": "eins"}, {"id": 2, "en": "two", "de": "zwei"}]) + "\n", encoding="utf-8")
    nested = tmp_path / "n.jsonl"
    nested.write_text(json.dumps({"id": "x", "translations": {"en": "one", "id": "satu"}}) + "\n", encoding="utf-8")
    assert ParallelCorpus.from_jsonl(flat).sentences["de"] == ("eins", "zwei")
    assert load_corpus(nested).sentences["id"] == ("satu",)
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"id": 1, "en": "a"}\n{oops\n')
    with pytest.raises(CorpusError, match="line 2 is not valid JSON"):
        ParallelCorpus.from_jsonl(broken)


def test_dataframe_and_hf_datasets_wide_and_long():
    df = pd.DataFrame({"id": ["a", "b"], "en": ["cat", "dog"], "fr": ["chat", "chien"]})
    assert ParallelCorpus.from_dataframe(df).sentences["fr"] == ("chat", "chien")
    datasets = pytest.importorskip("datasets")
    wide = datasets.Dataset.from_dict({"id": [1, 2], "sentence_fra_Latn": ["chat", "chien"], "sentence_eng_Latn": ["cat", "dog"]})
    c = ParallelCorpus.from_hf_dataset(wide)
    assert c.languages == ("fr", "en") and c.sentences["en"] == ("cat", "dog")
    long = datasets.Dataset.from_dict({
        "id": [1, 1, 2, 2], "iso_639_3": ["fra", "deu", "fra", "deu"], "iso_15924": ["Latn"] * 4,
        "text": ["chat", "Katze", "chien", "Hund"]})
    c = ParallelCorpus.from_hf_dataset(long, languages=["de"])
    assert c.ids == ("1", "2") and c.sentences["de"] == ("Katze", "Hund")


def test_split_is_seeded_disjoint_and_complete():
    ids = [f"s{k}" for k in range(50)]
    fit, test = split_ids(ids, 0.2, seed=3)
    assert len(test) == 10 and len(fit) == 40
    assert not set(fit) & set(test) and set(fit) | set(test) == set(ids)
    assert (fit, test) == split_ids(ids, 0.2, seed=3)
    assert test != split_ids(ids, 0.2, seed=4)[1]
    with pytest.raises(CorpusError):
        split_ids(ids, 1.5)


def test_bundled_sample_is_large_and_multi_script():
    c = ParallelCorpus.sample()
    assert len(c) >= 100 and len(c.languages) >= 12
    assert {"zh", "ja", "ko", "ru", "ar", "hi"} <= set(c.languages)
    scripts = set()
    for lang in c.languages:
        letters = [ch for ch in "".join(c.sentences[lang][:5]) if ch.isalpha()]
        scripts.add(unicodedata.name(letters[0]).split()[0])
    assert {"LATIN", "CYRILLIC", "ARABIC", "DEVANAGARI", "CJK", "HANGUL"} <= scripts
    fit, held = c.split(0.5, seed=0)
    assert len(fit) + len(held) == len(c) and not set(fit.ids) & set(held.ids)
    assert c.content_hash() == ParallelCorpus.sample().content_hash()
    assert c.head(10).content_hash() != c.content_hash()


# ---------------------------------------------------------------------- duplicates, empty input, encodings
def test_duplicate_columns_are_refused_by_every_loader(tmp_path):
    df = pd.DataFrame([["a", "cat", "chat", "chatte"]], columns=["id", "en", "fr", "fr"])
    with pytest.raises(CorpusError, match=r"duplicate column names: 'fr'"):
        ParallelCorpus.from_dataframe(df)
    same = pd.DataFrame({"id": ["a"], "fr": ["chat"], "fra": ["chatte"]})
    with pytest.raises(CorpusError, match=r"columns 'fr' and 'fra' are the same language \(fr\)"):
        ParallelCorpus.from_dataframe(same)
    with pytest.raises(CorpusError, match="same language"):
        ParallelCorpus.from_columns(["a"], {"fr": ["chat"], "fra_Latn": ["chatte"]})
    with pytest.raises(CorpusError, match="header names column 'fr' twice"):
        ParallelCorpus.from_tsv(write_tsv(tmp_path / "d.tsv", [["id", "fr", "fr"], ["1", "a", "b"]]))
    dup_key = tmp_path / "d.jsonl"
    dup_key.write_text('{"id": 1, "en": "a", "fr": "b"}\n{"id": 2, "en": "c", "fr": "d", "fr": "e"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="line 2 has the key 'fr' twice"):
        ParallelCorpus.from_jsonl(dup_key)
    same_jsonl = tmp_path / "s.jsonl"
    same_jsonl.write_text('{"id": 1, "de": "a", "deu": "b"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="same language"):
        ParallelCorpus.from_jsonl(same_jsonl)
    datasets = pytest.importorskip("datasets")
    wide = datasets.Dataset.from_dict({"id": [1], "sentence_fra_Latn": ["chat"], "fra_Latn": ["chatte"]})
    with pytest.raises(CorpusError, match="'fra_Latn' and 'sentence_fra_Latn'"):
        ParallelCorpus.from_hf_dataset(wide)
    long = datasets.Dataset.from_dict({"id": [1, 1], "iso_639_3": ["fra", "fra"], "iso_15924": ["Latn"] * 2,
                                       "text": ["chat", "chatte"]})
    with pytest.raises(CorpusError, match="two rows for sentence '1' in 'fra_Latn'"):
        ParallelCorpus.from_hf_dataset(long)


def test_a_corpus_without_sentences_is_an_error(tmp_path):
    header_only = write_tsv(tmp_path / "h.tsv", [["id", "en", "de"]])
    with pytest.raises(CorpusError, match=r"h.tsv has no sentences \(only a header row\)"):
        ParallelCorpus.from_tsv(header_only)
    blank = tmp_path / "b.jsonl"
    blank.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="b.jsonl has no sentences"):
        ParallelCorpus.from_jsonl(blank)
    with pytest.raises(CorpusError, match="DataFrame has no sentences"):
        ParallelCorpus.from_dataframe(pd.DataFrame({"id": [], "en": []}))
    csv_header = tmp_path / "h.csv"
    csv_header.write_text("id,en,de\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="has no sentences"):
        load_corpus(csv_header)
    with pytest.raises(CorpusError, match="no sentences"):
        ParallelCorpus(ids=(), sentences={"en": ()})
    with pytest.raises(CorpusError, match="no sentences"):
        ParallelCorpus.from_columns([], {"en": []})
    gaps = write_tsv(tmp_path / "g.tsv", [["id", "en", "de"], ["1", "a", ""], ["2", "", "b"]])
    with pytest.raises(CorpusError, match="no sentences left: all 2 ids lack a translation"):
        ParallelCorpus.from_tsv(gaps, on_missing="drop")


def test_non_utf8_file_names_line_byte_and_fix(tmp_path):
    latin = tmp_path / "l.tsv"
    latin.write_bytes("id\ten\tfr\n1\tcoffee\tcaf\u00e9\n2\ttea\tth\u00e9\n".encode("latin-1"))
    with pytest.raises(CorpusError) as err:
        ParallelCorpus.from_tsv(latin)
    msg = str(err.value)
    # "café" in latin-1 ends in 0xe9: the header is 9 bytes, "1\tcoffee\tcaf" 12, so byte 21 = column 13
    assert "l.tsv is not valid utf-8: line 2, column 13 (byte offset 21) holds the byte(s) e9" in msg
    assert "Re-save the file as UTF-8, or pass encoding=" in msg
    c = ParallelCorpus.from_tsv(latin, encoding="latin-1")
    assert c.sentences["fr"] == ("caf\u00e9", "th\u00e9")
    jl = tmp_path / "l.jsonl"
    jl.write_bytes('{"id": 1, "en": "a"}\n{"id": 2, "en": "caf\u00e9"}\n'.encode("cp1252"))
    with pytest.raises(CorpusError, match=r"l.jsonl is not valid utf-8: line 2"):
        ParallelCorpus.from_jsonl(jl)
    assert ParallelCorpus.from_jsonl(jl, encoding="cp1252").sentences["en"] == ("a", "caf\u00e9")
    csv_file = tmp_path / "l.csv"
    csv_file.write_bytes("id,en\n1,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"l.csv is not valid utf-8: line 2"):
        load_corpus(csv_file)
    assert load_corpus(csv_file, encoding="latin-1").sentences["en"] == ("caf\u00e9",)
    with pytest.raises(CorpusError, match="unknown encoding 'utf-9'"):
        ParallelCorpus.from_tsv(latin, encoding="utf-9")


def test_utf8_bom_loads_like_the_same_file_without_it(tmp_path):
    rows = [["id", "en", "de"], ["1", "one", "eins"], ["2", "two", "zwei"]]
    plain = write_tsv(tmp_path / "p.tsv", rows)
    bom = tmp_path / "b.tsv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = ParallelCorpus.from_tsv(plain), ParallelCorpus.from_tsv(bom)
    assert (b.ids, b.sentences, b.labels) == (a.ids, a.sentences, a.labels)
    assert b.content_hash() == a.content_hash()
    jplain = tmp_path / "p.jsonl"
    jplain.write_text('{"id": "x", "en": "one"}\n', encoding="utf-8")
    jbom = tmp_path / "b.jsonl"
    jbom.write_bytes(b"\xef\xbb\xbf" + jplain.read_bytes())
    assert ParallelCorpus.from_jsonl(jbom).content_hash() == ParallelCorpus.from_jsonl(jplain).content_hash()


# ---------------------------------------------------------------------- how codes were read
def test_tico_codes_are_read_by_convention_and_shown(tmp_path):
    path = write_tsv(tmp_path / "tico.tsv", [
        ["id", "en", "es-LA", "zh", "prs", "fa", "tl", "ku", "ckb"],
        ["1", "Wash hands", "Lávese las manos", "洗手", "دست", "دست", "Maghugas", "Dest", "دەست"],
    ])
    with pytest.warns(UserWarning, match=r"es-LA read as es-419 \(Latin American Spanish, TICO-19 convention\); "
                                         r"zh read as zh-Hans \(Simplified Chinese, TICO-19 convention\)"):
        c = ParallelCorpus.from_tsv(path)
    assert c.languages == ("en", "es-419", "zh-Hans", "prs", "fa", "tl", "ku", "ckb")
    readings = c.code_readings()
    assert str(readings["es-LA"]) == ("es-LA -> es-419 (Spanish (Latin America)); "
                                      "es-LA read as es-419 (Latin American Spanish, TICO-19 convention)")
    assert readings["prs"].name == "Dari" and readings["tl"].name == "Tagalog" and readings["prs"].note is None
    assert c.code_notes() == [readings["es-LA"].note, readings["zh"].note]
    assert c.texts("zh") == ("洗手",) and c.texts("es") == ("Lávese las manos",)
    assert c.meta["conventions"] == "tico19"
    # languages= is resolved with the convention detected on the whole header
    with pytest.warns(UserWarning, match="zh read as zh-Hans"):
        sub = ParallelCorpus.from_tsv(path, languages=["en", "zh"])
    assert sub.languages == ("en", "zh-Hans")
    assert list(sub.select_languages(["zh"]).code_readings()) == ["zh"]
    literal = ParallelCorpus.from_tsv(path, conventions=None)
    assert literal.languages[1:3] == ("es-LA", "zh") and literal.code_notes() == []
    direct = ParallelCorpus(ids=("a",), sentences={"de-1996": ("Straße",)})
    assert direct.code_readings()["de-1996"].name == "German (orthography of 1996)"
