"""Workbench on the tiny models: the pipeline end to end, the tabs, and bad inputs."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from xling_probe import ParallelCorpus, extract, neutrality, similarity
from xling_probe.errors import CorpusError, LanguageCodeError, MetricError
from xling_probe.plots import neutrality_curves
from xling_probe.report.build import REPORT_METRICS
from xling_probe.widgets import EmbeddingExplorer, LogitLensExplorer, SimilarityExplorer, Workbench

LANGS = ("en", "de", "fr")
SETTINGS = dict(languages=LANGS, sentences=8, null_permutations=4, bootstrap=6)


def small_corpus():
    return ParallelCorpus.sample(languages=LANGS).head(8)


def test_pipeline_end_to_end_on_a_decoder(tiny_decoder):
    wb = Workbench(tiny_decoder, **SETTINGS)
    assert wb.acts is None and "tiny-gemma" in wb.header.value and "8 sentences × 3 languages" in wb.header.value
    assert wb.run() is wb
    assert all(wb.progress.state[s] == "done" for s in wb.progress.stages)
    assert wb.status.value.startswith("done in")
    # the activations are those of extract() on the same 8 sentences
    ref_acts = extract(tiny_decoder, small_corpus(), cache=False, progress=False)
    assert wb.acts.languages == LANGS and wb.acts.ids == ref_acts.ids
    assert np.allclose(wb.acts.data, ref_acts.data, atol=1e-6)
    # the result equals similarity() called directly on the same activations
    # the workbench's default metrics are the report's selection (one list, in report/build.py)
    ref = similarity(wb.acts, metrics=REPORT_METRICS, null_permutations=4, bootstrap=6, progress=False)
    assert wb.result.metrics == ref.metrics and wb.result.pairs == ref.pairs
    for field, arr in ref.arrays.items():
        np.testing.assert_allclose(wb.result.arrays[field], arr, rtol=1e-12, atol=1e-12, err_msg=field)
    # centered activations: each language's mean removed
    assert np.allclose(wb.centered.data.mean(axis=2), 0.0, atol=1e-4)
    # the tabs hold the explorers, built on these outputs
    sim, emb, lens, neutral, neurons, steer, distances = wb.tabs.children
    assert wb.tabs.titles == ("Similarity", "Embeddings", "Logit lens", "Neutrality", "Neurons", "Interventions",
                              "Distances")
    assert isinstance(sim, SimilarityExplorer) and sim is wb.explorers["similarity"]
    assert sim.result is wb.result and sim.acts is wb.acts
    assert distances is wb.explorers["distances"] and distances.result is wb.result and not distances.tables
    assert isinstance(emb, EmbeddingExplorer) and emb is wb.explorers["embeddings"]
    emb.wait()
    assert isinstance(lens, LogitLensExplorer) and lens.model is tiny_decoder and wb.lens_unavailable is None
    assert lens.log["heatmap"] == 1 and lens.table is not None
    # the neutrality tab is neutrality_curves of neutrality() on the same split
    ref_report = neutrality(wb.acts, 0.5, seed=0, progress=False)
    want = neutrality_curves(ref_report)
    assert isinstance(neutral, go.FigureWidget) and len(neutral.data) == len(want.data)
    for got, exp in zip(neutral.data, want.data):
        assert np.allclose(np.asarray(got.y, float), np.asarray(exp.y, float), equal_nan=True)
    assert np.array_equal(wb.neutrality.language_id, ref_report.language_id)


def test_rerun_reuses_the_model_and_the_cache(tiny_decoder):
    wb = Workbench(tiny_decoder, small_corpus(), **SETTINGS).run()
    first = wb.acts
    old_sim = wb.explorers["similarity"]
    wb.run()
    assert wb.model is tiny_decoder and wb.explorers["similarity"] is not old_sim
    assert np.array_equal(wb.acts.data, first.data)
    assert wb.tabs.children[0] is wb.explorers["similarity"]


def test_encoder_has_no_lens_tab_and_says_why(tiny_encoder_dir, tmp_path):
    path = tmp_path / "corpus.tsv"
    small_corpus().to_dataframe().to_csv(path, sep="\t")
    wb = Workbench(str(tiny_encoder_dir), str(path), **SETTINGS)  # a model path and a corpus file
    assert "loaded when the pipeline runs" in wb.header.value
    wb.run()
    assert wb.model.kind == "encoder" and "encoder" in wb.header.value
    assert wb.explorers["lens"] is None and "encoder" in wb.lens_unavailable
    assert wb.progress.state["logit lens"] == "skipped"
    note = wb.tabs.children[2]
    assert "No logit lens" in note.value and "encoder" in note.value
    assert isinstance(wb.explorers["similarity"], SimilarityExplorer)
    assert wb.result.languages == LANGS and wb.acts.data.shape[2] == 8


def test_bad_inputs(tiny_decoder):
    with pytest.raises(LanguageCodeError, match="not in the corpus.*xx"):
        Workbench(tiny_decoder, languages=("en", "xx"))
    with pytest.raises(LanguageCodeError, match="not in the corpus"):
        Workbench(tiny_decoder, small_corpus(), languages=("en", "zh"))
    with pytest.raises(CorpusError, match="sentences must be an integer >= 4"):
        Workbench(tiny_decoder, sentences=3)
    with pytest.raises(CorpusError, match="at least two"):
        Workbench(tiny_decoder, languages=("en",))
    with pytest.raises(CorpusError, match="not found"):
        Workbench(tiny_decoder, "no/such/corpus.tsv")
    with pytest.raises(CorpusError, match="ParallelCorpus or a file path"):
        Workbench(tiny_decoder, corpus=42)
    with pytest.raises(MetricError):
        Workbench(tiny_decoder, metrics=("nope",))


def test_button_shows_errors_instead_of_raising(tmp_path):
    wb = Workbench(str(tmp_path / "missing-model"), small_corpus(), **SETTINGS)
    wb.run_button.click()  # no exception escapes into the UI
    assert "ModelLoadError" in wb.status.value and wb.progress.state["load model"] == "failed"
    assert wb.acts is None and not wb.run_button.disabled


def test_run_chooser_changes_the_next_run_and_shows_its_cost(tiny_decoder):
    from xling_probe.widgets.run_settings import DEFAULT_SECONDS_PER_SEQUENCE

    wb = Workbench(tiny_decoder, **SETTINGS)
    s = wb.settings
    assert set(LANGS) < set(s.languages.options)  # the chooser offers every language of the sample
    c = s.cost_numbers()
    assert c["sequences"] == 8 * 3 and c["pairs"] == 3 and not c["measured"]
    assert c["seconds"] == pytest.approx(24 * DEFAULT_SECONDS_PER_SEQUENCE)
    assert "24 sequences" in s.cost.value and "3 language pairs" in s.cost.value and "estimated" in s.cost.value
    s.languages.value = ("en", "de", "fr", "zh")
    s.sentences.value = 10
    s.metrics.value = ("cka", "p@1")
    assert "40 sequences" in s.cost.value and "6 language pairs × 2 metrics" in s.cost.value
    assert "10 sentences × 4 languages" in wb.header.value and "press <b>Run pipeline</b>" in wb.status.value
    wb.run()
    assert wb.acts.languages == ("en", "de", "fr", "zh") and wb.acts.n_sentences == 10
    assert wb.result.metrics == ("cka", "p@1")
    assert f"× {len(wb.acts.layers)} layers" in s.cost.value
    s.languages.value = ("en",)
    assert "at least two languages" in wb.status.value
    with pytest.raises(CorpusError, match="at least two"):
        wb.run()


def test_teaching_mode_enlarges_fonts_and_hides_export_and_settings(tiny_decoder):
    from xling_probe.widgets._base import ExportBar, LiveFigureWidget
    from xling_probe.widgets.workbench import TEACHING_LAYOUT, _walk

    wb = Workbench(tiny_decoder, teaching=True, **SETTINGS).run()
    figs = [w for w in _walk(wb.tabs) if isinstance(w, LiveFigureWidget)]
    bars = [w for w in _walk(wb.tabs) if isinstance(w, ExportBar)]
    assert len(figs) >= 4 and len(bars) >= 2
    assert all(f.layout.font.size == TEACHING_LAYOUT["font"]["size"] for f in figs)
    assert all(b.layout.display == "none" for b in bars) and wb.settings_box.layout.display == "none"
    sim = wb.explorers["similarity"]
    sim.layer.value = sim.layer.options[0]  # a refresh keeps the projector fonts
    assert sim.figures["heatmap"].layout.font.size == 18
    wb.teaching.value = False
    assert all(b.layout.display is None for b in bars) and wb.settings_box.layout.display is None
    sim.layer.value = sim.layer.options[-1]
    assert sim.figures["heatmap"].layout.font.size != 18
