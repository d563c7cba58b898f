"""Remote models: a :class:`~xling_probe.models.loading.ModelHandle` whose traces run on an NDIF server.

Only the config and the tokenizer come to this machine (nnsight builds the model on the meta
device); the weights stay on the server, which runs every trace of the nnsight runner. The
handle's fingerprint is therefore made of the hub id, its revision and the config, not of
sampled weights (a server serves one revision of a model).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from .arch import find_parts, is_encoder
from .handle import ModelHandle
from .nnsight_backend import build_remote, configure_remote, is_loopback as _is_loopback, module_path


def _remote_fingerprint(repo_id: str, revision: str | None, model: nn.Module, tokenizer: Any) -> str:
    h = hashlib.sha256()
    cfg = model.config.to_dict() if hasattr(model, "config") else {}
    for key in ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype"):
        cfg.pop(key, None)
    h.update(f"remote:{repo_id}@{revision or 'main'}".encode())
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    h.update(str(len(tokenizer)).encode())
    return h.hexdigest()[:24]


def load_remote(name_or_path: Any, *, dtype: torch.dtype, tokenizer: Any = None, remote_url: str | None = None,
                revision: str | None = None, stack: str | None = None) -> ModelHandle:
    """A handle on ``name_or_path`` (a hub id the server serves) whose nnsight traces run remotely."""

    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelLoadError("remote=True needs the hub id of a model the NDIF server serves, e.g. "
                             "'meta-llama/Llama-3.1-70B'")
    url = configure_remote(remote_url)
    if os.path.exists(os.path.expanduser(name_or_path)) and not _is_loopback(url):
        raise ModelLoadError(f"{name_or_path} is a local path: a model on NDIF is named by its hub id (a folder "
                             "path only names a model on a self-hosted server on this machine); use remote=False "
                             "to run a local folder")
    envoy, model, tok = build_remote(name_or_path, revision=revision, tokenizer=tokenizer)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    parts = find_parts(model, stack)
    kind = "encoder" if is_encoder(model) or parts.stack == "encoder" else "decoder"
    return ModelHandle(
        model=model,
        tokenizer=tok,
        name=name_or_path,
        backend="nnsight",
        kind=kind,
        n_blocks=len(parts.blocks),
        d_model=int(model.config.hidden_size),
        # The lens applies the unembedding on this machine, which has no weights of a remote model.
        has_unembedding=False,
        fingerprint=_remote_fingerprint(name_or_path, revision, model, tok),
        parts=parts,
        source={"kind": "remote", "server": url, "revision": revision or "main",
                "block_path": module_path(model, parts.blocks), "dtype": str(dtype).replace("torch.", "")},
        envoy=envoy,
        remote=True,
    )
