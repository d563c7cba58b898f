"""Word lists: Wendler et al.'s published clean.csv files (fixtures in tests/data/wendler, made up)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xling_probe.errors import LensError
from xling_probe.lens.prompts import build_prompts
from xling_probe.lens.words import WordList, load_words, wendler_files

DATA = Path(__file__).parent / "data" / "wendler"


def test_one_clean_csv_becomes_english_plus_its_language():
    words = load_words(DATA / "fr" / "clean.csv")
    assert words.languages == ("en", "fr")
    assert words.concepts == ("book", "water", "moon")
    assert [words.word("fr", k) for k in range(3)] == ["livre", "eau", "lune"]
    assert words.meta["format"] == "wendler"
    assert words.extras["wendler_error_fr"] == ("no", "no", "no")
    assert words.extras["wendler_blank_prompt_translation_masked_fr"][0] == 'Un "___" a des pages. Réponse : "'
    assert sorted(words.extras) == sorted(f"wendler_{c}_fr" for c in (  # the pandas index column is dropped
        "blank_prompt_original", "blank_prompt_translation", "blank_prompt_translation_masked", "error"))


def test_a_folder_of_language_folders_merges_on_the_english_word():
    files = wendler_files(DATA)
    assert [f.parent.name for f in files] == ["de", "fr", "zh"]
    words = load_words(DATA)
    assert words.languages == ("en", "de", "fr", "zh")
    assert words.concepts == ("book", "tree", "water", "flower", "moon")  # union, in order of first appearance
    k = words.concepts.index
    assert words.alternatives("de", k("flower")) == ("Blume", "Blüte")  # two rows -> alternatives
    assert not words.has("fr", k("tree")) and not words.has("de", k("moon"))  # missing -> empty cell
    assert words.word("zh", k("moon")) == "月亮"  # zh/clean.csv starts with a BOM and has no index column
    assert words.word("en", k("moon")) == "moon"
    listed = load_words([DATA / "fr" / "clean.csv", DATA / "zh" / "clean.csv"])
    assert listed.languages == ("en", "fr", "zh") and listed.concepts == ("book", "water", "moon", "tree")
    # the merged list drives the lens prompts; items without both words are refused, not guessed
    (prompt,) = build_prompts(words, source="fr", target="de", shots=1, indices=[k("book")])
    assert prompt.expected == "Buch" and prompt.text.endswith('Français: "livre" - Deutsch: "')
    with pytest.raises(LensError, match="lack words in fr and de"):
        build_prompts(words, source="fr", target="de", shots=0, indices=[k("tree")])


def test_wendler_errors_say_what_is_wrong(tmp_path):
    bad = tmp_path / "clean.csv"
    bad.write_text("lang,word_original\nfr,book\n", encoding="utf-8")
    with pytest.raises(LensError, match="lacks the column.s. word_translation"):
        WordList.from_wendler([bad])
    bad.write_text("lang,word_original,word_translation\nxx,book,livre\n", encoding="utf-8")
    with pytest.raises(LensError, match="line 2: lang 'xx' is not a language code"):
        load_words(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LensError, match="holds no <lang>/clean.csv"):
        load_words(tmp_path / "empty")
    # an ordinary word list is still read as before
    plain = tmp_path / "w.csv"
    plain.write_text("en,fr\nbook,livre\n", encoding="utf-8")
    assert load_words(plain).languages == ("en", "fr")
