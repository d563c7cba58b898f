"""GGUF -> Hugging Face folder conversion, done once and cached.

Loading a GGUF file through transformers dequantizes every tensor and converts the tokenizer,
which takes about a minute for Gemma 3 270M. We do it once and save a plain HF folder
(safetensors + tokenizer) under the cache directory, so later loads take seconds.

Safety: the conversion is written into a temporary sibling folder and renamed into place only
when complete (a rename is atomic on one file system), so a killed conversion never looks
finished; a file lock makes a second process wait for the first instead of converting again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import ModelLoadError
from ..paths import cache_dir

GGUF_MAGIC = b"GGUF"
COMPLETE_MARKER = "xling_probe_conversion.json"
CONVERSION_VERSION = 1


def check_gguf(path: Path) -> None:
    """Raise :class:`ModelLoadError` unless ``path`` is a readable GGUF file."""
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (its first bytes are {magic!r}, expected {GGUF_MAGIC!r}). "
            "Pass a .gguf model file, a Hugging Face folder, or a hub id."
        )


def file_digest(path: Path, *, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def converted_folder(gguf: Path, *, root: Path | None = None) -> Path:
    """Where the converted HF folder of ``gguf`` lives (it may not exist yet)."""
    stat = gguf.stat()
    # size + mtime + a digest of the first 16 MiB: cheap, and changes when the file does.
    h = hashlib.sha256(f"{gguf.name}:{stat.st_size}:{CONVERSION_VERSION}".encode())
    with gguf.open("rb") as fh:
        h.update(fh.read(1 << 24))
    return cache_dir("models", root=root) / f"{gguf.stem}-{h.hexdigest()[:16]}"


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file() and (folder / "config.json").is_file()


def convert_gguf(gguf: str | Path, *, root: Path | None = None, progress: bool = True) -> Path:
    """Convert ``gguf`` into a cached HF folder (once) and return the folder."""
    from filelock import FileLock

    gguf = Path(gguf).expanduser().resolve()
    check_gguf(gguf)
    target = converted_folder(gguf, root=root)
    if is_complete(target):
        return target
    lock = FileLock(str(target) + ".lock")
    with lock:
        if is_complete(target):  # another process finished while we waited
            return target
        if target.exists():  # a leftover without the marker: never trust it
            shutil.rmtree(target, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            _write_hf_folder(gguf, tmp, progress=progress)
            (tmp / COMPLETE_MARKER).write_text(
                json.dumps({"source": gguf.name, "version": CONVERSION_VERSION, "created": time.time()})
            )
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_hf_folder(gguf: Path, out: Path, *, progress: bool) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    if progress:
        print(f"xling_probe: converting {name} to a cached Hugging Face folder (once, about a minute)...", flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
        raise ModelLoadError(f"transformers could not read {gguf}: {exc}") from exc
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    # save_pretrained refuses a gguf-quantized model: rebuild a plain one and move the weights over.
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), assign=True, strict=False)
    plain.tie_weights()
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del quantized
