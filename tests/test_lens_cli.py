"""`xling-probe drift` and the TransformerLens backend on the tiny Gemma."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from test_lens_drift import TINY_WORDS
from xling_probe.cli.main import main
from xling_probe.lens import WordList, language_drift


@pytest.fixture
def words_csv(tmp_path):
    path = tmp_path / "words.csv"
    pd.DataFrame(TINY_WORDS).to_csv(path, index=False)
    return path


def test_help_documents_every_drift_option(capsys):
    with pytest.raises(SystemExit):
        main(["drift", "--help"])
    text = capsys.readouterr().out
    for option in ("--source", "--target", "--latent", "--task", "--words", "--shots", "--seed", "--limit",
                   "--single-token", "--keep-overlap", "--batch-size", "--n-boot", "--model", "--out", "--force"):
        assert option in text


def test_drift_writes_csv_and_json(tiny_decoder_dir, tiny_decoder, words_csv, tmp_path, capsys):
    out = tmp_path / "drift"
    code = main(["drift", "--model", str(tiny_decoder_dir), "--device", "cpu", "--source", "de", "--target", "zh",
                 "--words", str(words_csv), "--shots", "2", "--n-boot", "100", "--out", str(out)])
    assert code == 0
    assert "P(zh)" in capsys.readouterr().out
    direct = language_drift(tiny_decoder, WordList.from_csv(words_csv), source="de", target="zh", shots=2, n_boot=100,
                            progress=False)
    curves = pd.read_csv(out / "curves.csv")
    for metric in direct.values:
        sel = curves[curves.metric == metric].sort_values("layer")
        np.testing.assert_allclose(sel["mean"], direct.curve(metric), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(sel["boot_high"], direct.curve(metric, "boot_high"), rtol=1e-5, atol=1e-9)
    items = pd.read_csv(out / "items.csv")
    assert len(items) == len(direct.values) * direct.n_items * len(direct.layers)
    dropped = pd.read_csv(out / "dropped.csv")
    assert sorted(dropped.concept) == ["bread", "milk"]
    summary = json.loads((out / "drift.json").read_text(encoding="utf-8"))
    assert summary["n_items"] == direct.n_items and summary["dropped"]["n"] == 2
    assert summary["curves"]["p_target"]["mean"] == pytest.approx(list(direct.curve("p_target")))


def test_drift_cli_errors_are_clean(tiny_decoder_dir, words_csv, tmp_path, capsys):
    code = main(["drift", "--model", str(tiny_decoder_dir), "--source", "de", "--target", "ja", "--words",
                 str(words_csv), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no words for language 'ja'" in err and "Traceback" not in err


def test_backends_agree_on_the_tiny_model(tiny_decoder_dir):
    pytest.importorskip("xling_probe.models.tl_bridge", reason="the TransformerLens backend (tl_backend.py) is not there yet")
    from xling_probe import load_model

    hf = load_model(str(tiny_decoder_dir), device="cpu")  # its own copy: the bridge switches attention to eager
    tl = load_model(hf.model, tokenizer=hf.tokenizer, backend="transformer_lens", device="cpu")
    words = WordList.from_dict(TINY_WORDS)
    a = language_drift(hf, words, source="de", target="zh", shots=2, batch_size=3, n_boot=50, progress=False)
    b = language_drift(tl, words, source="de", target="zh", shots=2, batch_size=3, n_boot=50, progress=False)
    assert b.meta["backend"] == "transformer_lens"
    for metric in a.values:
        np.testing.assert_allclose(b.values[metric], a.values[metric], rtol=1e-4, atol=1e-6, err_msg=metric)
