"""Model loading: facts, fingerprints, clear errors, and the once-only atomic GGUF conversion."""

from __future__ import annotations

import importlib
import re
import threading
import time

import pytest
import torch

from xling_probe import ModelLoadError, load_model

convert = importlib.import_module("xling_probe.models.convert")


def test_handle_facts_for_decoder_and_encoder(tiny_decoder, tiny_encoder, tiny_gpt2_model):
    assert (tiny_decoder.kind, tiny_decoder.n_blocks, tiny_decoder.d_model, tiny_decoder.n_states) == ("decoder", 3, 32, 4)
    assert tiny_decoder.has_unembedding and tiny_decoder.parts.logit_softcap == 30.0
    assert (tiny_encoder.kind, tiny_encoder.n_blocks, tiny_encoder.has_unembedding) == ("encoder", 2, False)
    assert tiny_gpt2_model.kind == "decoder" and tiny_gpt2_model.n_blocks == 2 and tiny_gpt2_model.has_unembedding


def test_fingerprint_is_stable_and_tracks_weights(tiny_decoder_dir, tiny_decoder):
    again = load_model(str(tiny_decoder_dir), device="cpu")
    assert again.fingerprint == tiny_decoder.fingerprint
    with torch.no_grad():
        again.model.model.layers[1].mlp.down_proj.weight[0, 0] += 1.0
    from xling_probe.models.loading import fingerprint

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
    with pytest.raises(ModelLoadError, match=r"'nobody-xyz/not-a-model-123' is not a local folder or \.gguf file, not "
                                             r"in the local Hugging Face cache.*\(offline: HF_HUB_OFFLINE is set\)"):
        load_model("nobody-xyz/not-a-model-123")
    with pytest.raises(ModelLoadError, match="unknown backend"):
        load_model("x", backend="jax")
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_model("x", dtype="float8")


# ------------------------------------------------------------------ devices
def test_devices_this_torch_cannot_use_are_refused_before_loading(monkeypatch):
    from xling_probe.models.loading import _resolve_device

    assert _resolve_device("CPU") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ModelLoadError, match=rf"this torch build has no CUDA \(torch {re.escape(torch.__version__)}, CPU build\); "
                                             "use --device cpu or install a CUDA build of torch"):
        _resolve_device("cuda:0")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    with pytest.raises(ModelLoadError, match=r"no GPU is visible \(torch .* built for CUDA 12\.8\); check the driver"):
        _resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ModelLoadError, match=r"'cuda:2' does not exist: this machine has 2 GPU\(s\), cuda:0 \.\.\. cuda:1"):
        _resolve_device("cuda:2")
    with pytest.raises(ModelLoadError, match="unknown device 'tpu0'; use cpu, cuda, cuda:N or mps"):
        _resolve_device("tpu0")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="MPS .* is not available here"):
        load_model("x", device="mps")


# ------------------------------------------------------------------ hub ids without network
@pytest.fixture
def hub(monkeypatch):
    """No HF_HUB_OFFLINE, no proxy, and no real network: the probe and the cache lookup are recorded fakes."""
    import xling_probe.models.loading as models

    for var in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    state = {"reachable": False, "cached": False, "probes": 0, "loaded": []}

    def reachable(*_a, **_k):
        state["probes"] += 1
        return state["reachable"]

    def load_hf(folder, dtype, tokenizer, *, local_files_only=False, placing=None):
        state["loaded"].append((folder, local_files_only))
        raise ModelLoadError("stop after locating")

    monkeypatch.setattr(models, "_hub_reachable", reachable)
    monkeypatch.setattr(models, "_in_hf_cache", lambda repo: state["cached"])
    monkeypatch.setattr(models, "_load_hf", load_hf)
    return state


def test_an_uncached_hub_id_without_network_fails_in_under_3_seconds(hub):
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"'org/name' is not a local folder .* not in the local Hugging Face cache, "
                                             r"and the hub cannot be reached \(offline: no connection to "
                                             r"huggingface\.co:443\); pass a local folder \(--model path/to/folder "
                                             r"with config\.json\) or a \.gguf file, or set HF_HOME"):
        load_model("org/name", device="cpu")
    assert time.perf_counter() - started < 3.0 and hub["probes"] == 1 and hub["loaded"] == []


@pytest.mark.parametrize("cached, reachable, offline_env, local_only", [
    (True, False, False, True),   # cached, no network: load from the cache without asking the hub
    (True, True, False, False),   # cached, online: transformers may check for updates
    (False, True, False, False),  # not cached, online: download as before
    (True, False, True, True),    # HF_HUB_OFFLINE with the model cached
])
def test_hub_ids_that_can_be_loaded_go_on_with_the_right_mode(hub, monkeypatch, cached, reachable, offline_env,
                                                               local_only):
    hub.update(cached=cached, reachable=reachable)
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="stop after locating"):
        load_model("org/name", device="cpu")
    assert hub["loaded"] == [("org/name", local_only)]
    assert hub["probes"] == (0 if offline_env else 1)


def test_the_hub_probe_is_one_bounded_connect_to_the_hub_host(monkeypatch):
    import socket

    import xling_probe.models.loading as models

    for var in ("HF_ENDPOINT", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    calls = []

    def refuse(address, timeout=None):
        calls.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert models._hub_reachable() is False
    assert calls == [(("huggingface.co", 443), models.HUB_PROBE_TIMEOUT)] and models.HUB_PROBE_TIMEOUT <= 2.0
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example:8443")
    models._hub_reachable()
    assert calls[-1][0] == ("hf-mirror.example", 8443)

    def hang(address, timeout=None):  # a DNS lookup that hangs: the socket timeout does not cover it
        time.sleep(2)
        raise OSError("name resolution timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.perf_counter()
    assert models._hub_reachable(timeout=0.2) is False and time.perf_counter() - started < 1.0
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # a direct connect says nothing behind a proxy
    assert models._hub_reachable() is True


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
