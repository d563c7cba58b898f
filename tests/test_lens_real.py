"""Language drift on the offline Gemma 3 270M with the bundled word list (the latent-language figure)."""

from __future__ import annotations

import numpy as np
import pytest

from xling_probe.lens import (
    Lens,
    build_prompts,
    check_final_logits,
    language_drift,
    language_shares,
    lens_table,
    load_words,
    token_set,
)
from xling_probe.lens.core import encode, run_batches

pytestmark = pytest.mark.real
N_ITEMS = 48  # the first 48 items that pass the filters: enough for clear curves, quick on a CPU


def show(result, capsys) -> None:
    """Print the per-layer curves so they appear in the test log, whatever pytest's capture mode."""
    with capsys.disabled():
        print("\n" + result.format_curves(("p_target", "p_latent", "p_source", "entropy_bits", "kl_to_final_bits")))


def check_shape(result) -> None:
    p_t, p_en = result.curve("p_target"), result.curve("p_latent")
    last = len(result.layers) - 1
    assert result.meta["final_logits_max_abs_diff"] < 1e-3  # the lens at the last layer = the model
    assert result.curve("kl_to_final_bits")[last] == pytest.approx(0.0, abs=1e-4)
    # the target word appears only in the last layers...
    assert p_t[last - 1 :].max() > 0.05
    assert p_t[:10].max() < 0.01
    # ...and English peaks earlier than the target (Wendler et al.'s latent-English shape)
    assert int(np.argmax(p_en)) < int(np.argmax(p_t))
    assert p_en.max() > 10 * p_en[:10].max()
    # the lens distribution approaches the final one: KL falls from the early to the late layers
    kl = result.curve("kl_to_final_bits")
    assert kl[last - 1] < kl[1] / 5


def test_fr_to_zh(real_model, capsys):
    result = language_drift(real_model, source="fr", target="zh", limit=N_ITEMS, progress=False)
    show(result, capsys)
    assert result.n_items == N_ITEMS and (result.source, result.target, result.latent) == ("fr", "zh", "en")
    check_shape(result)


def test_de_to_fr(real_model, capsys):
    result = language_drift(real_model, source="de", target="fr", limit=N_ITEMS, progress=False)
    show(result, capsys)
    # French and English share many prefix tokens: those items are dropped and reported
    assert len(result.dropped) > 0
    assert set(result.dropped.counts()) <= {"latent (en) and target (fr) token sets overlap",
                                             "latent (en) word is a substring of the target (fr) word"}
    check_shape(result)


def test_gemma_token_sets(real_model):
    tok = real_model.tokenizer
    assert {"花", "▁花"} <= set(token_set(tok, "花").tokens)
    assert {"flower", "▁flower", "f", "▁f", "fl", "▁fl"} <= set(token_set(tok, "flower").tokens)
    rare = token_set(tok, "Ĳ")  # Gemma writes this letter as the bytes C4 B2
    assert tok.tokenize("Ĳ")[0] == "<0xC4>" and "<0xC4>" in rare.tokens and rare.byte_fallback


def test_real_last_layer_and_views(real_model):
    lens = Lens(real_model)
    assert lens.softcap is None and lens.vocab_size == 262144
    rows = encode(real_model, ['Français: "chien" - 中文: "', "Der Hund läuft."])
    (_, inputs, states), = list(run_batches(real_model, rows, [0, real_model.n_blocks], batch_size=2))
    assert check_final_logits(real_model, lens, inputs, states[real_model.n_blocks]) < 1e-3
    words = load_words()
    prompt = build_prompts(words, source="fr", target="zh", shots=5, indices=[words.concepts.index("water")])[0]
    table = lens_table(real_model, prompt, top_k=3, layers=[14, 16, 18])
    # the heatmap's last column: English "water" in the middle layers, then 水 at the output
    assert [table.top_tokens[j, -1, 0] for j in range(3)] == ["water", "water", "水"]
    assert table.top_probs[-1, -1, 0] > 0.5
    shares = language_shares(real_model, "Der Hund läuft im Garten und die Katze schläft.", top_k=5, progress=False)
    assert shares.share("Latin")[-1] > 0.5


def test_backends_agree_on_the_real_model(real_model, real_model_tl):
    pytest.importorskip("xling_probe.models.tl_bridge", reason="the TransformerLens backend is not there yet")
    # both handles share the weights; booting the bridge switched both to eager attention
    a = language_drift(real_model, source="fr", target="zh", limit=6, shots=3, n_boot=50, progress=False)
    b = language_drift(real_model_tl, source="fr", target="zh", limit=6, shots=3, n_boot=50, progress=False)
    for metric in ("p_target", "p_latent", "p_source", "entropy_bits", "kl_to_final_bits"):
        np.testing.assert_allclose(b.values[metric], a.values[metric], rtol=1e-3, atol=1e-5, err_msg=metric)
