"""Where a model's weights live and in which precision: devices, dtypes and accelerate device maps.

- :func:`resolve_device`: the device to load onto (CUDA when available), checked before any weight is read.
- :func:`resolve_dtype` and :func:`check_dtype_support`: the weight dtype by name, and whether the
  device can compute in it (bf16 on a GPU without bf16 support is an error here, not a crash later).
- :func:`placement_kwargs`: ``device_map`` / ``max_memory`` / ``offload_folder`` for
  ``from_pretrained``, so transformers and accelerate spread a model over several GPUs, the CPU
  and disk. The hooks of every backend then fire on whichever device a block lives on; pooled
  results are moved to one device by the runners.
- :func:`dispatch_built`: the same for a model object that is already built (``accelerate.dispatch_model``).
- :func:`execution_device`: where inputs go (the device of the first placed module).

Pooling and every reduction accumulate in float32 whatever the weight dtype (:mod:`xling_probe.extraction.pooling`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64}
#: Device-map entries that hold no computation: weights there are loaded onto the execution device on use.
OFFLOAD_TARGETS = ("disk", "meta")  # "meta" only appears in maps that accelerate builds itself


def resolve_dtype(dtype: Any) -> torch.dtype | None:
    """A torch dtype from a name (``"bfloat16"``, ``"bf16"``, ``"float16"``, ...) or a dtype; ``None`` stays ``None``."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).strip().lower().replace("torch.", "")
    if key not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16, float64")
    return _DTYPES[key]


def resolve_device(device: Any) -> torch.device:
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


def check_dtype_support(dtype: torch.dtype, device: torch.device) -> None:
    """:class:`ModelLoadError` when ``device`` cannot compute in ``dtype`` (e.g. bf16 on a pre-Ampere GPU).

    CUDA asks the driver (``torch.cuda.is_bf16_supported``); other devices run one small matmul
    in that dtype, which is what a forward pass needs first.
    """
    if dtype in (torch.float32, torch.float64) and device.type != "mps":
        return
    name = str(dtype).replace("torch.", "")
    if device.type == "cuda" and dtype == torch.bfloat16:
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            gpu = torch.cuda.get_device_name(device)
            raise ModelLoadError(f"{gpu} does not support bfloat16; use dtype='float16' or 'float32'")
        return
    try:
        a = torch.ones(4, 4, dtype=dtype, device=device)
        torch.nn.functional.linear(a, a).sum().item()
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(
            f"the {device} device cannot compute in {name} ({str(exc).splitlines()[0]}); use dtype='float32'"
        ) from None


def placement_kwargs(device_map: Any, max_memory: dict | None, offload_folder: Any) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a device map (empty when there is none)."""
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise ModelLoadError("max_memory= and offload_folder= need device_map= (e.g. device_map='auto')")
        return {}
    if not isinstance(device_map, (str, dict)):
        raise ModelLoadError(f"device_map must be 'auto', 'balanced', 'sequential' or a dict, got {type(device_map).__name__}")
    out: dict[str, Any] = {"device_map": device_map}
    if max_memory is not None:
        out["max_memory"] = dict(max_memory)
    if offload_folder is not None:
        out["offload_folder"] = str(offload_folder)
    if isinstance(device_map, dict) and "meta" in device_map.values():
        bad = sorted(k for k, v in device_map.items() if v == "meta")
        raise ModelLoadError(
            f"device_map puts {', '.join(bad)} on 'meta', where weights are never loaded; offload them to 'cpu' "
            "(weights in RAM, run on the GPU) or 'disk' (with offload_folder=)"
        )
    if isinstance(device_map, dict) and "disk" in device_map.values() and offload_folder is None:
        raise ModelLoadError("device_map puts blocks on 'disk': pass offload_folder= (a folder for the offloaded weights)")
    return out


def split_error(model_name: str, exc: Exception) -> ModelLoadError:
    """The error for a model that accelerate cannot split (no ``_no_split_modules``) or a bad map."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "_no_split_modules" in text or "does not support `device_map" in text:
        return ModelLoadError(
            f"{model_name} cannot be split over devices: its architecture declares no _no_split_modules, so "
            f"accelerate does not know which blocks must stay whole ({text}). Load it whole on one device "
            "(device_map=None, device='cuda' or 'cpu')."
        )
    return ModelLoadError(f"could not place {model_name} with this device_map: {text}")


def dispatch_built(model: nn.Module, device_map: Any, max_memory: dict | None, offload_folder: Any) -> nn.Module:
    """Spread an already-built model with accelerate (``infer_auto_device_map`` for a named strategy)."""
    from accelerate import dispatch_model, infer_auto_device_map

    no_split = getattr(model, "_no_split_modules", None)
    name = type(model).__name__
    if isinstance(device_map, str):
        if not no_split:
            raise split_error(name, ValueError("_no_split_modules is not set"))
        device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=list(no_split))
    try:
        return dispatch_model(model, device_map=device_map, offload_dir=None if offload_folder is None else str(offload_folder))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise split_error(name, exc) from None


def _as_device(entry: Any) -> torch.device:
    if isinstance(entry, int):
        return torch.device("cuda", entry)
    return torch.device(str(entry))


def is_dispatched(model: nn.Module) -> bool:
    """Whether accelerate placed the model with a device map (more than one device, or offloaded weights)."""
    device_map = getattr(model, "hf_device_map", None)
    return bool(device_map) and (len(set(map(str, device_map.values()))) > 1
                                 or any(v in OFFLOAD_TARGETS for v in device_map.values()))


def execution_device(model: nn.Module) -> torch.device:
    """Where inputs go: the first placed module's device for a dispatched model, else the weights' device.

    Offloaded ("disk"/"meta") modules execute on the main device, which accelerate takes to be the
    first real device of the map; a map with only offloaded entries executes on the CPU.
    """
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        for entry in device_map.values():
            if entry not in OFFLOAD_TARGETS:
                return _as_device(entry)
        return torch.device("cpu")
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
