"""Remote execution through nnsight: the errors before anything is sent, and a real NDIF server.

The real-server test runs when ``XLING_NDIF_URL`` names a running server and ``XLING_NDIF_MODEL``
the folder it serves (``scripts/ndif_loopback/start.sh`` starts one on loopback; ndif needs Python
3.12+, so CI, on 3.11, skips it and ``benchmarks/bench_remote.py`` records the run made by hand).
Everything up to the wire is tested here without a server: a closed port, a server that accepts the
connection and never answers, a missing key, the wrong backend.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest

import xling_probe as xp
from xling_probe.errors import ModelLoadError
from xling_probe.extraction.extract import extract_texts

TEXTS = ["The cat sleeps on the sofa.", "Le chat dort sur le canapé.", "Die Katze schläft auf dem Sofa."]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers (a hung proxy or server)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    srv.close()


def test_remote_needs_the_nnsight_backend():
    with pytest.raises(ModelLoadError, match="use backend='nnsight'"):
        xp.load_model("some/model", remote=True)


def test_unknown_backend_lists_the_backends():
    with pytest.raises(ModelLoadError, match="unknown backend 'vllm'; use one of hf, transformer_lens, nnsight"):
        xp.load_model("some/model", backend="vllm")


def test_remote_without_a_key_is_refused_before_anything_is_sent(monkeypatch):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    t = time.monotonic()
    with pytest.raises(ModelLoadError, match="needs an NDIF API key: set the NDIF_API_KEY environment variable"):
        xp.load_model("meta-llama/Llama-3.1-70B", backend="nnsight", remote=True, remote_url="https://ndif.example.org")
    assert time.monotonic() - t < 1.0


def test_a_closed_port_is_an_error_in_seconds():
    url = f"http://127.0.0.1:{_closed_port()}"
    t = time.monotonic()
    with pytest.raises(ModelLoadError, match=rf"the NDIF server at {url} cannot be reached \(.*Connection refused"):
        xp.load_model("any/model", backend="nnsight", remote=True, remote_url=url)
    assert time.monotonic() - t < 5.0


def test_a_server_that_never_answers_times_out(silent_server, monkeypatch):
    from xling_probe.models import nnsight_backend

    monkeypatch.setattr(nnsight_backend, "CONNECT_TIMEOUT", 1.0)
    t = time.monotonic()
    with pytest.raises(ModelLoadError, match="cannot be reached .*(timed out|no answer)"):
        nnsight_backend.check_server(silent_server, timeout=1.0)
    assert time.monotonic() - t < 4.0


def test_a_bad_server_address_is_named():
    with pytest.raises(ModelLoadError, match="is not a server address"):
        xp.load_model("any/model", backend="nnsight", remote=True, remote_url="http://")


def test_the_key_is_read_from_the_environment_and_never_stored(monkeypatch, tmp_path):
    from xling_probe.models import nnsight_backend

    monkeypatch.setenv("NDIF_API_KEY", "secret-key-123")
    assert nnsight_backend.api_key() == "secret-key-123"
    with pytest.raises(TypeError):
        xp.load_model("any/model", backend="nnsight", remote=True, api_key="secret-key-123")  # no such argument


@pytest.mark.skipif(not os.environ.get("XLING_NDIF_URL"), reason="no NDIF server: set XLING_NDIF_URL and XLING_NDIF_MODEL")
def test_extraction_through_a_real_ndif_server_equals_the_local_run():
    import torch

    url, folder = os.environ["XLING_NDIF_URL"], os.environ["XLING_NDIF_MODEL"]
    local = xp.load_model(folder, device="cpu")
    remote = xp.load_model(folder, backend="nnsight", remote=True, remote_url=url)
    assert remote.remote and remote.device == torch.device("cpu") and remote.n_blocks == local.n_blocks
    layers = list(range(local.n_states))
    a, _ = extract_texts(local, TEXTS, layers)
    b, _ = extract_texts(remote, TEXTS, layers)
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5


def test_remote_arguments_that_would_be_ignored_are_refused():
    with pytest.raises(ModelLoadError, match="add remote=True"):
        xp.load_model("any/model", backend="nnsight", remote_url="http://127.0.0.1:1")
    with pytest.raises(ModelLoadError, match="apply to local runs only"):
        xp.load_model("any/model", backend="nnsight", remote=True, device_map="auto")
