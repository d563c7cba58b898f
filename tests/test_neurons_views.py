"""Language neurons: figures, the widget, the report section and the ``xling-probe neurons`` command (tiny models)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import xling_probe as xp
from xling_probe.cli.main import main
from xling_probe.neurons import activation_probabilities, perplexity_change, select_language_neurons

LANGS = ["en", "fr", "zh", "ru"]


@pytest.fixture(scope="module")
def results(tiny_decoder):
    corpus = xp.ParallelCorpus.sample(languages=LANGS)
    fit, held = corpus.head(60), corpus.take(corpus.ids[100:104])
    probs = activation_probabilities(tiny_decoder, fit, cache=False, progress=False)
    sel = select_language_neurons(probs, fraction=0.05, filter_percentile=80, assign_percentile=80, min_tokens=10)
    with warnings.catch_warnings():  # a language without neurons gets a NaN row and a warning
        warnings.simplefilter("ignore")
        ppl = perplexity_change(tiny_decoder, held, sel, progress=False)
    return probs, sel, ppl


def test_figures_hold_the_results_numbers(results):
    _, sel, ppl = results
    fig = xp.plots.neurons_per_layer(sel, languages=["zh"])
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["zh"].y) == sel.per_layer()["zh"].tolist()
    assert by_name["en"].line.color == "#BBBBBB" and by_name["zh"].line.color == xp.plots.language_color("zh")
    ov = xp.plots.neuron_overlap(sel)
    assert np.array_equal(np.asarray(ov.data[0].z), sel.overlap().to_numpy())
    heat = xp.plots.perplexity_change_heatmap(ppl)
    assert len(heat.data) == 2
    np.testing.assert_allclose(np.asarray(heat.data[0].z, float), ppl.values("ratio"), equal_nan=True)
    np.testing.assert_allclose(np.asarray(heat.data[1].z, float), ppl.values("ratio", control=True), equal_nan=True)
    assert list(heat.data[0].y) == list(ppl.off) and list(heat.data[0].x) == list(ppl.evaluated)


def test_widget_language_and_measure_refresh_in_place(results):
    from xling_probe.widgets import NeuronsView

    _, sel, ppl = results
    view = NeuronsView(sel, ppl)
    target = sel.languages[-1]
    view.language.value = target
    assert view.log["per_layer"] == 1 and f"<b>{target}</b>" in view.summary.value
    colored = [t for t in view.figures["per_layer"].data if t.line.color != "#BBBBBB"]
    assert [t.name for t in colored] == [target]
    view.measure.value = "difference"
    assert view.log["perplexity"] == 1
    np.testing.assert_allclose(np.asarray(view.figures["perplexity"].data[0].z, float), ppl.values("difference"),
                               equal_nan=True)
    assert NeuronsView(sel).measure.disabled


def test_report_section_has_the_tables_and_figures(results):
    from xling_probe.report.neurons import neuron_section

    _, sel, ppl = results
    section, tables, figs = neuron_section(sel, ppl)
    assert section.key == "neurons" and set(figs) == {"neurons_per_layer", "neurons_overlap", "neurons_perplexity"}
    assert set(tables) == {"neurons_selected", "neurons_per_layer", "neurons_overlap", "neurons_perplexity"}
    assert section.links == [f"tables/{k}.csv" for k in ("neurons_selected", "neurons_per_layer", "neurons_overlap",
                                                         "neurons_perplexity")]
    assert f"{len(sel.selected)} neurons kept" in section.finding
    assert f"{ppl.summary()['language_diagonal_mean']:.3f}" in section.finding
    assert len(tables["neurons_selected"]) == int(sel.assigned.sum())


def test_cli_writes_selection_overlaps_and_matrices(tiny_decoder_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["neurons", "--model", str(tiny_decoder_dir), "--langs", "en,fr,zh,ru", "--limit", "60",
               "--heldout", "6", "--fraction", "0.05", "--filter-percentile", "80", "--assign-percentile", "80",
               "--min-tokens", "10", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"neurons.csv", "per_layer.csv", "overlap.csv", "perplexity.csv", "perplexity_matrix.csv",
            "perplexity_random.csv", "selection.json", "neurons.json", "figures.html", "probabilities"} <= names
    payload = json.loads((out / "neurons.json").read_text())
    assert payload["fit_sentences"] == 54 and payload["heldout_sentences"] == 6
    sel = xp.LanguageNeurons.load(out / "selection.json")
    import pandas as pd

    overlap = pd.read_csv(out / "overlap.csv", index_col=0)
    assert np.array_equal(overlap.to_numpy(), sel.overlap().to_numpy())
    matrix = pd.read_csv(out / "perplexity_matrix.csv", index_col=0)
    np.testing.assert_allclose(matrix.to_numpy(), np.asarray(payload["perplexity"]["after"]) /
                               np.asarray(payload["perplexity"]["base"])[None, :], equal_nan=True)


def test_cli_refuses_bad_thresholds_before_loading(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["neurons", "--fraction", "2", "--out", "x"])
    assert exc.value.code == 2 and "fraction in (0, 1]" in capsys.readouterr().err


def test_report_analysis_fits_on_one_split_and_skips_the_matrix_for_encoders(tiny_decoder, tiny_encoder):
    from xling_probe.report.neurons import run_neuron_analysis

    corpus = xp.ParallelCorpus.sample(languages=LANGS, n=50)
    opts = dict(heldout=5, fraction=0.05, filter_percentile=80, assign_percentile=80, min_tokens=10, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probs, sel, ppl = run_neuron_analysis(tiny_decoder, corpus, **opts)
    assert probs.meta["sentences"] == 45 and ppl.meta["sentences"] == 5
    probs, sel, ppl = run_neuron_analysis(tiny_encoder, corpus, **opts)
    assert ppl is None and len(sel.selected) > 0


def test_report_neuron_section_equals_a_direct_analysis(tiny_decoder, tmp_path):
    """``build_report(neurons={...})`` adds the section; its tables are the numbers of run_neuron_analysis on the
    report's corpus (same split, same seed), and the stage is recorded as ran."""
    import pandas as pd

    from xling_probe.report.build import build_report
    from xling_probe.report.neurons import run_neuron_analysis

    opts = dict(heldout=4, fraction=0.05, filter_percentile=80, assign_percentile=80, min_tokens=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = build_report(tmp_path / "rep", model=tiny_decoder, langs=LANGS, limit=24, bootstrap=5,
                           null_permutations=2, drift_items=2, shots=1, static=False, progress=False,
                           neurons=opts)
        corpus = xp.ParallelCorpus.sample().select_languages(LANGS).head(24)
        _, sel, ppl = run_neuron_analysis(tiny_decoder, corpus, seed=0, batch_size=16, max_length=128,
                                          progress=False, **opts)
    manifest = json.loads((res.out / "manifest.json").read_text(encoding="utf-8"))
    assert {s["stage"]: s["status"] for s in manifest["stages"]}["neurons"] == "ran"
    page = (res.out / "index.html").read_text(encoding="utf-8")
    assert "Language-specific neurons (LAPE)" in page and "neurons_perplexity" in res.figures
    table = pd.read_csv(res.out / "tables" / "neurons_perplexity.csv")
    direct = ppl.to_dataframe()
    assert len(table) == len(direct) > 0
    num = [c for c in direct.columns if direct[c].dtype.kind == "f"]
    np.testing.assert_allclose(table[num].to_numpy(float), direct[num].to_numpy(float), rtol=1e-9, equal_nan=True)
    # one row per (neuron, language) assignment
    assert len(pd.read_csv(res.out / "tables" / "neurons_selected.csv")) == sum(sel.counts().values())
