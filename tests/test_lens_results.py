"""The public result API of the lens: DriftResult.sel/to_dict, PositionTable.sel/to_dict, prompt_lens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xling_probe.errors import LensError
from xling_probe.lens import WordList, language_drift, lens_table, prompt_lens, token_set

WORDS = {
    "concept": ["flower", "dog", "book", "cat", "garden", "sofa"],
    "en": ["flower", "dog", "book", "cat", "garden", "sofa"],
    "de": ["Blume", "Hund", "Buch", "Katze", "Garten", "Sofa"],
    "fr": ["fleur", "chien", "livre", "chat", "jardin", "canapé"],
}
TEXT = 'Français: "chat" - Deutsch: "'


@pytest.fixture(scope="module")
def drift(tiny_decoder):
    return language_drift(tiny_decoder, WordList.from_dict(WORDS), source="fr", target="de", shots=2, n_boot=50,
                          progress=False)


def test_drift_sel_by_name(drift):
    assert drift.sel("p_target", 2) == pytest.approx(float(drift.summary["p_target"]["mean"][2]))
    assert drift.sel("p_latent", -1, "boot_high") == drift.summary["p_latent"]["boot_high"][-1]
    whole = drift.sel("entropy_bits")
    assert np.array_equal(whole, drift.curve("entropy_bits")) and not whole.flags.writeable
    assert np.array_equal(drift.sel("p_source", [0, 3]), drift.curve("p_source")[[0, 3]])
    assert np.array_equal(drift.sel("p_source", "1-2", "sd"), drift.curve("p_source", "sd")[1:3])
    assert np.array_equal(drift.sel("rank_target", 1, "values"), drift.values["rank_target"][:, 1])
    assert not drift.values["p_target"].flags.writeable and not drift.curve("p_target", "ci_low").flags.writeable
    with pytest.raises(TypeError):
        drift.summary["p_target"]["mean"] = np.zeros(3)  # a frozen result, mappings included
    for bad, match in (({"metric": "p_zh"}, "unknown metric"), ({"stat": "median"}, "unknown statistic"),
                       ({"layer": 9}, "not available"), ({"layer": "x"}, "cannot read layer")):
        with pytest.raises(LensError, match=match):
            drift.sel(**{"metric": "p_target", **bad})


def test_drift_to_dict_is_json_safe(drift):
    d = drift.to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["curves"]["p_target"]["mean"] == pytest.approx(list(drift.curve("p_target")))
    assert back["layers"] == list(drift.layers) and back["n_items"] == drift.n_items
    assert back["dropped"]["n"] == len(drift.dropped) and back["meta"]["shots"] == 2
    items = drift.to_dict(items=True)["values"]["p_target"]
    assert np.allclose(np.array(items, float), drift.values["p_target"])


def test_position_table_sel_and_to_dict(tiny_decoder):
    table = lens_table(tiny_decoder, TEXT, top_k=3)
    assert not table.top_ids.flags.writeable and not table.entropy_bits.flags.writeable
    assert table.sel("entropy_bits", layer=-1, position=2) == pytest.approx(float(table.entropy_bits[-1, 2]))
    assert list(table.sel("top_tokens", layer=1, position=-1)) == list(table.top_tokens[1, -1])
    assert table.sel("top_probs", position=0).shape == (len(table.layers), 3)
    with pytest.raises(LensError, match="unknown field"):
        table.sel("logits")
    with pytest.raises(LensError, match="position"):
        table.sel("entropy_bits", layer=0, position=len(table.input_ids))
    d = json.loads(json.dumps(table.to_dict(), allow_nan=False))
    assert d["top_ids"] == table.top_ids.tolist() and d["input_tokens"] == list(table.input_tokens)
    assert np.allclose(d["kl_to_final_bits"], table.kl_to_final_bits, atol=1e-7)


def test_prompt_lens_equals_lens_table_and_adds_curves_without_a_model_run(tiny_decoder):
    calls = [0]
    hook = tiny_decoder.parts.runner.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        de = token_set(tiny_decoder.tokenizer, "Katze", language="de")
        result = prompt_lens(tiny_decoder, TEXT, sets={"de": de}, top_k=3)
        ran = calls[0]
        fr = token_set(tiny_decoder.tokenizer, "chat", language="fr").ids
        more = result.with_sets({"fr": fr, "de": de})
        assert calls[0] == ran  # from the kept states
    finally:
        hook.remove()
    table = lens_table(tiny_decoder, TEXT, top_k=3)
    assert np.array_equal(result.table.top_ids, table.top_ids)
    assert np.allclose(result.table.top_probs, table.top_probs, rtol=1e-6)
    assert list(more.curves) == ["de", "fr"] and more.curves["de"] is result.curves["de"]
    assert not more.curves["fr"].flags.writeable and more.curves["fr"].shape == (len(result.layers),)
    # the last layer is the model's own softmax at the last position: P(set) = the summed probabilities
    with torch.inference_mode():
        logits = tiny_decoder.model(input_ids=torch.tensor([list(table.input_ids)])).logits[0, -1].double()
    assert more.sel("fr", -1) == pytest.approx(float(torch.softmax(logits, -1)[list(fr)].sum()), rel=1e-4)
    assert more.sel("de", 0) == pytest.approx(float(more.curves["de"][0]))
    df = more.to_dataframe()
    assert len(df) == 2 * len(result.layers) and set(df.set) == {"de", "fr"}
    assert json.loads(json.dumps(more.to_dict(), allow_nan=False))["curves"]["fr"] == pytest.approx(list(more.curves["fr"]))
    with pytest.raises(LensError, match="no curve"):
        more.sel("zh")
    with pytest.raises(LensError, match="empty"):
        result.with_sets({"zh": ()})
    with pytest.raises(LensError, match="non-empty"):
        prompt_lens(tiny_decoder, "")
