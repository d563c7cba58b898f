"""Parallel corpora: loaders, language codes, validation errors, splits, the bundled sample."""

from __future__ import annotations

import json
import unicodedata

import pandas as pd
import pytest

from xling_probe import CorpusError, LanguageCodeError, ParallelCorpus, load_corpus, normalize_code, split_ids
from xling_probe.languages import language_name, resolve


def write_tsv(path, rows):
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "code, canonical",
    [("fr", "fr"), ("fra", "fr"), ("fra_Latn", "fr"), ("FR", "fr"), ("cmn_hans", "zh-Hans"), ("zho_Hant", "zh-Hant"),
     ("arb", "ar"), ("deu", "de"), ("ell_monotonic", "el"), ("por_PT", "pt-PT"), ("hin_Deva", "hi")],
)
def test_language_codes_resolve_to_one_canonical_code(code, canonical):
    assert normalize_code(code) == canonical


def test_unknown_language_code_is_a_clear_error():
    with pytest.raises(LanguageCodeError, match="unknown language code 'xx'"):
        normalize_code("xx")
    assert language_name("fr", native=True) == "Français"
    assert resolve("zh", ["en", "zh-Hant"]) == "zh-Hant"
    with pytest.raises(LanguageCodeError, match="ambiguous"):
        resolve("zh", ["zh-Hans", "zh-Hant"])


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
