"""`xling-probe extract` answers a cache hit without loading the weights (issue 19, item 6)."""

from __future__ import annotations

import json

import pytest

from xling_probe.cli.main import main


class WeightsLoaded(RuntimeError):
    pass


def _forbid_weight_loading(monkeypatch):
    import transformers

    import xling_probe.models.loading as loading

    def refuse(*_a, **_k):
        raise WeightsLoaded("the weights were loaded")

    monkeypatch.setattr(loading, "_load_hf", refuse)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))


def _outputs(folder):
    return (folder / "activations.npy").read_bytes(), json.loads((folder / "manifest.json").read_text())


def _args(model, out, *extra):
    return ["extract", "--model", str(model), "--device", "cpu", "--langs", "en,fr,zh", "--limit", "5",
            "--out", str(out), *extra]


@pytest.mark.parametrize("extra", [(), ("--layers", "0,-1", "--pooling", "last"), ("--backend", "transformer_lens")])
def test_cache_hit_does_not_load_the_weights_and_writes_the_same(tiny_decoder_dir, tmp_path, monkeypatch, extra):
    assert main(_args(tiny_decoder_dir, tmp_path / "first", *extra)) == 0
    with monkeypatch.context() as m:
        _forbid_weight_loading(m)
        assert main(_args(tiny_decoder_dir, tmp_path / "second", *extra)) == 0
    assert _outputs(tmp_path / "first") == _outputs(tmp_path / "second")


def test_a_miss_loads_the_model(tiny_decoder_dir, tmp_path, monkeypatch):
    assert main(_args(tiny_decoder_dir, tmp_path / "first")) == 0
    _forbid_weight_loading(monkeypatch)
    for extra in (("--layers", "1"), ("--max-length", "8"), ("--no-cache",), ("--dtype", "bfloat16")):
        with pytest.raises(WeightsLoaded):
            main(_args(tiny_decoder_dir, tmp_path / f"miss{len(extra)}{extra[-1]}", *extra))


def test_a_model_without_a_files_fingerprint_is_loaded(tiny_decoder_dir, tmp_path, monkeypatch):
    import importlib

    import xling_probe.models.loading as loading

    assert main(_args(tiny_decoder_dir, tmp_path / "first")) == 0
    fp = importlib.import_module("xling_probe.models.fingerprinting")
    monkeypatch.setattr(fp, "fingerprint_from_files", lambda *_a: None)  # e.g. a .bin checkpoint
    calls = []

    original = loading._load_hf
    monkeypatch.setattr(loading, "_load_hf", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert main(_args(tiny_decoder_dir, tmp_path / "second")) == 0
    assert calls  # loaded, and still the cached numbers
    assert _outputs(tmp_path / "first") == _outputs(tmp_path / "second")


@pytest.mark.real
def test_cache_hit_on_gemma_without_loading(real_model, tmp_path, monkeypatch):
    import time

    args = ["extract", "--device", "cpu", "--langs", "en,zh", "--limit", "4"]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    with monkeypatch.context() as m:
        _forbid_weight_loading(m)
        t0 = time.perf_counter()
        assert main([*args, "--out", str(tmp_path / "second")]) == 0
        seconds = time.perf_counter() - t0
    assert _outputs(tmp_path / "first") == _outputs(tmp_path / "second")
    assert seconds < 20, seconds
