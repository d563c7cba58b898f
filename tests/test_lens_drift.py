"""Prompt builders, drift statistics, intervals and bad inputs on the tiny Gemma."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xling_probe.errors import LensError
from xling_probe.lens import (
    WordList,
    build_item_sets,
    build_prompts,
    free_prompt,
    language_drift,
    mean_intervals,
    translation_pair,
)

# Words the tiny tokenizer knows (its training text has them).
TINY_WORDS = {
    "concept": ["flower", "dog", "book", "cat", "garden", "sofa", "bread", "milk"],
    "en": ["flower", "dog", "book", "cat", "garden", "sofa", "bread", "milk"],
    "de": ["Blume", "Hund", "Buch", "Katze", "Garten", "Sofa", "Brot", "Milch"],
    "fr": ["fleur", "chien", "livre", "chat", "jardin", "canapé", "pain", "lait"],
    "zh": ["花", "狗", "书", "猫", "花园", "沙发", "面包", "牛奶"],
    "cloze_de": ["Die ___ blüht.", "Der ___ bellt.", "Ich lese ein ___.", "Die ___ schläft.", "Im ___ wächst Gras.",
                 "Das ___ ist weich.", "Das ___ ist frisch.", "Die ___ ist weiß."],
}


@pytest.fixture
def words():
    return WordList.from_dict(TINY_WORDS)


def test_translation_prompt_text(words):
    assert translation_pair("fr", "fleur", "de", "Blume") == 'Français: "fleur" - Deutsch: "Blume"'
    prompts = build_prompts(words, source="fr", target="de", shots=2, seed=0, indices=[1])
    p = prompts[0]
    lines = p.text.split("\n")
    assert len(lines) == 3 and lines[-1] == 'Français: "chien" - Deutsch: "'
    for line, concept in zip(lines[:2], p.shots):
        k = words.concepts.index(concept)
        assert line == f'Français: "{TINY_WORDS["fr"][k]}" - Deutsch: "{TINY_WORDS["de"][k]}"'
    assert p.expected == "Hund" and p.concept == "dog" and p.source == "fr" and p.target == "de"
    assert "dog" not in p.shots and len(set(p.shots)) == 2


def test_shots_are_seeded(words):
    a = build_prompts(words, source="fr", target="de", shots=3, seed=1)
    b = build_prompts(words, source="fr", target="de", shots=3, seed=1)
    c = build_prompts(words, source="fr", target="de", shots=3, seed=2)
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.shots for p in a] != [p.shots for p in c]
    # an item's prompt does not depend on which other items are built
    assert build_prompts(words, source="fr", target="de", shots=3, seed=1, indices=[4])[0].text == a[4].text
    assert all(p.concept not in p.shots for p in a)


def test_repetition_cloze_and_free_prompts(words):
    rep = build_prompts(words, task="repetition", target="de", shots=1, indices=[0])[0]
    k = words.concepts.index(rep.shots[0])
    word = TINY_WORDS["de"][k]
    assert rep.text == f'Deutsch: "{word}" - Deutsch: "{word}"\nDeutsch: "Blume" - Deutsch: "' and rep.source == "de"
    cloze = build_prompts(words, task="cloze", target="de", shots=1, indices=[0])[0]
    k = words.concepts.index(cloze.shots[0])
    assert cloze.text == f'{TINY_WORDS["cloze_de"][k]} → "{TINY_WORDS["de"][k]}"\nDie ___ blüht. → "'
    with pytest.raises(LensError, match="cloze_fr"):
        build_prompts(words, task="cloze", target="fr", shots=1)
    assert free_prompt("Hallo Welt").text == "Hallo Welt"
    with pytest.raises(LensError):
        free_prompt("  ")


def test_too_many_shots(words):
    with pytest.raises(LensError, match="8 shots asked, but only 7 other items"):
        build_prompts(words, source="fr", target="de", shots=8)
    assert len(build_prompts(words, source="fr", target="de", shots=7, indices=[0])[0].shots) == 7
    missing = WordList.from_dict({"en": ["dog", "cat", "sun"], "de": ["Hund", "", "Sonne"]})
    with pytest.raises(LensError, match="lack words in en and de: cat"):
        build_prompts(missing, source="en", target="de", shots=1, indices=[1])


def reference_values(model, result, words):
    """Per-item values from each prompt run alone through the HF model with output_hidden_states:
    hidden_states[l] is the raw residual for l < L; the last layer's distribution is the model's
    own softmax (its last hidden state is already normed, so it is not put through the lens)."""
    from xling_probe.lens import Lens

    lens = Lens(model)
    tok = model.tokenizer
    sets = build_item_sets(tok, words, [result.source, result.target, result.latent], latent=result.latent,
                           target=result.target)
    by_concept = {words.concepts[k]: j for j, k in enumerate(sets.kept)}
    out = {m: np.zeros((result.n_items, len(result.layers))) for m in ("p_target", "p_latent", "p_source",
                                                                         "entropy_bits", "kl_to_final_bits")}
    for i, (concept, prompt) in enumerate(zip(result.concepts, result.prompts)):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.inference_mode():
            res = model.model(input_ids=ids, output_hidden_states=True)
        own = torch.log_softmax(res.logits[0, -1].double(), -1)
        logps = [torch.log_softmax(lens.logits(h[0, -1]).double(), -1) for h in res.hidden_states[:-1]] + [own]
        j = by_concept[concept]
        for li, logp in enumerate(logps):
            p = logp.exp()
            for role, code in (("target", result.target), ("latent", result.latent), ("source", result.source)):
                out[f"p_{role}"][i, li] = float(p[list(sets.sets[code][j].ids)].sum())
            out["entropy_bits"][i, li] = float(-(p * logp).sum()) / math.log(2)
            out["kl_to_final_bits"][i, li] = float((own.exp() * (own - logp)).sum()) / math.log(2)
    return out


def test_drift_values_match_an_independent_reference(tiny_decoder, words):
    result = language_drift(tiny_decoder, words, source="de", target="zh", shots=2, batch_size=3, n_boot=200,
                            progress=False)
    # 面包 and 牛奶 are not in the tiny vocabulary (no byte fallback): empty sets, reported
    assert result.dropped.concepts == ("bread", "milk") and result.n_items == len(words) - 2
    assert result.dropped.counts() == {"empty token set in zh": 2}
    assert result.layers == (0, 1, 2, 3)
    assert result.meta["final_logits_max_abs_diff"] < 1e-4
    ref = reference_values(tiny_decoder, result, words)
    for metric, expected in ref.items():
        assert np.allclose(result.values[metric], expected, rtol=1e-4, atol=1e-6), metric
    assert np.all(result.values["rank_target"] >= 1)
    # summary = the mean of the per-item values, with Gaussian intervals from the definition
    df = result.to_dataframe()
    row = df[(df.metric == "p_target") & (df.layer == 2)].iloc[0]
    v = result.values["p_target"][:, 2]
    assert math.isclose(row["mean"], v.mean()) and row["language"] == "zh" and row["n"] == len(v)
    half = 1.959963984540054 * v.std(ddof=1) / math.sqrt(len(v))
    assert math.isclose(row["ci_low"], v.mean() - half) and math.isclose(row["ci_high"], v.mean() + half)
    items = result.items_dataframe()
    assert len(items) == 6 * 6 * 4  # metrics x items x layers
    sel = items[(items.metric == "entropy_bits") & (items.concept == "dog") & (items.layer == 1)]
    assert float(sel.value.iloc[0]) == result.values["entropy_bits"][result.concepts.index("dog"), 1]
    ds = result.to_xarray()
    assert float(ds["mean"].sel(metric="kl_to_final_bits", layer=3)) == pytest.approx(0.0, abs=1e-5)
    assert "P(zh)" in result.format_curves()


def test_drift_is_deterministic_and_batch_independent(tiny_decoder, words):
    a = language_drift(tiny_decoder, words, source="fr", target="de", shots=2, batch_size=8, n_boot=100, progress=False)
    b = language_drift(tiny_decoder, words, source="fr", target="de", shots=2, batch_size=1, n_boot=100, progress=False,
                       chunk_elements=300)
    for m in a.values:
        # float32 softmax/KL noise of a different batch shape and vocabulary chunking is ~1e-7 bits
        assert np.allclose(a.values[m], b.values[m], rtol=1e-4, atol=1e-6), m
    assert np.array_equal(a.summary["p_target"]["boot_low"], language_drift(
        tiny_decoder, words, source="fr", target="de", shots=2, batch_size=8, n_boot=100, progress=False
    ).summary["p_target"]["boot_low"])


def test_drift_filters_are_reported(tiny_decoder, words):
    result = language_drift(tiny_decoder, words, source="de", target="fr", shots=2, n_boot=50, progress=False)
    dropped = set(result.dropped.concepts)
    assert {"flower", "cat"} <= dropped  # fleur/flower share 'f'; chat/cat share 'c'
    assert not dropped & set(result.concepts)
    assert result.n_items + len(result.dropped) == len(words)


def test_intervals_cover_the_true_mean():
    # 400 synthetic data sets (columns) of n = 40 skewed values with known mean 1/(1+3) = 0.25
    rng = np.random.default_rng(0)
    x = rng.beta(1.0, 3.0, size=(40, 400))
    res = mean_intervals(x, n_boot=1000, seed=0)
    gauss = np.mean((res["ci_low"] <= 0.25) & (0.25 <= res["ci_high"]))
    boot = np.mean((res["boot_low"] <= 0.25) & (0.25 <= res["boot_high"]))
    # binomial sd of a coverage estimate over 400 sets is 0.011: allow 3 sd around 0.95
    assert 0.915 <= gauss <= 0.985
    assert 0.91 <= boot <= 0.985
    narrow = mean_intervals(x, level=0.5, n_boot=1000, seed=0)
    assert np.all(narrow["ci_high"] - narrow["ci_low"] < res["ci_high"] - res["ci_low"])
    assert np.array_equal(res["boot_low"], mean_intervals(x, n_boot=1000, seed=0)["boot_low"])
    with pytest.raises(LensError, match="at least 2"):
        mean_intervals(x[:1])
    with pytest.raises(LensError, match="NaN"):
        mean_intervals(np.array([[1.0], [np.nan]]))


def test_bad_inputs(tiny_decoder, tiny_encoder, words):
    with pytest.raises(LensError, match="no words for language 'ja'"):
        language_drift(tiny_decoder, words, source="fr", target="ja", progress=False)
    with pytest.raises(LensError, match="shots asked"):
        language_drift(tiny_decoder, words, source="de", target="zh", shots=20, progress=False)
    with pytest.raises(LensError, match="encoder"):
        language_drift(tiny_encoder, words, source="de", target="zh", progress=False)
    with pytest.raises(LensError, match="unknown task"):
        language_drift(tiny_decoder, words, source="de", target="zh", task="summary", progress=False)
    with pytest.raises(LensError, match="needs source="):
        language_drift(tiny_decoder, words, target="zh", progress=False)
    with pytest.raises(LensError, match="only 1 item"):
        language_drift(tiny_decoder, words, source="de", target="zh", limit=1, progress=False)
    # 40 concepts and 35 shots: prompts of several hundred tokens, the tiny context is 128
    many = WordList.from_dict({"en": [f"dog{i}" for i in range(40)], "de": [f"Hund{i}" for i in range(40)],
                               "zh": ["狗"] * 40})
    with pytest.raises(LensError, match="longer than the context of .* \\(128 tokens\\)"):
        language_drift(tiny_decoder, many, source="de", target="zh", shots=35, progress=False)


# ------------------------------------------------------------------ recipe="wendler"
def _demo_concepts(prompt: str, words, source: str) -> list[str]:
    """The concepts of a prompt's demonstration lines, read back from their source words."""
    lines = prompt.split("\n")[:-1]
    by_word = {TINY_WORDS[source][k]: words.concepts[k] for k in range(len(words))}
    return [by_word[line.split('"')[1]] for line in lines]


def test_wendler_recipe_writes_k_minus_one_demonstrations_from_kept_items(tiny_decoder, words):
    # de -> fr drops flower and cat (their fr and en token sets overlap), see test_drift_filters_are_reported
    default = language_drift(tiny_decoder, words, source="de", target="fr", shots=4, n_boot=20, progress=False)
    result = language_drift(tiny_decoder, words, source="de", target="fr", recipe="wendler", n_boot=20,
                            progress=False)
    dropped = set(result.dropped.concepts)
    assert {"flower", "cat"} <= dropped and result.concepts == default.concepts
    # their k = 5 counts the query: 4 demonstration lines + the open query line
    assert all(len(p.split("\n")) == 5 for p in result.prompts)
    assert result.meta["shots"] == 4 and result.meta["k"] == 5 and result.meta["recipe"] == "wendler"
    assert result.meta["demonstrations_from"] == "kept" and result.meta["first_byte_languages"] == ["zh", "ru"]
    demos = [_demo_concepts(p, words, "de") for p in result.prompts]
    assert all(len(d) == 4 and not set(d) & dropped for d in demos)
    assert all(c not in d for c, d in zip(result.concepts, demos))
    # the default draws from every row with both words, dropped ones included
    assert any(set(_demo_concepts(p, words, "de")) & dropped for p in default.prompts)
    assert default.meta["recipe"] is None and default.meta["demonstrations_from"] == "usable rows"
    assert default.meta["shots"] == 4 and default.meta["k"] == 5  # shots counts demonstrations only


def test_wendler_recipe_adds_the_first_byte_token_for_zh(tiny_decoder, words):
    tok = tiny_decoder.tokenizer
    plain = build_item_sets(tok, words, ["de", "zh"], latent="en", target="zh")
    always = build_item_sets(tok, words, ["de", "zh"], latent="en", target="zh", first_byte_languages=("zh", "ru"))
    flower = words.concepts.index("flower")
    first_byte = f"<0x{'花'.encode('utf-8')[0]:02X}>"  # <0xE8>
    zh_plain = plain.sets["zh"][plain.kept.index(flower)]
    zh_always = always.sets["zh"][always.kept.index(flower)]
    assert first_byte not in zh_plain.tokens  # 花 is one token of the tiny vocabulary: no byte token by default
    assert first_byte in zh_always.tokens and tok.convert_tokens_to_ids(first_byte) in zh_always.ids
    assert set(zh_plain.ids) < set(zh_always.ids)
    # German is not a first-byte language: its sets are unchanged
    assert [always.sets["de"][always.kept.index(k)].ids for k in plain.kept] == [s.ids for s in plain.sets["de"]]
    assert set(plain.kept) < set(always.kept)
    # 面包 and 牛奶 have no token of their own but a first byte: kept by the recipe, dropped by default
    result = language_drift(tiny_decoder, words, source="de", target="zh", recipe="wendler", n_boot=20, progress=False)
    assert "bread" in result.concepts and "milk" in result.concepts
    assert "empty token set in zh" not in result.dropped.counts()


def test_wendler_recipe_refuses_contradicting_arguments(tiny_decoder, words):
    from xling_probe.recipes import RecipeError

    with pytest.raises(RecipeError, match="recipe='wendler' sets shots=4, but shots=5 was given"):
        language_drift(tiny_decoder, words, source="de", target="fr", recipe="wendler", shots=5, progress=False)
    with pytest.raises(LensError, match="sets single_token=False"):
        language_drift(tiny_decoder, words, source="de", target="fr", recipe="wendler", single_token=True,
                       progress=False)
    with pytest.raises(LensError, match="unknown recipe 'llama'"):
        language_drift(tiny_decoder, words, source="de", target="fr", recipe="llama", progress=False)


def test_demonstrations_restricted_to_given_rows(words):
    allowed = [0, 2, 4, 6]
    prompts = build_prompts(words, source="fr", target="de", shots=3, seed=0, indices=[1, 2],
                            demonstrations=allowed)
    for p in prompts:
        assert {words.concepts.index(c) for c in p.shots} <= set(allowed) and p.concept not in p.shots
    # item 2 is among the allowed rows, so only 3 others remain for it
    with pytest.raises(LensError, match="4 shots asked, but only 3 other items .* among the allowed"):
        build_prompts(words, source="fr", target="de", shots=4, indices=[2], demonstrations=allowed)
    outside = build_prompts(words, source="fr", target="de", shots=4, indices=[1], demonstrations=allowed)[0]
    assert sorted(words.concepts.index(c) for c in outside.shots) == allowed  # item 1 is not allowed: 4 others
