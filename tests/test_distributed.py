"""Dask: extraction pieces on a LocalCluster of 2 worker processes, similarity as layer x pair-block tasks.

Extraction on the workers is bitwise the single-process extraction (the same batches per piece);
similarity on the workers equals the single-process result to 1e-12. A worker killed mid-job is
replaced, its piece retried, and the job completes with the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

import xling_probe as xp
from xling_probe.errors import ExtractionError

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def setup(tiny_decoder_dir):
    model = xp.load_model(tiny_decoder_dir, device="cpu")
    corpus = xp.ParallelCorpus.sample().select_languages(["en", "fr", "zh", "ar"])
    # 300 sentences = two pieces per language (256 + 44)
    long = xp.ParallelCorpus.from_columns(
        [f"s{k}" for k in range(300)],
        {lang: [f"{corpus.sentences[lang][k % 120]} ({k})" for k in range(300)] for lang in corpus.languages})
    return model, long, xp.extract(model, long, progress=False, cache=False)


def test_distributed_extraction_is_bitwise_the_single_process_one(client, setup, tmp_path):
    model, corpus, ref = setup
    acts = xp.extract(model, corpus, progress=False, store=tmp_path / "d.zarr", client=client)
    assert acts.lazy
    np.testing.assert_array_equal(np.asarray(acts.data), ref.data)


def test_distributed_similarity_equals_the_single_process_one(client, setup):
    _, _, ref = setup
    names = ["cka", "cka_debiased", "p_at_1", "mexa"]
    one = xp.similarity(ref, metrics=names, null_permutations=5, bootstrap=20, client=False, progress=False)
    many = xp.similarity(ref, metrics=names, null_permutations=5, bootstrap=20, progress=False, client=client)
    assert "distributed" not in one.settings
    assert many.layers == one.layers and many.settings["distributed"].startswith(f"{len(one.layers)} tasks")
    for f in one.arrays:
        np.testing.assert_allclose(many.arrays[f], one.arrays[f], rtol=0, atol=1e-12, err_msg=f)


def _many_languages(G=12, n=30, d=24, layers=3, seed=0):
    """Random activations with a shared sentence signal, so the metrics are far from trivial."""
    from xling_probe.extraction.activations import Activations

    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((layers, 1, n, d))
    data = (shared + rng.uniform(0.3, 2.0, (1, G, 1, 1)) * rng.standard_normal((layers, G, n, d))).astype(np.float32)
    langs = tuple(f"l{g:02d}" for g in range(G))
    return Activations(data=data, layers=tuple(range(layers)), languages=langs, ids=tuple(f"s{i}" for i in range(n)),
                       labels={x: x for x in langs}, meta={"model": "random"})


def test_many_pairs_run_as_layer_x_pair_block_tasks_with_the_same_numbers(client):
    acts = _many_languages()  # 66 pairs: two chunks of the per-pair path, several blocks of the all-pairs path
    names = ["cka", "cka_debiased", "p_at_1", "mexa"]
    one = xp.similarity(acts, metrics=names, null_permutations=3, bootstrap=5, client=False, progress=False)
    many = xp.similarity(acts, metrics=names, null_permutations=3, bootstrap=5, client=client, progress=False)
    assert many.settings["distributed"] == "6 tasks (3 layers x 2 pair chunks)"
    for f in one.arrays:
        np.testing.assert_allclose(many.arrays[f], one.arrays[f], rtol=0, atol=1e-12, err_msg=f)
    # values only: the batched all-pairs path, cut into language blocks (a tiny budget forces blocks of 3)
    one = xp.similarity(acts, metrics=names, null_permutations=0, bootstrap=0, client=False, progress=False,
                        max_memory_gb=0.0005)
    many = xp.similarity(acts, metrics=names, null_permutations=0, bootstrap=0, client=client, progress=False,
                         max_memory_gb=0.0005)
    assert one.settings["path"] == many.settings["path"] == "all-pairs blocks"
    assert many.settings["distributed"] == "30 tasks (3 layers x 10 language-block pairs of <= 3 languages)"
    assert np.isfinite(one.value).sum() == 4 * 3 * 12 * 11
    np.testing.assert_allclose(many.value, one.value, rtol=0, atol=1e-12)
    # dtype= reaches the block tasks: float32 on the workers equals float32 in one process, not float64
    kw = dict(metrics=names, null_permutations=0, bootstrap=0, progress=False, max_memory_gb=0.0005, dtype="float32")
    one32 = xp.similarity(acts, client=False, **kw)
    many32 = xp.similarity(acts, client=client, **kw)
    np.testing.assert_array_equal(many32.value, one32.value)
    assert many32.settings["dtype"] == "float32" and np.nanmax(np.abs(many32.value - one.value)) > 0


def test_the_active_client_is_used_unless_client_is_false(client, tmp_path):
    acts = _many_languages(G=5)
    auto = xp.similarity(acts, metrics=["cka"], null_permutations=2, bootstrap=0, progress=False)
    local = xp.similarity(acts, metrics=["cka"], null_permutations=2, bootstrap=0, progress=False, client=False)
    assert "distributed" in auto.settings and "distributed" not in local.settings
    np.testing.assert_allclose(auto.value, local.value, rtol=0, atol=1e-12)


def test_store_backed_all_pairs_tasks_read_the_store(client, tmp_path):
    from xling_probe.extraction.activations import Activations
    from xling_probe.extraction.zarr_store import ActivationStore

    acts = _many_languages()
    st = ActivationStore.open_or_create(tmp_path / "r.zarr", fields={"model": "random"}, shape=acts.shape,
                                        labels={"layers": list(acts.layers), "languages": list(acts.languages),
                                                "ids": list(acts.ids), "labels": dict(acts.labels)}, block=256)
    for g in range(len(acts.languages)):
        st.write_piece(g, 0, acts.data[:, g])
    lazy = Activations.load(tmp_path / "r.zarr")
    assert lazy.lazy
    one = xp.similarity(acts, metrics=["p_at_1", "cka_debiased"], null_permutations=0, bootstrap=0, client=False,
                        progress=False)
    many = xp.similarity(lazy, metrics=["p_at_1", "cka_debiased"], null_permutations=0, bootstrap=0, client=client,
                         progress=False)
    np.testing.assert_allclose(many.value, one.value, rtol=0, atol=1e-12)


def test_a_killed_worker_is_replaced_and_the_job_completes(client, setup, tmp_path, monkeypatch):
    model, corpus, ref = setup
    flag = tmp_path / "killed"
    client.run(lambda: __import__("os").environ.__setitem__("XLING_PROBE_KILL_WORKER_ONCE", str(flag)))
    try:
        acts = xp.extract(model, corpus, progress=False, store=tmp_path / "k.zarr", client=client)
    finally:
        client.run(lambda: __import__("os").environ.pop("XLING_PROBE_KILL_WORKER_ONCE", None))
    assert flag.exists()  # a worker did die
    np.testing.assert_array_equal(np.asarray(acts.data), ref.data)


def test_distributed_extraction_needs_a_store_and_a_loadable_model(client, setup, sp_tokenizer, tmp_path):
    from tiny import tiny_gemma

    model, corpus, _ = setup
    built = xp.load_model(tiny_gemma(sp_tokenizer), tokenizer=sp_tokenizer, device="cpu")  # exists in this process only
    with pytest.raises(ExtractionError, match="writes into a store that every worker can reach"):
        xp.extract(model, corpus, progress=False, client=client)
    with pytest.raises(ExtractionError, match="a model the workers can load themselves"):
        xp.extract(built, corpus, progress=False, client=client, store=tmp_path / "unused.zarr")


def test_a_rewrapped_handle_tells_workers_its_own_backend(setup):
    model, _, _ = setup
    nn = xp.load_model(model, backend="nnsight", device="cpu")
    assert nn.source["load"]["backend"] == "nnsight" and model.source["load"]["backend"] == "hf"
    assert nn.source["load"]["name_or_path"] == model.source["load"]["name_or_path"]
