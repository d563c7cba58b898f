"""The model fingerprint that keys every cache: from a loaded model, or from its files without loading it.

:func:`fingerprint` digests the config, a strided sample of every parameter and the tokenizer's
vocabulary. :func:`fingerprint_from_files` computes the very same digest from a Hugging Face folder
(``config.json``, the safetensors weight files, the tokenizer) without reading the weights in full:
the parameter names, order and shapes come from the model built on the meta device (no memory,
no values), and each parameter's sample is read straight from the weight file through a memory
map (a few pages per tensor), cast the way loading casts it. So a cached extraction can be answered
without loading the weights (``xling-probe extract``); whenever the digest cannot be reproduced
exactly from the files (a ``.bin`` checkpoint, a parameter missing from the files or stored
under another shape, kept-in-float32 modules under a half dtype), it returns ``None`` and the
caller loads the model.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: Config keys that do not change the numbers (or are set by the loader): left out of the digest.
VOLATILE_CONFIG_KEYS = ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype",
                        "quantization_config")
SAMPLE = 4096  # values sampled per parameter


def _digest(config: dict[str, Any], samples: Iterable[tuple[str, tuple[int, ...], np.ndarray | None]],
            tokenizer: Any) -> str:
    """The digest of a config dict, per-parameter samples (``None``: offloaded, values unknown) and a tokenizer."""
    h = hashlib.sha256()
    cfg = dict(config)
    for key in VOLATILE_CONFIG_KEYS:
        cfg.pop(key, None)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for pname, shape, sample in samples:
        if sample is None:
            h.update(f"{pname}:offloaded;".encode())
            continue
        h.update(f"{pname}:{tuple(shape)}:".encode())
        h.update(sample.tobytes())
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    h.update(str(len(vocab)).encode())
    for token in sorted(vocab)[:: max(1, len(vocab) // 2000)]:
        h.update(f"{token}={vocab[token]};".encode())
    h.update(f"bos={getattr(tokenizer, 'bos_token_id', None)};eos={getattr(tokenizer, 'eos_token_id', None)}".encode())
    return h.hexdigest()[:24]


def _strided(flat: Any, numel: int) -> Any:
    """The strided sample of a flattened parameter: every ``numel // 4096``-th value, at most 4096."""
    step = max(1, numel // SAMPLE)
    return flat[::step][:SAMPLE]


def fingerprint(model: nn.Module, tokenizer: Any) -> str:
    """A stable digest of config, weights and tokenizer (weights sampled, not read in full).

    Every parameter contributes its name, shape and a strided sample of up to 4096 of its values
    (as float32), so a change of weights, architecture or vocabulary changes the fingerprint.
    """
    def samples() -> Iterator[tuple[str, tuple[int, ...], np.ndarray | None]]:
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.device.type == "meta":  # offloaded by accelerate: its values are in the hook's weights map
                    p = _offloaded_value(model, pname)
                    if p is None:
                        yield pname, (), None
                        continue
                flat = p.detach().reshape(-1)
                yield pname, tuple(p.shape), _strided(flat, flat.numel()).to(torch.float32).cpu().numpy()

    return _digest(model.config.to_dict() if hasattr(model, "config") else {}, samples(), tokenizer)


def _offloaded_value(model: nn.Module, pname: str) -> torch.Tensor | None:
    """The stored values of a parameter that accelerate offloaded (to disk or the CPU), or ``None``."""
    module_name, _, leaf = pname.rpartition(".")
    try:
        module = model.get_submodule(module_name) if module_name else model
    except AttributeError:
        return None
    hook = getattr(module, "_hf_hook", None)
    for candidate in [hook, *getattr(hook, "hooks", ())]:
        weights = getattr(candidate, "weights_map", None)
        if weights is None:
            continue
        try:
            return torch.as_tensor(weights[leaf])
        except Exception:  # noqa: BLE001 - not in this map, or a map that only loads on the execution device
            continue
    return None


# --- from the files -------------------------------------------------------------------------------

_NP_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}


class _Tensor:
    """Where one tensor lies in a safetensors file."""

    def __init__(self, path: Path, dtype: str, shape: list[int], start: int):
        self.path, self.dtype, self.shape, self.start = path, dtype, tuple(shape), start

    def sample(self, as_dtype: torch.dtype) -> np.ndarray:
        """The strided sample of this tensor's values, cast to ``as_dtype`` (as loading casts), as float32."""
        numel = int(np.prod(self.shape, dtype=np.int64))
        if numel == 0:
            return np.empty(0, dtype=np.float32)
        mm = np.memmap(self.path, dtype=_NP_DTYPES[self.dtype], mode="r", offset=self.start, shape=(numel,))
        raw = np.array(_strided(mm, numel))  # only the sampled pages are read
        del mm
        if self.dtype == "BF16":
            t = torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(raw)
        return t.to(as_dtype).to(torch.float32).numpy()


def _safetensors_header(path: Path) -> dict[str, _Tensor] | None:
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            return None
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            return None
        header = json.loads(fh.read(n))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info.get("dtype") not in _NP_DTYPES:
            return None  # integer or quantized storage: not reproduced here
        out[name] = _Tensor(path, info["dtype"], info["shape"], base + int(info["data_offsets"][0]))
    return out


def weight_files(folder: Path) -> list[Path] | None:
    """The safetensors files of a model folder (one file, or the shards of its index), or ``None``."""
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [folder / s for s in shards] if all((folder / s).is_file() for s in shards) else None
    return None


def fingerprint_from_files(folder: str | Path, skeleton: nn.Module, tokenizer: Any) -> str | None:
    """:func:`fingerprint` of the model that ``from_pretrained(folder)`` would load, without loading it.

    ``skeleton`` is that model built on the meta device with the dtype it will be loaded in (its
    config, parameter names, order, shapes and dtypes; no values) and ``tokenizer`` the folder's
    tokenizer. The samples are read from the folder's safetensors files. Returns ``None`` when the
    digest cannot be reproduced exactly from the files (see the module docstring).
    """
    folder = Path(folder)
    files = weight_files(folder)
    if files is None:
        return None
    tensors: dict[str, _Tensor] = {}
    try:
        for f in files:
            header = _safetensors_header(f)
            if header is None:
                return None
            tensors.update(header)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    params = list(skeleton.named_parameters())
    if not params or any(p.dtype != torch.float32 for _, p in params) and _keeps_fp32(skeleton):
        return None
    prefix = getattr(skeleton, "base_model_prefix", "") or ""
    located = []
    for pname, p in params:
        names = [pname]
        if prefix:
            names += [pname[len(prefix) + 1:]] if pname.startswith(prefix + ".") else [f"{prefix}.{pname}"]
        found = [tensors[n] for n in names if n in tensors]
        if len(found) != 1 or found[0].shape != tuple(p.shape):
            return None  # missing (initialised at load), ambiguous or reshaped on load: not reproducible
        located.append((pname, tuple(p.shape), found[0], p.dtype))
    try:
        samples = [(pname, shape, t.sample(dtype)) for pname, shape, t, dtype in located]
    except (OSError, ValueError):
        return None
    return _digest(skeleton.config.to_dict(), samples, tokenizer)


def _keeps_fp32(model: nn.Module) -> bool:
    """Whether the class keeps some modules in float32 under a half dtype (loading would then differ)."""
    return bool(getattr(model, "_keep_in_fp32_modules", None) or getattr(model, "_keep_in_fp32_modules_strict", None))
