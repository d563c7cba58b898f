"""The three backends on the offline Gemma 3 270M: the same pooled states, the same lens.

nnsight reads the states inside traces, TransformerLens through its bridge, hf through hooks on the
HF blocks; on the real model all three must agree (relative difference < 1e-5 in float32), and the
logit lens at the last layer must reproduce the model's own logits through each backend.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PUD, need_shared
from xling_probe import ParallelCorpus, extract, load_model

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def pud():
    return ParallelCorpus.from_tsv(need_shared(PUD), languages=["en", "zh", "ar"]).head(16)


@pytest.fixture(scope="module")
def real_nnsight(real_model):
    return load_model(real_model, backend="nnsight", device="cpu")


def test_nnsight_equals_hf_on_the_real_model(real_model, real_nnsight, pud):
    a = extract(real_model, pud, progress=False, cache=False, batch_size=8).data
    b = extract(real_nnsight, pud, progress=False, cache=False, batch_size=8).data
    rel = np.abs(a - b).max() / np.abs(a).max()
    assert rel < 1e-5, rel


def test_transformer_lens_equals_nnsight_on_the_same_attention(real_model_tl, pud):
    # The bridge runs eager attention; nnsight over the bridge's own HF model runs the same kernels.
    nn_eager = load_model(real_model_tl.model, tokenizer=real_model_tl.tokenizer, backend="nnsight", device="cpu")
    a = extract(real_model_tl, pud, layers=[0, 6, 12, 18], progress=False, cache=False, batch_size=8).data
    b = extract(nn_eager, pud, layers=[0, 6, 12, 18], progress=False, cache=False, batch_size=8).data
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5


def test_lens_through_nnsight_reproduces_gemmas_logits(real_nnsight, pud):
    from xling_probe.lens.core import Lens, check_final_logits, encode, run_batches

    lens = Lens(real_nnsight)
    rows = encode(real_nnsight, pud.sentences["zh"][:4])
    for _idx, inputs, states in run_batches(real_nnsight, rows, [real_nnsight.n_states - 1], batch_size=4):
        # soft-capped logits of magnitude ~30: float32 agreement to ~1e-4
        assert check_final_logits(real_nnsight, lens, inputs, states[real_nnsight.n_states - 1]) < 1e-3
