"""The report on an encoder-decoder model (a tiny M2M100 saved to a folder).

On the encoder stack (the default) extraction, similarity and neutrality run on the encoder's states
and the drift section is skipped with the reason: the logit lens needs the decoder stack. With
``--stack decoder`` the encoder reads the source language and the drift runs.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tiny_families import LANG_TAGS, save_family
from xling_probe import load_model
from xling_probe.cli.main import main
from xling_probe.report.build import build_report, drift_unavailable

LANGS = ("en", "fr", "de")
SENTENCES = {
    "en": ["The cat sleeps.", "I like the green tree.", "We drink water every day.", "The house is big.",
           "She reads a book.", "The sun is warm today."],
    "fr": ["Le chat dort.", "J'aime l'arbre vert.", "Nous buvons de l'eau chaque jour.", "La maison est grande.",
           "Elle lit un livre.", "Le soleil est chaud aujourd'hui."],
    "de": ["Die Katze schläft.", "Ich mag den grünen Baum.", "Wir trinken jeden Tag Wasser.", "Das Haus ist groß.",
           "Sie liest ein Buch.", "Die Sonne ist heute warm."],
}
SMALL = dict(bootstrap=5, null_permutations=2, drift_items=2, shots=1, static=False, progress=False)
SMALL_CLI = ["--bootstrap", "5", "--null-permutations", "2", "--drift-items", "2", "--shots", "1", "--no-static",
             "--device", "cpu"]


@pytest.fixture(scope="module")
def m2m100_dir(tmp_path_factory):
    folder = save_family("m2m100", tmp_path_factory.mktemp("m2m100") / "m2m100")
    tok = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert tok  # a saved tokenizer: the report reloads it from the folder
    return folder


@pytest.fixture(scope="module")
def corpus_tsv(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "tiny.tsv"
    rows = ["\t".join(["id", *LANGS])]
    rows += ["\t".join([f"s{i}", *(SENTENCES[c][i] for c in LANGS)]) for i in range(len(SENTENCES["en"]))]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_the_tiny_family_tags_our_languages():
    assert all(c in LANG_TAGS["m2m100"] for c in LANGS)


def test_report_on_the_encoder_stack_skips_drift_with_the_reason(m2m100_dir, corpus_tsv, tmp_path):
    handle = load_model(str(m2m100_dir), device="cpu")
    assert handle.stack == "encoder" and handle.kind == "encoder" and not handle.has_unembedding
    res = build_report(tmp_path / "enc", model=handle, corpus=corpus_tsv, langs=list(LANGS), **SMALL)
    page = res.index.read_text(encoding="utf-8")
    assert res.index.is_file() and (res.out / "manifest.json").is_file()
    # similarity, neutrality and the other sections ran on the encoder states, with finite numbers
    sim = pd.read_csv(res.out / "tables" / "similarity.csv")
    assert not sim.empty and set(sim.layer) == set(range(handle.n_states))
    assert np.isfinite(sim["value"]).all(), sim[~np.isfinite(sim["value"])]
    assert np.isfinite(pd.read_csv(res.out / "tables" / "neutrality.csv")["value"]).all()
    for key in ("similarity_curves", "language_heatmap", "cross_layer", "neutrality", "embedding"):
        assert f'id="{key}"' in page
    # the drift is skipped, and the reason names the flag that makes it possible
    reason = next(n for n in res.notes if n.startswith("Language drift skipped"))
    assert "the logit lens needs the decoder stack: --stack decoder" in reason
    assert "the logit lens needs the decoder stack: --stack decoder" in page
    assert not list((res.out / "tables").glob("drift_*.csv"))
    stages = {s["stage"]: s for s in res.stages}
    assert stages["drift"]["status"] == "skipped" and "--stack decoder" in stages["drift"]["reason"]
    assert all(stages[s]["status"] == "ran" for s in ("extract", "similarity", "neutrality", "cross_layer"))
    manifest = json.loads((res.out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["stack"] == "encoder" and manifest["settings"]["kind"] == "encoder"
    assert "encoder stack of an encoder-decoder model" in page


def test_cli_report_on_the_decoder_stack_reads_the_source_language(m2m100_dir, corpus_tsv, tmp_path, capsys):
    out = tmp_path / "dec"
    code = main(["report", "--model", str(m2m100_dir), "--data", str(corpus_tsv), "--langs", "fr,de",
                 "--stack", "decoder", "--source-language", "en", "--decoder-input", "translation",
                 "--pairs", "fr-de", *SMALL_CLI, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    settings = manifest["settings"]
    assert settings["stack"] == "decoder" and settings["languages"] == ["fr", "de"]
    assert settings["source_language"] == "en" and settings["decoder_input"] == "translation"
    assert np.isfinite(pd.read_csv(out / "tables" / "similarity.csv")["value"]).all()
    drift = next(s for s in manifest["stages"] if s["stage"] == "drift")
    assert drift["status"] == "ran"
    assert not any("--stack decoder" in n for n in manifest["notes"])


def test_cli_report_on_the_encoder_stack_says_why_drift_is_skipped(m2m100_dir, corpus_tsv, tmp_path, capsys):
    out = tmp_path / "enc-cli"
    assert main(["report", "--model", str(m2m100_dir), "--data", str(corpus_tsv), "--stack", "encoder",
                 *SMALL_CLI, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: Language drift skipped" in printed and "--stack decoder" in printed
    assert "the logit lens needs the decoder stack" in (out / "index.html").read_text(encoding="utf-8")


def test_cli_extract_on_the_decoder_stack_keeps_the_source_out_of_the_languages(m2m100_dir, corpus_tsv, tmp_path):
    out = tmp_path / "acts"
    assert main(["extract", "--model", str(m2m100_dir), "--device", "cpu", "--data", str(corpus_tsv),
                 "--langs", "fr,de", "--stack", "decoder", "--source-language", "en", "--decoder-input", "tag",
                 "--no-cache", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    text = json.dumps(manifest)
    assert '"fr"' in text and '"de"' in text
    assert manifest["meta"]["source_language"] == "en" and manifest["meta"]["decoder_input"] == "tag"


def test_drift_reasons_per_kind_of_handle():
    def handle(**kw):
        return SimpleNamespace(**{"name": "m", "kind": "decoder", "has_unembedding": True, "stack": None,
                                  "remote": False, **kw})

    assert drift_unavailable(handle()) is None and drift_unavailable(handle(stack="decoder")) is None
    assert "--stack decoder" in drift_unavailable(handle(kind="encoder", has_unembedding=False, stack="encoder"))
    assert "an encoder without an unembedding" in drift_unavailable(handle(kind="encoder", has_unembedding=False))
    assert "runs remotely" in drift_unavailable(handle(has_unembedding=False, remote=True))
