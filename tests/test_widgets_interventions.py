"""The interventions view and the workbench's Neurons / Interventions tabs (tiny models): the numbers shown are
those of the library's functions, alpha = 0 changes nothing, busy states and errors are visible."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xling_probe as xp
from xling_probe.errors import InterventionError
from xling_probe.interventions import AddVector, generate, next_token_logprobs, steering_vectors
from xling_probe.widgets import Workbench
from xling_probe.widgets.interventions_view import TOP_K, InterventionsView

LANGS = ("en", "de", "fr")


@pytest.fixture(scope="module")
def setup(tiny_decoder):
    corpus = xp.ParallelCorpus.sample(languages=LANGS).head(12)
    acts = xp.extract(tiny_decoder, corpus, cache=False, progress=False)
    return tiny_decoder, acts, corpus


def test_view_shows_the_library_numbers(setup):
    model, acts, corpus = setup
    view = InterventionsView(model, acts, corpus, source="en", target="de", layer=2, alpha=3.0)
    assert view.prompt.value and view.prompt.value in corpus.sentences["en"][0]
    out = view.run()
    vec = steering_vectors(acts, "en", "de").vector(2)
    edits = [AddVector(2, vector=vec, alpha=3.0)]
    want = next_token_logprobs(model, [view.prompt.value], edits=edits)[0].exp().numpy()
    (_, plain), (_, steered) = out["next_tokens"].items()
    top = np.argsort(-want)[:TOP_K]
    assert [p for _, p in steered] == pytest.approx([float(want[i]) for i in top], abs=1e-7)
    base = next_token_logprobs(model, [view.prompt.value])[0].exp().numpy()
    assert [p for _, p in plain] == pytest.approx(sorted(base, reverse=True)[:TOP_K], abs=1e-7)
    assert out["continuations"]["with"] == generate(model, [view.prompt.value], edits=edits, max_new_tokens=16)[0]
    assert out["continuations"]["without"] == generate(model, [view.prompt.value], max_new_tokens=16)[0]
    assert view.log["figure"] == 1 and len(view.figure.data) == 2
    assert "detected language" in view.continuations.value


def test_alpha_zero_changes_nothing_and_the_control_is_a_random_vector(setup):
    model, acts, corpus = setup
    view = InterventionsView(model, acts, corpus, alpha=0.0)
    out = view.run()
    (_, plain), (_, steered) = out["next_tokens"].items()
    assert plain == steered and out["continuations"]["with"] == out["continuations"]["without"]
    view.alpha.value, view.control.value = 4.0, True
    out = view.run()
    rnd = steering_vectors(acts, view.source.value, view.target.value).random_control(0).vector(view.layer.value)
    want = next_token_logprobs(model, [view.prompt.value],
                               edits=[AddVector(view.layer.value, vector=rnd, alpha=4.0)])[0].exp().numpy()
    assert out["control"] and out["next_tokens"][list(out["next_tokens"])[1]][0][1] == pytest.approx(want.max(),
                                                                                                   abs=1e-7)


def test_busy_state_and_errors_are_shown(setup):
    model, acts, corpus = setup
    view = InterventionsView(model, acts, corpus)
    seen = {}
    real = view.run

    def spy():
        seen["disabled"], seen["status"] = view.run_button.disabled, view.status.value
        return real()

    view.run = spy
    view._on_click()
    assert seen["disabled"] and "running" in seen["status"]
    assert not view.run_button.disabled and view.status.value.startswith("done in")
    view.prompt.value = "  "
    view._on_click()
    assert "InterventionError" in view.status.value and "prompt is empty" in view.status.value
    with pytest.raises(InterventionError, match="layer 99"):
        InterventionsView(model, acts, corpus, layer=99)
    view.source.value = view.target.value  # picking the target as source moves the target away
    assert view.target.value != view.source.value


def test_workbench_neurons_tab_runs_on_demand_and_interventions_tab(tiny_decoder):
    wb = Workbench(tiny_decoder, languages=LANGS, sentences=24, null_permutations=2, bootstrap=4).run()
    neurons_tab, steer = wb.tabs.children[4], wb.tabs.children[5]
    assert isinstance(steer, InterventionsView) and steer is wb.explorers["interventions"]
    assert wb.neurons is None
    button, status = neurons_tab.children[0].children
    with warnings.catch_warnings():  # a tiny model: a language may get no neuron (a warning), machine-dependent
        warnings.simplefilter("ignore")
        button.click()
    view = neurons_tab.children[0]
    assert view is wb.explorers["neurons"] and view.neurons is wb.neurons and view.perplexity is wb.perplexity
    assert set(wb.perplexity.evaluated) == set(LANGS) and "language neurons found" in wb.status.value
    # the tab equals the analysis run directly on the workbench's corpus
    from xling_probe.report.neurons import run_neuron_analysis
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, sel, _ = run_neuron_analysis(tiny_decoder, wb.corpus, seed=0, progress=False)
    assert np.array_equal(sel.selected, wb.neurons.selected)
    # a failure is shown in the tab and the button can be pressed again
    fresh = wb._neurons_tab()
    button, status = fresh.children[0].children

    def fail(**_):
        raise InterventionError("fr has 12 tokens, 200 needed")

    wb.find_neurons = fail
    button.click()
    assert "InterventionError" in status.value and "200 needed" in status.value and not button.disabled


def test_encoder_workbench_says_why_there_are_no_interventions(tiny_encoder):
    wb = Workbench(tiny_encoder, languages=LANGS, sentences=8, null_permutations=2, bootstrap=4).run()
    note = wb.tabs.children[5]
    assert wb.explorers["interventions"] is None and "No interventions" in note.value
