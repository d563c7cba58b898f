"""The multilingual tuned lens: translators, training, validation, cache, and reading drift through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xling_probe.data.corpus import ParallelCorpus
from xling_probe.errors import LensError
from xling_probe.lens import Lens, TunedLens, compare_lenses, language_drift, lens_stats, prompt_lens, train_tuned_lens
from xling_probe.lens import tuned_fit as tuned_mod

TRAIN = ["en", "de", "ru", "zh"]
HELD_OUT_LANGS = ["fr", "ar"]
SMALL = dict(languages=TRAIN, n_sentences=40, max_tokens=600, validation_tokens=64, steps=8, batch_tokens=64,
             lr=1e-3, progress=False)


@pytest.fixture(scope="module")
def sample():
    return ParallelCorpus.sample()


@pytest.fixture(scope="module")
def trained(tiny_decoder, sample):
    return train_tuned_lens(tiny_decoder, sample, cache=False, **SMALL)


def _zero_lens(model) -> TunedLens:
    s, d = model.n_states, model.d_model
    return TunedLens(model=model.name, fingerprint=str(model.fingerprint), weight=np.zeros((s, d, d), np.float32),
                     bias=np.zeros((s, d), np.float32))


def test_translate_is_the_affine_formula_and_the_last_state_is_the_identity(tiny_decoder, trained):
    torch.manual_seed(0)
    layers = list(range(tiny_decoder.n_states))
    h = torch.randn(len(layers), 5, tiny_decoder.d_model)
    out = trained.translate(h, layers)
    for l in (0, len(layers) // 2):
        a, b = torch.tensor(trained.weight[l]), torch.tensor(trained.bias[l])
        assert torch.allclose(out[l], h[l] + h[l] @ a.T + b, atol=1e-5)
    assert torch.equal(out[-1], h[-1])  # A = 0, b = 0 exactly
    assert np.all(trained.weight[-1] == 0) and np.all(trained.bias[-1] == 0)
    # a subset of layers picks the matching translators
    sub = trained.translate(h[[1, 3]], [1, 3])
    assert torch.allclose(sub, out[[1, 3]], atol=1e-6)


def test_training_lowers_the_exact_kl_on_held_out_sentences_and_languages(tiny_decoder, sample, trained):
    held = {lang: list(sample.texts(lang))[100:120] for lang in TRAIN[:2] + HELD_OUT_LANGS}
    cmp = compare_lenses(tiny_decoder, trained, held, max_tokens=120)
    logit, tuned = cmp.curve("logit"), cmp.curve("tuned")
    assert logit[-1] == pytest.approx(0.0, abs=1e-4) and tuned[-1] == pytest.approx(0.0, abs=1e-4)
    mid = slice(1, tiny_decoder.n_states - 1)
    assert tuned[mid].mean() < logit[mid].mean()
    for lang in HELD_OUT_LANGS:  # languages the lens never saw
        assert cmp.curve("tuned", lang)[mid].mean() < cmp.curve("logit", lang)[mid].mean()
    # the validation rule: a translator kept only where it beat the logit lens on the validation positions
    meta = trained.meta
    for l in range(tiny_decoder.n_states - 1):
        fitted_better = meta["validation_kl_bits_fitted"][l] < meta["validation_kl_bits_logit"][l]
        assert (l in meta["identity_layers"]) == (not fitted_better)
        assert np.any(trained.weight[l] != 0) == fitted_better
    df = cmp.to_dataframe()
    assert set(df["lens"]) == {"logit", "tuned"} and set(df["language"]) == set(held)
    row = df[(df.language == "fr") & (df.lens == "tuned") & (df.layer == 2)].iloc[0]
    assert row.kl_bits == pytest.approx(cmp.curve("tuned", "fr")[2]) and row.low <= row.kl_bits <= row.high


def test_compare_lenses_is_the_exact_kl_of_translated_states(tiny_decoder, sample, trained):
    texts = list(sample.texts("fr"))[100:104]
    cmp = compare_lenses(tiny_decoder, trained, {"fr": texts}, max_tokens=10)
    states = tuned_mod.collect_positions(tiny_decoder, texts, max_tokens=10, seed=0)
    lens = Lens(tiny_decoder)
    layers = list(range(tiny_decoder.n_states))
    logits_final = lens.logits(states[-1])
    logp = torch.log_softmax(logits_final.double(), -1)
    for l in (1, 2):
        q = torch.log_softmax(lens.logits(trained.translate(states, layers)[l]).double(), -1)
        kl = (logp.exp() * (logp - q)).sum(-1) / np.log(2)
        assert cmp.kl_tuned[:, l] == pytest.approx(kl.numpy(), abs=1e-4)


def test_a_zero_lens_reads_like_the_logit_lens_and_a_trained_one_changes_only_inner_layers(tiny_decoder, trained):
    kwargs = dict(source="fr", target="zh", limit=4, shots=2, n_boot=50, progress=False, cache=False)
    plain = language_drift(tiny_decoder, **kwargs)
    zero = language_drift(tiny_decoder, tuned=_zero_lens(tiny_decoder), **kwargs)
    for m in ("p_target", "p_latent", "entropy_bits", "kl_to_final_bits"):
        np.testing.assert_allclose(zero.values[m], plain.values[m], rtol=1e-5, atol=1e-7)
    read = language_drift(tiny_decoder, tuned=trained, **kwargs)
    assert read.meta["lens_kind"] == "tuned" and plain.meta["lens_kind"] == "logit"
    assert read.meta["tuned_lens"] == trained.digest
    np.testing.assert_allclose(read.values["p_target"][:, -1], plain.values["p_target"][:, -1], rtol=1e-5, atol=1e-7)
    changed = [l for l in range(tiny_decoder.n_states - 1) if l not in trained.meta["identity_layers"]]
    assert changed, "the tiny model's lens kept the identity everywhere"
    assert not np.allclose(read.values["kl_to_final_bits"][:, changed], plain.values["kl_to_final_bits"][:, changed])


def test_prompt_lens_through_the_tuned_lens(tiny_decoder, trained):
    ids = [5, 6, 7]
    text = "Le chat dort sur le canapé."
    got = prompt_lens(tiny_decoder, text, sets={"x": ids}, tuned=trained)
    assert got.lens_kind == "tuned" and got.with_sets({"y": [8]}).lens_kind == "tuned"
    states = tuned_mod.collect_positions(tiny_decoder, [text], max_tokens=None)
    layers = list(range(tiny_decoder.n_states))
    last = trained.translate(states[:, -1:], layers)
    want = lens_stats(Lens(tiny_decoder), last, sets={"x": [ids]}).sets["x"][:, 0].numpy()
    np.testing.assert_allclose(got.curves["x"], want, rtol=1e-4, atol=1e-7)


def test_drift_cache_keys_the_lens(tiny_decoder, trained, tmp_path):
    kwargs = dict(source="fr", target="zh", limit=3, shots=2, n_boot=20, progress=False, cache_root=tmp_path)
    a = language_drift(tiny_decoder, tuned=trained, **kwargs)
    b = language_drift(tiny_decoder, **kwargs)  # must not be served the tuned entry
    assert a.meta["lens_kind"] == "tuned" and b.meta["lens_kind"] == "logit"
    again = language_drift(tiny_decoder, tuned=trained, **kwargs)
    np.testing.assert_array_equal(again.values["kl_to_final_bits"], a.values["kl_to_final_bits"])


def test_the_trained_lens_is_cached_by_content(tiny_decoder, sample, tmp_path, monkeypatch):
    kw = {**SMALL, "steps": 2, "max_tokens": 200}
    first = train_tuned_lens(tiny_decoder, sample, cache_root=tmp_path, **kw)
    assert first.meta["from_cache"] is False

    def no_model(*a, **k):
        raise AssertionError("the model ran on a cache hit")

    monkeypatch.setattr(tuned_mod, "collect_positions", no_model)
    again = train_tuned_lens(tiny_decoder, sample, cache_root=tmp_path, **kw)
    assert again.meta["from_cache"] is True and again.digest == first.digest
    with pytest.raises(AssertionError):  # other settings are another entry
        train_tuned_lens(tiny_decoder, sample, cache_root=tmp_path, **{**kw, "steps": 3})


def test_sampled_softmax_training_runs_on_a_vocabulary_subset(tiny_decoder, sample):
    lens = train_tuned_lens(tiny_decoder, sample, cache=False, **{**SMALL, "vocab_size": 64, "max_tokens": 300})
    assert lens.meta["vocab_top"] <= 32 and lens.meta["vocab_tail_sampled"] == 64 - lens.meta["vocab_top"]
    assert 0 < lens.meta["vocab_coverage"] <= 1 + 1e-6
    assert np.isfinite(lens.weight).all()


def test_save_load_and_bad_inputs(tiny_decoder, tiny_gpt2_model, trained, tmp_path, sample):
    path = trained.save(tmp_path / "lens.npz")
    back = TunedLens.load(path)
    assert back.digest == trained.digest and back.meta["identity_layers"] == trained.meta["identity_layers"]
    table = back.validation_table()
    assert list(table.identity) == [l in trained.meta["identity_layers"] for l in range(tiny_decoder.n_states - 1)] + [True]
    with pytest.raises(LensError, match="trained on"):
        language_drift(tiny_gpt2_model, source="fr", target="zh", limit=2, shots=2, tuned=trained, progress=False, cache=False)
    with pytest.raises(LensError, match="TunedLens"):
        language_drift(tiny_decoder, source="fr", target="zh", limit=2, shots=2, tuned="yes", progress=False, cache=False)
    with pytest.raises(LensError, match="not a tuned lens"):
        (tmp_path / "bad.npz").write_bytes(b"nope")
        TunedLens.load(tmp_path / "bad.npz")
    with pytest.raises(LensError, match="not in the corpus"):
        train_tuned_lens(tiny_decoder, sample, languages=["xx"], progress=False, cache=False)
    with pytest.raises(LensError, match="steps"):
        train_tuned_lens(tiny_decoder, sample, steps=-1, progress=False, cache=False)
    with pytest.raises(LensError, match="needs sentences"):
        compare_lenses(tiny_decoder, trained, {"fr": []})
    with pytest.raises(LensError, match="init"):
        train_tuned_lens(tiny_decoder, sample, init="random", progress=False, cache=False)
    with pytest.raises(LensError, match="non-finite"):
        TunedLens(model="m", fingerprint="f", weight=np.full((2, 3, 3), np.nan, np.float32),
                  bias=np.zeros((2, 3), np.float32))


def test_encoder_models_are_refused(tiny_encoder):
    with pytest.raises(LensError):
        train_tuned_lens(tiny_encoder, progress=False, cache=False)


def test_cli_trains_saves_and_drift_reads_it(tiny_decoder_dir, tiny_decoder, tmp_path, capsys):
    import json

    from xling_probe.cli.main import main

    out = tmp_path / "tl"
    code = main(["tuned-lens", "--model", str(tiny_decoder_dir), "--device", "cpu", "--langs", "en,de,zh",
                 "--sentences", "30", "--tokens", "300", "--steps", "2", "--eval-langs", "fr", "--eval-tokens", "20",
                 "--out", str(out)])
    assert code == 0 and "logit   tuned" in capsys.readouterr().out
    lens = TunedLens.load(out / "lens.npz")
    summary = json.loads((out / "tuned_lens.json").read_text(encoding="utf-8"))
    assert summary["digest"] == lens.digest
    sample = ParallelCorpus.sample()
    cmp = compare_lenses(tiny_decoder, lens, {"fr": list(sample.texts("fr"))[30:]}, max_tokens=20)
    np.testing.assert_allclose(summary["kl_bits_tuned"], cmp.curve("tuned"), rtol=1e-5)
    drift_out = tmp_path / "drift"
    code = main(["drift", "--model", str(tiny_decoder_dir), "--device", "cpu", "--source", "fr", "--target", "zh",
                 "--shots", "2", "--limit", "3", "--n-boot", "20", "--tuned-lens", str(out / "lens.npz"),
                 "--out", str(drift_out)])
    assert code == 0
    written = json.loads((drift_out / "drift.json").read_text(encoding="utf-8"))
    direct = language_drift(tiny_decoder, source="fr", target="zh", shots=2, limit=3, n_boot=20, tuned=lens,
                            progress=False)
    assert written["curves"]["kl_to_final_bits"]["mean"] == pytest.approx(list(direct.curve("kl_to_final_bits")))
    code = main(["drift", "--model", str(tiny_decoder_dir), "--source", "fr", "--target", "zh",
                 "--tuned-lens", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "d2")])
    assert code == 2 and "no such file" in capsys.readouterr().err
    code = main(["tuned-lens", "--model", str(tiny_decoder_dir), "--langs", "en,xx", "--out", str(tmp_path / "t2")])
    assert code == 2 and "not in the corpus" in capsys.readouterr().err


def test_lens_explorer_switches_to_the_tuned_lens(tiny_decoder, trained):
    from test_widgets_lens import WORDS, item_prompt

    from xling_probe.lens import WordList
    from xling_probe.widgets import LogitLensExplorer

    words = WordList.from_dict(WORDS)
    ex = LogitLensExplorer(tiny_decoder, words=words, source="fr", target="de", shots=2, top_k=3, tuned=trained)
    assert not ex.lens_kind.disabled and ex.lens_kind.value == "logit"
    logit_curves = [np.asarray(t.y, float) for t in ex.figures["languages"].data]
    runs = ex.n_runs
    ex.lens_kind.value = "tuned"
    assert ex.n_runs == runs + 1 and "tuned lens" in ex.status.value
    text = item_prompt(words, ex.item.value)
    want = prompt_lens(tiny_decoder, text, top_k=3, tuned=trained)
    got = ex.figures["heatmap"].data[0]
    assert np.allclose(np.asarray(got.z, float), lens_heatmap_z(want), rtol=1e-5, atol=1e-6)
    tuned_curves = [np.asarray(t.y, float) for t in ex.figures["languages"].data]
    assert any(not np.allclose(a, b) for a, b in zip(logit_curves, tuned_curves))
    ex.lens_kind.value = "logit"  # back: cached, no model run
    assert ex.n_runs == runs + 1
    assert all(np.allclose(np.asarray(t.y, float), c) for t, c in zip(ex.figures["languages"].data, logit_curves))
    plain = LogitLensExplorer(tiny_decoder, words=words, source="fr", target="de", shots=2, top_k=3)
    assert plain.lens_kind.disabled
    with pytest.raises(LensError, match="TunedLens"):
        LogitLensExplorer(tiny_decoder, words=words, source="fr", target="de", shots=2, tuned=object())


def lens_heatmap_z(result):
    from xling_probe.plots import lens_heatmap

    return np.asarray(lens_heatmap(result.table).data[0].z, float)


def test_report_reads_the_drift_through_the_tuned_lens(tiny_decoder, trained, tmp_path):
    import json

    import pandas as pd

    from xling_probe.report import build_report

    small = dict(langs=["en", "de", "fr", "zh"], limit=12, bootstrap=10, null_permutations=3, drift_items=3, shots=2,
                 progress=False, static=False)
    path = trained.save(tmp_path / "lens.npz")
    res = build_report(tmp_path / "rep", model=tiny_decoder, pairs=[("fr", "zh")], tuned_lens=str(path), **small)
    table = pd.read_csv(res.out / "tables" / "tuned_fr_zh.csv")
    logit = language_drift(tiny_decoder, source="fr", target="zh", latent="en", shots=2, limit=3, progress=False)
    tuned = language_drift(tiny_decoder, source="fr", target="zh", latent="en", shots=2, limit=3, progress=False,
                           tuned=trained)
    np.testing.assert_allclose(table["p_target_logit"], logit.curve("p_target"), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(table["kl_to_final_bits_tuned"], tuned.curve("kl_to_final_bits"), rtol=1e-6)
    manifest = json.loads((res.out / "manifest.json").read_text(encoding="utf-8"))
    (sec,) = [s for s in manifest["sections"] if s["key"] == "tuned_fr_zh"]
    mid = len(tuned.layers) // 2
    assert f"{float(tuned.curve('kl_to_final_bits')[mid]):.2f} through the tuned lens" in sec["finding"]
    assert "Tuned lens: drift fr → zh" in (res.out / "index.html").read_text(encoding="utf-8")
    with pytest.raises(LensError, match="trained on"):  # a lens of another model is refused, not read
        other = TunedLens(model="x", fingerprint="other", weight=trained.weight, bias=trained.bias)
        from xling_probe.report.tuned import resolve_tuned

        resolve_tuned(tiny_decoder, other, progress=False)
