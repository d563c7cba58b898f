"""LogitLensExplorer on the tiny Gemma: figures equal the builders' output, caching, one update per change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xling_probe.errors import LensError
from xling_probe.lens import Lens, WordList, build_prompts, lens_table, token_set
from xling_probe.plots import language_color, lens_heatmap
from xling_probe.widgets import LogitLensExplorer

# Words the tiny tokenizer knows, except 面包, хлеб and 杯子 (empty token sets); "cup" has no ru word.
WORDS = {
    "concept": ["flower", "dog", "book", "cat", "garden", "sofa", "bread", "cup"],
    "en": ["flower", "dog", "book", "cat", "garden", "sofa", "bread", "cup"],
    "de": ["Blume", "Hund", "Buch", "Katze", "Garten", "Sofa", "Brot", "Tasse"],
    "fr": ["fleur", "chien", "livre", "chat", "jardin", "canapé", "pain", "tasse"],
    "zh": ["花", "狗", "书", "猫", "花园", "沙发", "面包", "杯子"],
    "ru": ["цветок", "собака", "книга", "кошка", "сад", "диван", "хлеб", ""],
}


@pytest.fixture
def words():
    return WordList.from_dict(WORDS)


@pytest.fixture
def calls(tiny_decoder):
    """Counts forward calls of the model's decoder stack (every lens run goes through it)."""
    count = [0]
    hook = tiny_decoder.parts.runner.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    yield count
    hook.remove()


def explorer(model, words, **kw):
    kw = {"words": words, "source": "fr", "target": "de", "shots": 2, "top_k": 3, **kw}
    return LogitLensExplorer(model, **kw)


def item_prompt(words, concept, source="fr", target="de", shots=2):
    k = words.concepts.index(concept)
    return build_prompts(words, source=source, target=target, shots=shots, seed=0, indices=[k])[0].text


def assert_heatmap(ex, model, text, color="prob", top_k=3):
    want_fig = lens_heatmap(lens_table(model, text, top_k=top_k), color=color)
    want, got = want_fig.data[0], ex.figures["heatmap"].data[0]
    assert np.allclose(np.asarray(got.z, float), np.asarray(want.z, float), rtol=1e-6, atol=1e-7)
    assert [list(r) for r in got.text] == [list(r) for r in want.text]
    assert list(ex.figures["heatmap"].layout.xaxis.ticktext) == list(want_fig.layout.xaxis.ticktext)


def reference_curve(model, text, ids):
    """P(ids) per layer at the last position, from HF's hidden states: the lens (full softmax) for
    layers < L, the model's own final softmax for the last layer."""
    lens = Lens(model)
    with torch.inference_mode():
        res = model.model(input_ids=torch.tensor([model.tokenizer(text)["input_ids"]]), output_hidden_states=True)
    probs = [torch.softmax(lens.logits(h[0, -1]).double(), -1) for h in res.hidden_states[:-1]]
    probs.append(torch.softmax(res.logits[0, -1].double(), -1))
    return np.array([float(p[list(ids)].sum()) for p in probs])


def test_item_change_updates_both_figures_once_with_the_builders_output(tiny_decoder, words, calls):
    ex = explorer(tiny_decoder, words)
    assert ex.log["heatmap"] == 1 and ex.log["languages"] == 1 and ex.item.value == "flower"
    assert ex.prompt.value == item_prompt(words, "flower") and ex.languages.value == ("en", "fr", "de")
    ex.item.value = "cat"
    assert ex.log["heatmap"] == 2 and ex.log["languages"] == 2
    text = item_prompt(words, "cat")
    assert ex.prompt.value == text and ex.table.prompt == text
    assert_heatmap(ex, tiny_decoder, text)
    # curves: one per chosen language, in its colour, equal to an independent P(token set)
    traces = ex.figures["languages"].data
    assert [t.name for t in traces] == ["P(en) cat", "P(fr) chat", "P(de) Katze"]
    assert [t.line.color for t in traces] == [language_color(c) for c in ("en", "fr", "de")]
    for trace, (lang, word) in zip(traces, (("en", "cat"), ("fr", "chat"), ("de", "Katze"))):
        ids = token_set(tiny_decoder.tokenizer, word, language=lang).ids
        assert list(trace.x) == [0, 1, 2, 3]
        assert np.allclose(trace.y, reference_curve(tiny_decoder, text, ids), rtol=1e-4, atol=1e-7)
    assert "asks for de 'Katze'" in ex.status.value and ex.error is None


def test_cache_color_and_languages_do_not_run_the_model(tiny_decoder, words, calls):
    ex = explorer(tiny_decoder, words)
    first_z = np.asarray(ex.figures["heatmap"].data[0].z, float)
    ex.item.value = "dog"
    runs, n = ex.n_runs, calls[0]
    assert runs == 2 and n > 0
    ex.item.value = "flower"  # back to a visited item: cached
    assert calls[0] == n and ex.n_runs == runs
    assert np.array_equal(np.asarray(ex.figures["heatmap"].data[0].z, float), first_z)
    assert ex.log["heatmap"] == 3 and ex.log["languages"] == 3
    ex.color.value = "entropy"  # re-render only the heatmap
    assert calls[0] == n and ex.log["heatmap"] == 4 and ex.log["languages"] == 3
    assert_heatmap(ex, tiny_decoder, item_prompt(words, "flower"), color="entropy")
    n = calls[0]  # (the reference lens_table above ran the model)
    ex.languages.value = ("zh", "ru")  # only the curves, from the cached states
    assert calls[0] == n and ex.log["heatmap"] == 4 and ex.log["languages"] == 4
    text = item_prompt(words, "flower")
    traces = ex.figures["languages"].data
    assert [t.name for t in traces] == ["P(zh) 花", "P(ru) цветок"]
    ids = token_set(tiny_decoder.tokenizer, "цветок", language="ru").ids
    assert np.allclose(traces[1].y, reference_curve(tiny_decoder, text, ids), rtol=1e-4, atol=1e-7)
    n = calls[0]  # (and so did the reference curve)
    ex.run()  # a programmatic run: both figures once, still cached
    assert calls[0] == n and ex.log["heatmap"] == 5 and ex.log["languages"] == 5


def test_direction_change_resets_the_item_with_one_update(tiny_decoder, words, calls):
    ex = explorer(tiny_decoder, words)
    ex.item.value = "cup"
    ex.target.value = "ru"  # "cup" has no ru word: the item falls back to the first one, one update each
    assert ex.item.value == "flower" and "cup" not in ex.item.options
    assert ex.log["heatmap"] == 3 and ex.log["languages"] == 3
    assert_heatmap(ex, tiny_decoder, item_prompt(words, "flower", target="ru"))
    ex.source.value = "en"
    assert ex.log["heatmap"] == 4 and ex.log["languages"] == 4 and ex.item.value == "flower"
    assert ex.table.prompt == item_prompt(words, "flower", source="en", target="ru")


def test_free_prompt_mode(tiny_decoder, words, calls):
    ex = explorer(tiny_decoder, words)
    ex.mode.value = "free prompt"  # switching mode alone runs nothing
    assert ex.log["heatmap"] == 1 and not ex.prompt.disabled
    text = "Die Katze schläft auf dem Sofa."
    ex.prompt.value = text  # typing runs nothing either
    assert ex.log["heatmap"] == 1
    assert ex.run() is ex.table and ex.table.prompt == text
    assert ex.log["heatmap"] == 2 and ex.log["languages"] == 2
    assert_heatmap(ex, tiny_decoder, text)
    n = calls[0]  # after the reference run
    ex.item.value = "sofa"  # the curves follow the item's words on the same prompt; no model call
    assert calls[0] == n and ex.log["heatmap"] == 2 and ex.log["languages"] == 3
    ids = token_set(tiny_decoder.tokenizer, "Sofa", language="de").ids
    got = ex.figures["languages"].data[2].y
    assert np.allclose(got, reference_curve(tiny_decoder, text, ids), rtol=1e-4, atol=1e-7)
    ex.mode.value = "word item"  # back: the item's prompt (not run before, so one model run)
    assert ex.table.prompt == item_prompt(words, "sofa") and ex.log["heatmap"] == 3 and ex.prompt.disabled
    started = LogitLensExplorer(tiny_decoder, words=words, source="fr", target="de", shots=2, prompt=text)
    assert started.mode.value == "free prompt" and started.table.prompt == text


def test_errors_go_to_the_status_and_keep_the_figures(tiny_decoder, words):
    ex = explorer(tiny_decoder, words)
    ex.mode.value = "free prompt"
    z = np.asarray(ex.figures["heatmap"].data[0].z, float)
    for text, message in (("   ", "non-empty text"), ("Hund " * 200, "longer than the context")):
        ex.prompt.value = text
        assert ex.run() is None
        assert message in ex.status.value and message in ex.error
        assert ex.log["heatmap"] == 1 and np.array_equal(np.asarray(ex.figures["heatmap"].data[0].z, float), z)
        with pytest.raises(LensError, match=message):
            ex.run(raise_errors=True)
    ex.mode.value = "word item"  # a good run clears the error
    assert ex.error is None and "color:#b00" not in ex.status.value


def test_missing_word_and_empty_token_set_are_left_out_with_a_note(tiny_decoder, words):
    ex = explorer(tiny_decoder, words, target="zh")
    ex.languages.value = ("en", "zh", "de", "ru")
    ex.item.value = "bread"  # 面包 and хлеб: no tokens in the tiny vocabulary (no byte fallback for them)
    assert token_set(tiny_decoder.tokenizer, "面包").ids == () == token_set(tiny_decoder.tokenizer, "хлеб").ids
    assert [t.name for t in ex.figures["languages"].data] == ["P(en) bread", "P(de) Brot"]
    assert "the zh word '面包' has an empty token set" in ex.status.value and "хлеб" in ex.status.value
    assert ex.error is None and ex.log["languages"] == 3
    ex.item.value = "cup"
    assert [t.name for t in ex.figures["languages"].data] == ["P(en) cup", "P(de) Tasse"]
    assert "no ru word for this item" in ex.status.value and "杯子" in ex.status.value


def test_bad_inputs(tiny_decoder, tiny_encoder, words, tmp_path):
    with pytest.raises(LensError, match="encoder"):
        LogitLensExplorer(tiny_encoder, words=words)
    with pytest.raises(LensError, match="no words for language 'ja'"):
        explorer(tiny_decoder, words, target="ja")
    with pytest.raises(LensError, match="top_k"):
        explorer(tiny_decoder, words, top_k=0)
    with pytest.raises(LensError, match="shots asked"):
        explorer(tiny_decoder, words, shots=20)
    with pytest.raises(LensError, match="non-empty"):
        explorer(tiny_decoder, words, prompt="")
    ex = explorer(tiny_decoder, words)
    with pytest.raises(LensError, match="unknown figure"):
        ex.export("nope", tmp_path / "x")


def test_default_word_list_and_export(tiny_decoder, tmp_path):
    ex = LogitLensExplorer(tiny_decoder, top_k=2)  # the bundled list, fr -> zh
    assert len(ex.item.options) > 100 and ex.item.value == "dog" and ex.languages.value == ("en", "fr", "zh")
    assert ex.prompt.value.endswith('Français: "chien" - 中文: "')
    written = ex.export("languages", tmp_path / "curves", formats=["svg"])
    assert [p.name for p in written] == ["curves.svg"] and "P(fr) chien" in written[0].read_text()


def test_controls_offer_only_the_run_s_languages_and_curves_follow_source(tiny_decoder, words):
    ex = explorer(tiny_decoder, words, source="fr", target="de", latent="en", run_languages=["de", "fr", "ru"])
    offered = [v for _, v in ex.source.options]
    assert offered == ["de", "fr", "ru"] == [v for _, v in ex.languages.options] == [v for _, v in ex.target.options]
    assert ex.languages.value == ("fr", "de")  # en is not in the run, so not a default curve
    ex.source.value = "ru"
    assert ex.languages.value == ("ru", "de")  # the old source is replaced by the new one
    assert ex.busy_log and "computing the logit lens" in ex.busy_log[-1] and "ru → de" in ex.busy_log[-1]
    assert "computing" not in ex.status.value  # the run finished: the status is the result again
    ex.languages.value = ("ru", "de", "fr")
    ex.target.value = "fr"
    assert set(ex.languages.value) == {"ru", "fr"}
    fallback = explorer(tiny_decoder, words, source="zh", target="de", run_languages=["de", "ru"])
    assert (fallback.source.value, fallback.target.value) == ("ru", "de")
    with pytest.raises(LensError, match="two"):
        explorer(tiny_decoder, words, run_languages=["de", "xx"])
