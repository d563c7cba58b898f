"""The measures of measures/pairwise.py reach every consumer: the CLI, the explorer's metric picker, the curves."""

from __future__ import annotations

import numpy as np
import pytest

from xling_probe import similarity
from xling_probe.cli.main import main
from xling_probe.widgets import SimilarityExplorer

from test_measures_more import acts_of, rng

NEW = ("svcca", "pwcca", "cknna@5", "procrustes", "p_procrustes@1", "p_cent@1", "rsa")


@pytest.fixture(scope="module")
def acts():
    g = rng(3)
    meaning = g.normal(size=(20, 8))
    data = np.stack([np.stack([meaning + s * g.normal(size=(20, 8)) for _ in range(3)]) for s in (0.2, 1.0, 3.0)])
    return acts_of(data, ("en", "fr", "de"))


def test_cli_similarity_scores_the_new_measures(acts, tmp_path):
    acts.save(tmp_path / "acts")
    out = tmp_path / "sim"
    assert main(["similarity", "--acts", str(tmp_path / "acts"), "--metrics", ",".join(NEW), "--null-permutations",
                 "3", "--bootstrap", "4", "--out", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out / "similarity.csv")
    from xling_probe import Activations

    saved = Activations.load(tmp_path / "acts")  # stored as float32: the command scores what it reads
    want = similarity(saved, metrics=list(NEW), null_permutations=3, bootstrap=4, progress=False).to_dataframe()
    assert set(NEW) == set(table["metric"]) and len(table) == len(want)
    keys = [c for c in want.columns if want[c].dtype.kind not in "fc"]
    got = table.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_explorer_metric_picker_offers_and_draws_them(acts):
    res = similarity(acts, metrics=list(NEW), null_permutations=2, bootstrap=3, progress=False)
    ex = SimilarityExplorer(res)
    assert tuple(ex.metric.options) == NEW
    for m in NEW:
        ex.metric.value = m
        heat = [t for t in ex.figures["heatmap"].data if t.type == "heatmap"][0]
        layer = res.layer_index(ex.layer.value) if hasattr(res, "layer_index") else list(res.layers).index(ex.layer.value)
        z = np.array([[np.nan if v is None else v for v in row] for row in heat.z], dtype=float)
        assert np.isfinite(z).sum() == 6, m  # 3 languages: every ordered off-diagonal cell
        assert np.nanmax(np.abs(z)) <= 1.0 + 1e-9 and np.isfinite(res.value[res.metrics.index(m), layer]).sum() >= 3
        assert any(t.y is not None and len(t.y) == len(res.layers) for t in ex.figures["curves"].data), m
