"""``xling-probe distances``: the command's table is distance_correlations() of the same activations; bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xling_probe import Activations, similarity
from xling_probe.cli.main import main
from xling_probe.distances import distance_correlations, language_distances

LANGS = ("en", "de", "fr", "ru", "zh", "ar")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    meaning = rng.normal(size=(16, 8))
    data = np.stack([np.stack([meaning + (0.5 + k) * rng.normal(size=(16, 8)) for k in range(len(LANGS))])
                     for _ in range(3)])
    acts = Activations(data=data, layers=(0, 1, 2), languages=LANGS, ids=tuple(f"s{i}" for i in range(16)),
                       meta={"model": "synthetic"})
    folder = tmp_path_factory.mktemp("acts") / "acts"
    acts.save(folder)
    return folder


def test_command_writes_the_correlations_of_the_api(saved, tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["distances", "--acts", str(saved), "--source", "uriel", "--kinds", "genetic,syntactic",
                 "--permutations", "99", "--out", str(out)]) == 0
    got = pd.read_csv(out / "correlations.csv")
    acts = Activations.load(saved)
    want = distance_correlations(similarity(acts, metrics=["cka_debiased"], null_permutations=0, bootstrap=0,
                                            progress=False),
                                 language_distances(LANGS, ["genetic", "syntactic"], source="uriel"),
                                 "cka_debiased", permutations=99, seed=0)
    assert set(got["kind"]) == {"genetic", "syntactic", "script"} and len(got) == len(want) == 3 * 3
    np.testing.assert_allclose(got["r"], want["r"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got["p"], want["p"], rtol=1e-12, equal_nan=True)
    assert "most negative r" in capsys.readouterr().out and (out / "figures.html").stat().st_size > 10_000


def test_bad_kind_and_too_few_languages(saved, tmp_path, capsys):
    assert main(["distances", "--acts", str(saved), "--kinds", "typo", "--out", str(tmp_path / "a")]) == 2
    assert "unknown distance kind(s) typo" in capsys.readouterr().err
    assert main(["distances", "--acts", str(saved), "--langs", "en,de,fr", "--source", "uriel",
                 "--out", str(tmp_path / "b")]) == 2
    assert "at least 4 languages" in capsys.readouterr().err
