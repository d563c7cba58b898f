"""Dask: extraction pieces on a LocalCluster of 2 worker processes, similarity one layer per task.

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
    one = xp.similarity(ref, metrics=["cka", "cka_debiased", "p_at_1", "mexa"], null_permutations=5, bootstrap=20,
                        progress=False)
    many = xp.similarity(ref, metrics=["cka", "cka_debiased", "p_at_1", "mexa"], null_permutations=5, bootstrap=20,
                         progress=False, client=client)
    assert many.layers == one.layers and many.settings["distributed"] == f"{len(one.layers)} layer tasks"
    for f in one.arrays:
        np.testing.assert_allclose(many.arrays[f], one.arrays[f], rtol=0, atol=1e-12, err_msg=f)


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
