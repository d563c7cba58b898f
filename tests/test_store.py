"""The out-of-core activation store: same numbers as the in-memory path, lazy reads, resumption, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import xling_probe as xp
from xling_probe.errors import CacheError, ExtractionError
from xling_probe.extraction import locations
from xling_probe.extraction.zarr_store import ActivationStore, from_storage, to_storage


@pytest.fixture(scope="module")
def corpus():
    return xp.ParallelCorpus.sample().select_languages(["en", "fr", "de", "zh", "ar"])


@pytest.fixture(scope="module")
def in_memory(tiny_decoder, corpus):
    return xp.extract(tiny_decoder, corpus, progress=False, cache=False)


def test_store_backed_activations_equal_the_in_memory_ones(tiny_decoder, corpus, in_memory, tmp_path):
    lazy = xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "a.zarr")
    assert lazy.lazy and lazy.shape == in_memory.shape and lazy.meta["store"].endswith("a.zarr")
    np.testing.assert_array_equal(np.asarray(lazy.data), in_memory.data)
    np.testing.assert_array_equal(lazy.get(2, "zh"), in_memory.get(2, "zh"))
    # similarity and neutrality on the store give the in-memory numbers
    r1 = xp.similarity(in_memory, metrics=["cka", "p_at_1"], null_permutations=5, bootstrap=10, progress=False)
    r2 = xp.similarity(lazy, metrics=["cka", "p_at_1"], null_permutations=5, bootstrap=10, progress=False)
    np.testing.assert_array_equal(r1.value, r2.value)
    np.testing.assert_array_equal(r1.arrays["ci_low"], r2.arrays["ci_low"])
    # a reopened store is the same store (nothing recomputed: no piece missing)
    again = xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "a.zarr")
    np.testing.assert_array_equal(np.asarray(again.data), in_memory.data)


def test_sel_stays_lazy_and_reads_only_what_it_selects(tiny_decoder, corpus, tmp_path, monkeypatch):
    lazy = xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "a.zarr")
    sub = lazy.sel(layers=[1, 3], languages=["zh", "fr"], ids=list(lazy.ids[10:20]))
    assert sub.lazy and sub.shape == (2, 2, 10, lazy.hidden_size)
    reads = []
    real = type(lazy.data.zarray.oindex).__getitem__

    def spy(self, key):
        reads.append(tuple(len(np.atleast_1d(k)) for k in key))
        return real(self, key)

    monkeypatch.setattr(type(lazy.data.zarray.oindex), "__getitem__", spy)
    x = np.asarray(sub.data)
    assert reads == [(2, 2, 10, lazy.hidden_size)]  # exactly the selection, one read
    np.testing.assert_array_equal(x, lazy.in_memory().sel(layers=[1, 3], languages=["zh", "fr"],
                                                          ids=list(lazy.ids[10:20])).data)
    xa = lazy.to_xarray()
    assert type(xa.data).__module__.startswith("dask")
    np.testing.assert_array_equal(xa.sel(layer=2, language="de").values, lazy.get(2, "de"))


@pytest.mark.parametrize("dtype,tol", [("float16", 1e-3), ("bfloat16", 8e-3)])
def test_half_precision_storage_computes_in_float32(tiny_decoder, corpus, in_memory, tmp_path, dtype, tol):
    lazy = xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "h.zarr", store_dtype=dtype)
    x = np.asarray(lazy.data)
    assert x.dtype == np.float32
    rel = np.abs(x - in_memory.data).max() / np.abs(in_memory.data).max()
    # float16 keeps 11 significant bits (rounding 2^-11 = 4.9e-4), bfloat16 8 (2^-8 = 3.9e-3)
    assert 0 < rel < tol
    assert lazy.data.zarray.dtype == (np.float16 if dtype == "float16" else np.uint16)


def test_bfloat16_rounding_is_round_to_nearest_even():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5, 3.0e38, 1e-40], dtype=np.float32)
    back = from_storage(to_storage(x, "bfloat16"), "bfloat16")
    np.testing.assert_array_equal(back[:4], np.array([1.0, 1.0, 1.0 + 2**-6, -2.5], dtype=np.float32))
    assert np.isfinite(back[4]) and abs(back[4] - 3.0e38) / 3.0e38 < 2**-8


def test_a_half_written_piece_is_recomputed(tiny_decoder, corpus, in_memory, tmp_path):
    path = tmp_path / "k.zarr"
    xp.extract(tiny_decoder, corpus, progress=False, store=path)
    st = ActivationStore.open(path)
    # A kill after the data but before the marker: the marker is missing and the chunk is garbage.
    (path / "pieces" / "1-0.json").unlink()
    st.array[:, 1, 0:5, :] = 12345.0
    assert st.missing() == [(1, 0)]
    again = xp.extract(tiny_decoder, corpus, progress=False, store=path)
    np.testing.assert_array_equal(np.asarray(again.data), in_memory.data)
    # Corruption behind a marker is found by the checksum
    st.array[0, 2, 0, 0] = 7.0
    assert not st.piece_done(2, 0, verify=True) and st.piece_done(3, 0, verify=True)


def test_a_store_of_another_extraction_is_refused_with_what_differs(tiny_decoder, tiny_gpt2_model, corpus, tmp_path):
    path = tmp_path / "s.zarr"
    xp.extract(tiny_decoder, corpus, progress=False, store=path)
    with pytest.raises(ExtractionError, match="different extraction.*pooling: store has 'mean', this run 'last'"):
        xp.extract(tiny_decoder, corpus, progress=False, store=path, pooling="last")
    with pytest.raises(ExtractionError, match="different extraction.*model"):
        xp.extract(tiny_gpt2_model, corpus, progress=False, store=path)
    other = xp.ParallelCorpus.sample().select_languages(["en", "fr", "de", "zh", "ar"]).head(50)
    with pytest.raises(ExtractionError, match="different extraction.*corpus"):
        xp.extract(tiny_decoder, other, progress=False, store=path)
    with pytest.raises(ExtractionError, match="holds float32 values; this run asks for float16"):
        xp.extract(tiny_decoder, corpus, progress=False, store=path, store_dtype="float16")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(ExtractionError, match="is not an activation store"):
        xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "junk")
    with pytest.raises(ExtractionError, match="store dtype must be"):
        xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "n.zarr", store_dtype="int8")


def test_a_store_from_another_format_version_is_refused(tiny_decoder, corpus, tmp_path):
    path = tmp_path / "v.zarr"
    xp.extract(tiny_decoder, corpus, progress=False, store=path)
    st = ActivationStore.open(path)
    st.group.attrs["format"] = 99
    with pytest.raises(CacheError, match="format 99; this version reads format 1"):
        ActivationStore.open(path)


def test_not_enough_disk_is_refused_before_anything_is_written(tiny_decoder, corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(locations.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ExtractionError, match=r"the store needs .* GiB free; free space"):
        xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "big.zarr")
    assert not (tmp_path / "big.zarr").exists()


def test_a_store_reopens_in_a_new_session_with_its_labels(tiny_decoder, corpus, in_memory, tmp_path):
    from xling_probe.extraction.activations import Activations

    xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "r.zarr")
    back = Activations.load(tmp_path / "r.zarr")
    assert back.lazy and back.languages == in_memory.languages and back.ids == in_memory.ids
    assert back.meta["fingerprint"] == tiny_decoder.fingerprint and back.meta["store"].endswith("r.zarr")
    np.testing.assert_array_equal(np.asarray(back.data), in_memory.data)


def test_neutrality_streams_a_store_one_layer_at_a_time_with_the_same_numbers(tiny_decoder, corpus, in_memory,
                                                                              tmp_path):
    lazy = xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "n.zarr")
    a = xp.neutrality(in_memory, projection="lstsq", progress=False)
    b = xp.neutrality(lazy, projection="lstsq", progress=False)
    assert b.settings["streamed"] and b.layers == a.layers and b.heldout_ids == a.heldout_ids
    for name in ("retrieval", "language_id", "variance_share"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-12, err_msg=name)


def test_a_store_on_object_storage_gives_the_same_numbers_and_resumes(tiny_decoder, corpus, in_memory):
    """fsspec URLs (here the in-memory file system, standing in for s3:// or gs://) work as folders do."""
    import uuid

    import fsspec

    from xling_probe.extraction.activations import Activations

    url = f"memory://xling-test-{uuid.uuid4().hex}/run.zarr"
    acts = xp.extract(tiny_decoder, corpus, progress=False, store=url)
    assert acts.lazy and acts.meta["store"] == url
    np.testing.assert_array_equal(np.asarray(acts.data), in_memory.data)
    fs = fsspec.filesystem("memory")
    root = url.split("://", 1)[1]
    assert fs.exists(f"{root}/pieces/2-0.json") and fs.exists(f"{root}/zarr.json")
    st = ActivationStore.open(url)
    fs.rm_file(f"{root}/pieces/2-0.json")  # a piece whose marker never arrived
    st.array[:, 2, 0:3, :] = -1.0
    assert st.missing() == [(2, 0)]
    again = xp.extract(tiny_decoder, corpus, progress=False, store=url)
    np.testing.assert_array_equal(np.asarray(again.data), in_memory.data)
    back = Activations.load(url)
    assert back.lazy and back.languages == in_memory.languages
    np.testing.assert_array_equal(back.get(3, "zh"), in_memory.get(3, "zh"))
    with pytest.raises(ExtractionError, match="holds no activation store"):
        Activations.load(f"memory://xling-test-{uuid.uuid4().hex}/none.zarr")
    with pytest.raises(ExtractionError, match=r"no file system for nosuchfs://.*install its fsspec backend"):
        xp.extract(tiny_decoder, corpus, progress=False, store="nosuchfs://bucket/run.zarr")


def test_centering_a_store_stays_lazy_and_equals_the_in_memory_centering(tiny_decoder, corpus, in_memory, tmp_path,
                                                                         monkeypatch):
    from xling_probe.centering.estimators import LanguageCentering, LinearProjection
    from xling_probe.extraction.zarr_store import ShiftedArray

    lazy = xp.extract(tiny_decoder, corpus, progress=False, store=tmp_path / "c.zarr")
    fit_ids, test_ids = list(lazy.ids[:60]), list(lazy.ids[60:])
    ref = LanguageCentering().fit(in_memory.sel(ids=fit_ids))
    reads = []
    real = type(lazy.data.zarray.oindex).__getitem__

    def spy(self, key):
        reads.append(tuple(len(np.atleast_1d(k)) for k in key))
        return real(self, key)

    monkeypatch.setattr(type(lazy.data.zarray.oindex), "__getitem__", spy)
    cen = LanguageCentering().fit(lazy.sel(ids=fit_ids))
    assert all(r[0] == 1 for r in reads)  # one layer per read, never the whole store
    np.testing.assert_array_equal(cen.means_, ref.means_)
    out = cen.transform(lazy.sel(ids=test_ids))
    assert out.lazy and isinstance(out.data, ShiftedArray)
    want = ref.transform(in_memory.sel(ids=test_ids))
    np.testing.assert_array_equal(np.asarray(out.data), want.data)  # bitwise: the same float64 subtraction
    sub = out.sel(layers=[1, 3], languages=["zh", "en"], ids=test_ids[:7])
    np.testing.assert_array_equal(np.asarray(sub.data), want.sel(layers=[1, 3], languages=["zh", "en"],
                                                                 ids=test_ids[:7]).data)
    np.testing.assert_array_equal(sub.to_xarray().values, np.asarray(sub.data))
    # similarity on centred store-backed activations: the in-memory numbers
    r1 = xp.similarity(want, metrics=["cka", "p_at_1"], null_permutations=0, bootstrap=0, progress=False)
    r2 = xp.similarity(out, metrics=["cka", "p_at_1"], null_permutations=0, bootstrap=0, progress=False)
    np.testing.assert_array_equal(r1.value, r2.value)
    # a projection fitted on the store, one layer at a time, is the in-memory one
    reads.clear()
    p_lazy = LinearProjection("en", ["zh", "ar"], alpha=1.0).fit(lazy.sel(ids=fit_ids))
    assert reads and all(r[0] == 1 for r in reads)
    p_mem = LinearProjection("en", ["zh", "ar"], alpha=1.0).fit(in_memory.sel(ids=fit_ids))
    np.testing.assert_array_equal(p_lazy.coef_, p_mem.coef_)
