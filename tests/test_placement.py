"""Placement and precision: a model split over devices / offloaded to disk, and half-precision weights.

On this CPU-only machine "several devices" are the CPU and accelerate's disk offload (weights on the
meta device, loaded from the offload folder into the execution device when their block runs),
which exercises the same hooks and gathering code as a multi-GPU map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tiny_families as tf
import xling_probe as xp
from xling_probe.errors import ExtractionError, ModelLoadError
from xling_probe.extraction.extract import extract_texts

TEXTS = ["The cat sleeps on the sofa.", "I like books and flowers, and the dog runs in the garden.", "Water"]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return tf.save_family("llama", tmp_path_factory.mktemp("llama"))


def _split_map(prefix: str = "model") -> dict[str, str]:
    return {f"{prefix}.embed_tokens": "cpu", f"{prefix}.rotary_emb": "cpu", f"{prefix}.layers.0": "cpu",
            f"{prefix}.layers.1": "disk", f"{prefix}.norm": "disk", "lm_head": "disk"}


@pytest.mark.parametrize("backend", ["hf", "nnsight"])
def test_split_and_disk_offloaded_model_gives_the_same_states(llama_dir, tmp_path, backend):
    whole = xp.load_model(llama_dir, device="cpu", backend=backend)
    split = xp.load_model(llama_dir, device_map=_split_map(), offload_folder=tmp_path / "offload", backend=backend)
    assert split.placement["model.layers.1"] == "disk" and split.device == torch.device("cpu")
    assert split.model.model.layers[1].mlp.down_proj.weight.device.type == "meta"  # really offloaded
    layers = list(range(whole.n_states))
    a, _ = extract_texts(whole, TEXTS, layers)
    b, _ = extract_texts(split, TEXTS, layers)
    np.testing.assert_array_equal(a, b)
    # The fingerprint reads offloaded weights from the offload folder: same weights, same cache key.
    assert split.fingerprint == whole.fingerprint


def test_lens_on_an_offloaded_head_reproduces_the_logits(llama_dir, tmp_path):
    from xling_probe.lens.core import Lens, check_final_logits, encode, run_batches

    split = xp.load_model(llama_dir, device_map=_split_map(), offload_folder=tmp_path / "offload")
    lens = Lens(split)
    for _idx, inputs, states in run_batches(split, encode(split, TEXTS), [split.n_states - 1]):
        assert check_final_logits(split, lens, inputs, states[split.n_states - 1]) < 1e-4


def test_auto_device_map_with_max_memory_offloads_and_still_agrees(llama_dir, tmp_path):
    whole = xp.load_model(llama_dir, device="cpu")
    auto = xp.load_model(llama_dir, device_map="auto", max_memory={"cpu": "40KiB"}, offload_folder=tmp_path / "off")
    assert "disk" in auto.placement.values()  # 40 KiB of CPU memory cannot hold the blocks
    a, _ = extract_texts(whole, TEXTS, [0, 1, 2])
    b, _ = extract_texts(auto, TEXTS, [0, 1, 2])
    np.testing.assert_array_equal(a, b)


def test_a_built_model_is_dispatched_by_accelerate(tmp_path):
    model, tok = tf.build("llama")
    whole = xp.load_model(model, tokenizer=tok, device="cpu")
    a, _ = extract_texts(whole, TEXTS, [0, 1, 2])
    model2, _ = tf.build("llama")
    split = xp.load_model(model2, tokenizer=tok, device_map=_split_map(), offload_folder=tmp_path / "o")
    b, _ = extract_texts(split, TEXTS, [0, 1, 2])
    np.testing.assert_array_equal(a, b)


def test_bfloat16_weights_stay_within_the_stated_tolerance_of_float32(llama_dir):
    full = xp.load_model(llama_dir, device="cpu", dtype="float32")
    half = xp.load_model(llama_dir, device="cpu", dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    # rotary inv_freq stays float32, as from_pretrained keeps it
    assert half.model.model.rotary_emb.inv_freq.dtype == torch.float32
    layers = list(range(full.n_states))
    a, _ = extract_texts(full, TEXTS, layers)
    b, _ = extract_texts(half, TEXTS, layers)
    assert b.dtype == np.float32  # pooled in float32 whatever the weights
    rel = np.linalg.norm(a - b, axis=-1) / np.linalg.norm(a, axis=-1)
    # bf16 keeps 8 significant bits (relative rounding 2^-8 = 3.9e-3 per operation); two tiny blocks
    # accumulate a few of those. Stated tolerance: 2e-2 relative per pooled vector.
    assert rel.max() < 2e-2
    assert rel.max() > 0  # it really ran in bf16


def test_float16_overflow_is_an_error_that_names_the_layer(llama_dir):
    h = xp.load_model(llama_dir, device="cpu", dtype="float16")
    with torch.no_grad():
        mlp = h.model.model.layers[1].mlp  # block 1's MLP computes values beyond float16's 65504
        for proj in (mlp.gate_proj, mlp.up_proj, mlp.down_proj):
            proj.weight.fill_(10.0)
    corpus = xp.ParallelCorpus.from_columns(["a", "b", "c"], {"en": TEXTS})
    with pytest.raises(ExtractionError, match=r"layer\(s\) \[2\].*float16 overflow"):
        xp.extract(h, corpus, cache=False, progress=False)


def test_placement_bad_inputs(llama_dir, tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="on 'meta'"):
        xp.load_model(llama_dir, device_map={**_split_map(), "model.layers.1": "meta"})
    with pytest.raises(ModelLoadError, match="offload_folder"):
        xp.load_model(llama_dir, device_map=_split_map())
    with pytest.raises(ModelLoadError, match="need device_map"):
        xp.load_model(llama_dir, max_memory={"cpu": "1GiB"})
    with pytest.raises(ModelLoadError, match="device_map must be"):
        xp.load_model(llama_dir, device_map=3)
    # A family that accelerate cannot split (no _no_split_modules) gets a clear error.
    from transformers import LlamaForCausalLM

    monkeypatch.setattr(LlamaForCausalLM, "_no_split_modules", None)
    with pytest.raises(ModelLoadError, match="cannot be split over devices.*_no_split_modules"):
        xp.load_model(llama_dir, device_map="auto")
    model, tok = tf.build("llama")
    model._no_split_modules = set()  # what transformers makes of a class that declares none
    with pytest.raises(ModelLoadError, match="cannot be split over devices"):
        xp.load_model(model, tokenizer=tok, device_map="auto")


def test_a_dtype_the_device_cannot_compute_in_is_refused(monkeypatch):
    from xling_probe.models import placement

    real = torch.nn.functional.linear

    def no_bf16(a, b, *args, **kwargs):
        if a.dtype == torch.bfloat16:
            raise RuntimeError('"addmm" not implemented for \'BFloat16\'')
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", no_bf16)
    with pytest.raises(ModelLoadError, match="cannot compute in bfloat16"):
        placement.check_dtype_support(torch.bfloat16, torch.device("cpu"))
    placement.check_dtype_support(torch.float32, torch.device("cpu"))  # float32 is never probed
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        placement.resolve_dtype("int3")
