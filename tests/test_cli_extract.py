"""`xling-probe extract` and the top-level command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xling_probe import Activations, ParallelCorpus, extract
from xling_probe.cli.main import main


def test_help_documents_every_extract_option(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    text = capsys.readouterr().out
    for option in ("--model", "--backend", "--data", "--langs", "--layers", "--pooling", "--include-special",
                   "--batch-size", "--max-length", "--no-cache", "--out", "--force", "--limit"):
        assert option in text


def test_extract_writes_activations_and_manifest(tiny_decoder_dir, tmp_path, tiny_decoder):
    out = tmp_path / "acts"
    code = main(["extract", "--model", str(tiny_decoder_dir), "--device", "cpu", "--langs", "en,ja,ar",
                 "--limit", "6", "--pooling", "last", "--layers", "0,-1", "--out", str(out)])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["languages"] == ["en", "ja", "ar"] and manifest["layers"] == [0, 3]
    assert manifest["meta"]["pooling"] == "last" and len(manifest["ids"]) == 6
    acts = Activations.load(out)
    direct = extract(tiny_decoder, ParallelCorpus.sample(languages=["en", "ja", "ar"], n=6), pooling="last",
                     layers=[0, -1], cache=False, progress=False)
    np.testing.assert_allclose(acts.data, direct.data, rtol=1e-6)


def test_extract_refuses_a_non_empty_folder_and_keeps_its_files(tiny_decoder_dir, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    code = main(["extract", "--model", str(tiny_decoder_dir), "--limit", "2", "--out", str(out)])
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "precious" and len(list(out.iterdir())) == 1


def test_bad_language_is_a_clean_error(tiny_decoder_dir, tmp_path, capsys):
    code = main(["extract", "--model", str(tiny_decoder_dir), "--langs", "en,tlh", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "tlh" in err and "Traceback" not in err
