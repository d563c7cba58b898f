"""Model loading: facts, fingerprints, clear errors, and the once-only atomic GGUF conversion."""

from __future__ import annotations

import importlib
import threading
import time

import pytest
import torch

from xling_probe import ModelLoadError, load_model

convert = importlib.import_module("xling_probe.convert")


def test_handle_facts_for_decoder_and_encoder(tiny_decoder, tiny_encoder, tiny_gpt2_model):
    assert (tiny_decoder.kind, tiny_decoder.n_layers, tiny_decoder.d_model, tiny_decoder.n_states) == ("decoder", 3, 32, 4)
    assert tiny_decoder.has_unembedding and tiny_decoder.parts.logit_softcap == 30.0
    assert (tiny_encoder.kind, tiny_encoder.n_layers, tiny_encoder.has_unembedding) == ("encoder", 2, False)
    assert tiny_gpt2_model.kind == "decoder" and tiny_gpt2_model.n_layers == 2 and tiny_gpt2_model.has_unembedding


def test_fingerprint_is_stable_and_tracks_weights(tiny_decoder_dir, tiny_decoder):
    again = load_model(str(tiny_decoder_dir), device="cpu")
    assert again.fingerprint == tiny_decoder.fingerprint
    with torch.no_grad():
        again.model.model.layers[1].mlp.down_proj.weight[0, 0] += 1.0
    from xling_probe.models import fingerprint

    assert fingerprint(again.model, again.tokenizer) != tiny_decoder.fingerprint


def test_model_object_and_handle_inputs(tiny_decoder):
    with pytest.raises(ModelLoadError, match="needs its tokenizer"):
        load_model(tiny_decoder.model)
    other = load_model(tiny_decoder)
    assert other.model is tiny_decoder.model and other.name == tiny_decoder.name


def test_missing_and_unknown_models_say_what_was_tried(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="model path not found"):
        load_model(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"tried it as a local folder, a \.gguf file and a Hugging Face hub id"):
        load_model("nobody-xyz/not-a-model-123")
    with pytest.raises(ModelLoadError, match="unknown backend"):
        load_model("x", backend="jax")
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_model("x", dtype="float8")


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelLoadError, match=r"is not a GGUF file .*b'PK\\x03\\x04'"):
        load_model(str(fake))
    other = tmp_path / "weights.bin"
    other.write_bytes(b"123")
    with pytest.raises(ModelLoadError, match="not a .gguf model"):
        load_model(str(other))


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A GGUF-magic file and a stand-in writer that counts conversions and can be made to die."""
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    state = {"calls": 0, "die": False}

    def writer(gguf, out, *, progress):
        state["calls"] += 1
        (out / "config.json").write_text("{}")
        time.sleep(0.3)  # long enough for a second caller to arrive and wait on the lock
        if state["die"]:
            raise RuntimeError("killed mid-conversion")
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(convert, "_write_hf_folder", writer)
    return path, state


def test_conversion_runs_once_even_with_two_callers(fake_gguf, tmp_path):
    path, state = fake_gguf
    results = []
    threads = [threading.Thread(target=lambda: results.append(convert.convert_gguf(path, root=tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["calls"] == 1 and results[0] == results[1]
    assert convert.is_complete(results[0]) and (results[0] / "model.safetensors").read_bytes() == b"weights"
    assert convert.convert_gguf(path, root=tmp_path) == results[0] and state["calls"] == 1


def test_half_written_conversion_is_never_used(fake_gguf, tmp_path):
    path, state = fake_gguf
    state["die"] = True
    with pytest.raises(RuntimeError, match="killed"):
        convert.convert_gguf(path, root=tmp_path)
    target = convert.converted_folder(path, root=tmp_path)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.is_dir()]  # the temporary folder is gone too
    # a folder left without the completion marker (e.g. an older crash) is redone, not trusted
    target.mkdir()
    (target / "config.json").write_text("{}")
    state["die"] = False
    assert convert.convert_gguf(path, root=tmp_path) == target
    assert state["calls"] == 2 and convert.is_complete(target)
