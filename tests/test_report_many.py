"""The report at many languages: streamed from a store, every pair scored in the batched path, the
null and intervals for the pivot pairs, the many-language section; numbers equal a direct computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import xling_probe as xp
from xling_probe.extraction.activations import Activations
from xling_probe.report.build import build_report
from xling_probe.report.many import MAP_LANGUAGES
from xling_probe.report.many import MANY_LANGUAGES


def _codes(k: int) -> list[str]:
    from importlib.resources import files

    rows = files("xling_probe.data").joinpath("families.tsv").read_text(encoding="utf-8").splitlines()
    codes = [r.split("\t")[0] for r in rows if r and not r.startswith("#") and not r.startswith("iso639_3")]
    return codes[:k]


@pytest.fixture(scope="module")
def many_corpus():
    """44 languages (more than MANY_LANGUAGES): the sample's sentences, each language marked by its own code."""
    sample = xp.ParallelCorpus.sample()
    codes = ["en"] + [c for c in _codes(60) if c not in ("eng",)][:43]
    cols = {code: [f"{sample.sentences[sample.languages[i % 16]][k]} {code}" for k in range(len(sample))]
            for i, code in enumerate(codes)}
    return xp.ParallelCorpus.from_columns(list(sample.ids), cols)


def test_a_many_language_report_streams_from_a_store_with_the_direct_numbers(tiny_decoder, many_corpus, tmp_path):
    G = len(many_corpus.languages)
    assert G > MANY_LANGUAGES
    store = tmp_path / "acts.zarr"
    res = build_report(tmp_path / "rep", model=tiny_decoder, corpus=many_corpus, langs="all", limit=12, store=store,
                       bootstrap=10, null_permutations=3, drift_items=2, shots=1, static=False, progress=False)
    manifest = json.loads((res.out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["store"] == str(store) and len(manifest["settings"]["languages"]) == G
    acts = Activations.load(store)  # what the report read, lazily
    assert acts.lazy and acts.n_sentences == 12 and len(acts.languages) == G
    # every pair of the matrix table equals a direct all-pairs computation on the in-memory copy
    table = pd.read_csv(res.out / "tables" / "similarity_matrix.csv", keep_default_na=False)
    assert len(table) == G * (G - 1) // 2
    metric, layer = table["metric"].iloc[0], int(table["layer"].iloc[0])
    direct = xp.similarity(acts.in_memory(), metrics=[metric], null_permutations=0, bootstrap=0, progress=False,
                           client=False)
    pos = {c: i for i, c in enumerate(direct.languages)}
    want = direct.sel(metric, layer)[[pos[a] for a in table["lang_a"]], [pos[b] for b in table["lang_b"]]]
    np.testing.assert_allclose(table["value"].to_numpy(), want, rtol=0, atol=1e-12)
    # the null and intervals: the pivot pairs only, the same numbers as scoring them directly
    sim = pd.read_csv(res.out / "tables" / "similarity.csv", keep_default_na=False)
    pairs = set(zip(sim["lang_a"], sim["lang_b"]))
    assert all("en" in p for p in pairs) and len({frozenset(p) for p in pairs}) == G - 1
    piv = xp.similarity(acts.in_memory(), metrics=["cka_debiased"], pairs="pivot:en", null_permutations=3,
                        bootstrap=10, progress=False, client=False)
    row = sim[(sim["metric"] == "cka_debiased") & (sim["layer"] == layer) & (sim["lang_b"] == many_corpus.languages[5])]
    got = row[row["lang_a"] == "en"]
    assert len(got) == 1
    assert got["value"].iloc[0] == pytest.approx(piv.sel("cka_debiased", layer, "en", many_corpus.languages[5]),
                                                 abs=1e-12)
    page = res.index.read_text(encoding="utf-8")
    assert f"All {G} languages at layer" in page and f"{MAP_LANGUAGES} of {G} languages" in page
    assert any("every pair scored without null or interval" in n for n in res.notes)
