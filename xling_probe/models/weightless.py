"""A handle without weights: what a cache lookup needs, without the cost of loading a model.

:func:`weightless_handle` builds the model of a local folder (or the offline default, or a
``.gguf`` file's cached conversion) on the meta device (config, parts, shapes; no values), loads
its tokenizer and computes the fingerprint from the files
(:func:`~xling_probe.models.fingerprinting.fingerprint_from_files`), equal to the fingerprint of the
loaded model. Every fact an extraction's cache key and result labels read is the loaded
handle's; only the forward pass cannot run: :func:`xling_probe.extract` raises
:class:`WeightsNotLoaded` instead of computing anything, and the caller loads the model then
(``xling-probe extract`` answers a cache hit this way in about a second instead of a model load).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ModelLoadError
from .handle import ModelHandle

#: ``handle.source["weights"]`` of a weightless handle.
NOT_LOADED = "not loaded"


class WeightsNotLoaded(ModelLoadError):
    """A computation needs the weights of a handle built by :func:`weightless_handle`; load the model."""


def is_weightless(handle: Any) -> bool:
    """Whether ``handle`` was built by :func:`weightless_handle` (its model has no values)."""
    return isinstance(handle, ModelHandle) and handle.source.get("weights") == NOT_LOADED


def weightless_handle(name_or_path: str | os.PathLike[str] | None = None, *, backend: str = "hf",
                      device: Any = None, dtype: Any = None, stack: str | None = None,
                      **placement: Any) -> ModelHandle | None:
    """The handle :func:`~xling_probe.models.loading.load_model` would return, without the weights, or ``None``.

    Takes load_model's arguments. ``None`` whenever the fingerprint cannot be computed exactly from
    local files: a hub id, a device map, offloading, a remote model, a checkpoint that is not
    safetensors, a model whose loading changes its parameters (see
    :mod:`xling_probe.models.fingerprinting`), or any error (the real load then reports it).
    """
    if any(v not in (None, False) for v in placement.values()):
        return None  # device maps, offloading, remote models, a given tokenizer: loaded the usual way
    try:
        return _build(name_or_path, backend=backend, device=device, dtype=dtype, stack=stack)
    except Exception:  # noqa: BLE001 - a shortcut only: every failure falls back to the real load, which says why
        return None


def _build(name_or_path: Any, *, backend: str, device: Any, dtype: Any, stack: str | None) -> ModelHandle | None:
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from .fingerprinting import fingerprint_from_files
    from .loading import BACKENDS, _locate, make_handle, model_class
    from .placement import check_dtype_support, resolve_device, resolve_dtype

    if backend not in BACKENDS or (isinstance(name_or_path, str) and name_or_path.strip() == ""):
        return None
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        return None
    torch_dtype = resolve_dtype(dtype) or torch.float32
    check_dtype_support(torch_dtype, resolve_device(device))  # what the real load refuses is not answered here
    folder, name, source = _locate(name_or_path)
    if source.get("kind") == "hub":
        return None
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    with torch.device("meta"):
        skeleton = model_class(config).from_config(config, dtype=torch_dtype)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    fp = fingerprint_from_files(folder, skeleton.eval(), tok)
    if fp is None:
        return None
    return make_handle(skeleton, tok, name=name, backend=backend, stack=stack,
                       source={**source, "weights": NOT_LOADED}, fingerprint_value=fp)
