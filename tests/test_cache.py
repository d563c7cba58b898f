"""The activation cache: hits, resume after an interruption, corruption, fallbacks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from xling_probe import ParallelCorpus, clear_cache, extract
from xling_probe.errors import CacheError
from xling_probe.paths import cache_dir, cache_root
import importlib

# the package re-exports the function `extract`, which shadows the module attribute
extract_module = importlib.import_module("xling_probe.extraction.extract")
texts_module = importlib.import_module("xling_probe.extraction.texts")


@pytest.fixture
def corpus():
    base = ParallelCorpus.sample(languages=["en", "de", "ja"])
    return base.head(12)


def count_forwards(handle):
    calls = []
    h = handle.parts.blocks[0].register_forward_pre_hook(lambda *a: calls.append(1))
    return calls, h


def test_repeated_call_loads_instead_of_recomputing(tiny_decoder, corpus, _isolated_cache):
    first = extract(tiny_decoder, corpus, progress=False)
    calls, h = count_forwards(tiny_decoder)
    try:
        second = extract(tiny_decoder, corpus, progress=False)
    finally:
        h.remove()
    assert calls == []
    np.testing.assert_array_equal(first.data, second.data)
    entries = list((_isolated_cache / "activations").iterdir())
    assert len([e for e in entries if e.is_dir()]) == 1
    # anything that changes the numbers changes the key
    extract(tiny_decoder, corpus, progress=False, pooling="last")
    extract(tiny_decoder, corpus.head(11), progress=False)
    assert len([e for e in (_isolated_cache / "activations").iterdir() if e.is_dir()]) == 3


def test_interrupted_extraction_resumes_only_missing_parts(tiny_decoder, corpus, monkeypatch):
    monkeypatch.setattr(extract_module, "CHUNK", 5)  # 12 sentences -> parts of 5, 5, 2 per language
    real = texts_module.extract_texts  # every extraction path computes its pieces through it
    done = []

    def dies_after_four(*args, **kwargs):
        if len(done) == 4:
            raise KeyboardInterrupt("simulated kill")
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(texts_module, "extract_texts", dies_after_four)
    with pytest.raises(KeyboardInterrupt):
        extract(tiny_decoder, corpus, progress=False)
    monkeypatch.setattr(texts_module, "extract_texts", real)
    seen = []

    def counting(handle, texts, *args, **kwargs):
        seen.append(len(texts))
        return real(handle, texts, *args, **kwargs)

    monkeypatch.setattr(texts_module, "extract_texts", counting)
    resumed = extract(tiny_decoder, corpus, progress=False)
    assert sum(seen) == 3 * 12 - (5 + 5 + 2 + 5)  # en finished (3 parts) + de's first part
    fresh = extract(tiny_decoder, corpus, progress=False, cache=False)
    np.testing.assert_array_equal(resumed.data, fresh.data)


def test_corrupted_part_is_reported_and_recomputed(tiny_decoder, corpus, _isolated_cache):
    good = extract(tiny_decoder, corpus, progress=False)
    parts = sorted((_isolated_cache / "activations").glob("*/*.npy"))
    assert len(parts) == 3
    raw = bytearray(parts[1].read_bytes())
    raw[-7] ^= 0xFF
    parts[1].write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupted"):
        again = extract(tiny_decoder, corpus, progress=False)
    np.testing.assert_array_equal(good.data, again.data)
    # a part whose sidecar is missing (killed between the two writes) is simply recomputed
    parts[0].with_suffix(".json").unlink()
    calls, h = count_forwards(tiny_decoder)
    try:
        extract(tiny_decoder, corpus, progress=False)
    finally:
        h.remove()
    assert len(calls) >= 1


def test_no_cache_writes_nothing_and_clear_cache(tiny_decoder, corpus, _isolated_cache):
    extract(tiny_decoder, corpus, progress=False, cache=False)
    assert not (_isolated_cache / "activations").exists() or not any((_isolated_cache / "activations").iterdir())
    extract(tiny_decoder, corpus, progress=False)
    assert clear_cache() == 1
    assert not [e for e in (_isolated_cache / "activations").iterdir() if e.is_dir()]
    (_isolated_cache / "lens" / "entry").mkdir(parents=True)  # a cached lens/drift result
    (_isolated_cache / "activations" / "other").mkdir()
    assert clear_cache("lens") == 1 and not (_isolated_cache / "lens" / "entry").exists()
    assert (_isolated_cache / "activations" / "other").exists()
    from xling_probe.extraction.store import CACHE_KINDS

    assert "lens" in CACHE_KINDS  # so clear_cache("all") empties it too (not run here: "models" is the shared one)
    with pytest.raises(CacheError, match="'lens'"):
        clear_cache("everything")


def test_cache_root_respects_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("XLING_PROBE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "xling_probe"
    monkeypatch.setenv("XLING_PROBE_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_cache_falls_back_with_a_warning(monkeypatch, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("XLING_PROBE_CACHE", str(locked))
    with pytest.warns(UserWarning, match="not writable"):
        folder = cache_dir("activations")
    assert not str(folder).startswith(str(locked))


def test_unwritable_cache_falls_back_even_as_root(monkeypatch, tmp_path):
    # A path below a regular file can never be created, whoever runs the test.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("XLING_PROBE_CACHE", str(blocker / "cache"))
    with pytest.warns(UserWarning, match=r"not writable; using .* instead"):
        folder = cache_dir("activations")
    assert Path(folder).is_dir() and not str(folder).startswith(str(blocker))


# ---------------------------------------------------------------------- damaged saved folders, waiting on a lock
def saved_folder(tmp_path):
    from xling_probe import Activations

    acts = Activations(data=np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4), layers=(0, 1),
                       languages=("en", "de"), ids=("a", "b", "c"))
    return acts, acts.save(tmp_path / "acts")


def test_damaged_saved_folder_is_a_cache_error_naming_folder_and_file(tmp_path):
    from xling_probe import Activations, CacheError
    from xling_probe.errors import ExtractionError

    acts, folder = saved_folder(tmp_path)
    np.testing.assert_array_equal(Activations.load(folder).data, acts.data)
    manifest = folder / "manifest.json"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text[: len(text) // 2], encoding="utf-8")  # truncated copy
    with pytest.raises(CacheError) as err:
        Activations.load(folder)
    msg = str(err.value)
    assert f"saved activations in {folder} are damaged: manifest.json is not valid JSON" in msg
    assert "Re-run 'xling-probe extract" in msg
    manifest.write_text(text, encoding="utf-8")
    (folder / "activations.npy").unlink()
    with pytest.raises(CacheError, match=r"activations in .*acts are incomplete: activations.npy cannot be read.*Re-run"):
        Activations.load(folder)
    with pytest.raises(ExtractionError, match="nowhere does not exist"):
        Activations.load(tmp_path / "nowhere")


def test_waiting_on_another_process_lock_is_announced(tmp_path, capsys):
    import threading
    import time

    from filelock import FileLock

    from xling_probe.extraction.store import CacheEntry

    entry = CacheEntry(tmp_path / "entry", {"k": 1})
    with entry.lock():  # free: nothing is printed
        pass
    assert "waiting" not in capsys.readouterr().err
    held, release = threading.Event(), threading.Event()

    def other_process():
        lock = FileLock(str(entry.folder) + ".lock")  # a second handle, as another process would hold
        with lock:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=other_process)
    thread.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()
    start = time.monotonic()
    with entry.lock():
        waited = time.monotonic() - start
    thread.join()
    err = capsys.readouterr().err
    assert f"waiting for another process that is writing this cache entry ({entry.folder}) ..." in err
    assert "the other process is done" in err and waited >= 0.25
