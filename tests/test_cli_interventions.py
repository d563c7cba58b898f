"""``xling-probe steer`` and ``xling-probe patch`` on the tiny decoder: the files hold the numbers of the Python API
on the same split, and bad input fails before the model load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import xling_probe as xp
from xling_probe.cli.main import main


def test_steer_writes_the_sweep_of_the_api(tiny_decoder_dir, tiny_decoder, tmp_path, capsys):
    out = tmp_path / "steer"
    rc = main(["steer", "--model", str(tiny_decoder_dir), "--device", "cpu", "--source", "fr", "--target", "zh",
               "--limit", "40", "--fit", "30", "--items", "4", "--layers", "1,3", "--alphas", "2",
               "--max-new-tokens", "3", "--out", str(out)])
    assert rc == 0
    assert {"steering.csv", "steering.json", "summary.json", "figures.html"} <= {p.name for p in out.iterdir()}
    table = pd.read_csv(out / "steering.csv")
    corpus = xp.ParallelCorpus.sample().select_languages(["fr", "zh"]).head(40)
    acts = xp.extract(tiny_decoder, corpus.head(30), max_length=128, cache=False, progress=False)
    res = xp.steer(tiny_decoder, xp.steering_vectors(acts, "fr", "zh"), corpus=corpus, layers=[1, 3], alphas=[2.0],
                   n_items=4, max_new_tokens=3, progress=False)
    want = res.table.sort_values(list(res.table.columns[:4])).reset_index(drop=True)
    got = table.sort_values(list(res.table.columns[:4])).reset_index(drop=True)
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-6, atol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fit_sentences"] == 30 and summary["best"]["kind"] == "vector"
    page = (out / "figures.html").read_text()
    assert page.count("Plotly.newPlot") >= 3 and "best (continuation_target)" in capsys.readouterr().out


def test_patch_writes_the_grid_of_the_api(tiny_decoder_dir, tiny_decoder, tmp_path):
    out = tmp_path / "patch"
    rc = main(["patch", "--model", str(tiny_decoder_dir), "--device", "cpu", "--layers", "0,2", "--positions=-1,-2",
               "--pairs", "3", "--shots", "1", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out / "patching.csv")
    res = xp.concept_patching(tiny_decoder, layers=[0, 2], positions=[-1, -2], n_pairs=3, shots=1, progress=False)
    keys = ["kind", "layer", "position", "measure"]
    got = table.sort_values(keys).reset_index(drop=True)
    want = res.table.sort_values(keys).reset_index(drop=True)
    assert got[keys].astype(str).equals(want[keys].astype(str))
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-6, atol=1e-9)
    assert "concept_moved_grid" in (out / "figures.html").read_text()


@pytest.mark.parametrize("argv, message", [
    (["steer", "--source", "fr", "--target", "fr"], "both 'fr'"),
    (["steer", "--source", "fr", "--target", "xx"], "xx"),
    (["patch", "--positions", "0"], "count from the end"),
    (["patch", "--source", "de-qq"], "qq"),
])
def test_bad_input_fails_before_the_model_load(argv, message, tmp_path, capsys, monkeypatch):
    import xling_probe.models.loading as loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    rc = main([*argv, "--model", "nowhere", "--out", str(tmp_path / "o")])
    assert rc == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["steer", "--source", "fr", "--target", "zh", "--alphas", "a,b"], "comma-separated strengths"),
    (["patch", "--positions", "x"], "comma-separated positions"),
])
def test_bad_numbers_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", "o"])
    assert exc.value.code == 2 and message in capsys.readouterr().err
