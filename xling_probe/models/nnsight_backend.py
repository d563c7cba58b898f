"""The nnsight backend: the loaded model wrapped in nnsight (0.8.x), locally or on an NDIF server.

Locally the model already in memory is wrapped with ``nnsight.NNsight`` (no download, no second
copy of the weights); traces then run on it and read the same residual states as the hf backend's
hooks (state 0 = the input of block 0, state l = the output of block l - 1). Remotely
(``remote=True``) a ``nnsight.TransformersModel`` is built from the hub id on the meta device (config
and tokenizer only, no weights on this machine) and every trace is sent to an NDIF server, which
runs it on its copy of the model. The runner that traces is
:class:`xling_probe.extraction.nnsight_runner.NNsightRunner`; this module only builds the wrapper.

Remote settings, in the order they are looked up:

- the API key: ``api_key=`` is refused (keys never pass through code or notebooks); nnsight's own
  ``NDIF_API_KEY`` environment variable (or its user config) is read, never stored by us;
- the server: ``remote_url=`` (e.g. ``http://127.0.0.1:8001`` for a self-hosted server), else
  ``NDIF_HOST``, else nnsight's configured host (``https://api.ndif.us``).

Before anything is sent, :func:`check_server` asks the server for an answer with a timeout, so
an unreachable or silent server is a :class:`~xling_probe.errors.ModelLoadError` in seconds, not
a hang (nnsight's own websocket has no timeout).
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from typing import Any
from urllib.parse import urlparse

from torch import nn

from ..errors import ModelLoadError

#: Seconds to wait for the NDIF server to answer before calling it unreachable.
CONNECT_TIMEOUT = 5.0


def _import_nnsight() -> Any:
    try:
        import nnsight
    except ImportError:
        raise ModelLoadError(
            "backend='nnsight' needs the nnsight package (0.8.x): pip install 'xling-probe[nnsight]'"
        ) from None
    return nnsight


def module_path(root: nn.Module, target: nn.Module) -> str:
    """The dotted attribute path of ``target`` inside ``root`` (``""`` for the root itself)."""
    for name, module in root.named_modules():
        if module is target:
            return name
    raise ModelLoadError(f"{type(target).__name__} is not a submodule of {type(root).__name__}")


def envoy_at(envoy: Any, path: str) -> Any:
    """The nnsight envoy of the submodule at dotted ``path`` (list indices included, e.g. ``model.layers``)."""
    node = envoy
    for part in filter(None, path.split(".")):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def wrap_local(model: nn.Module) -> Any:
    """``nnsight.NNsight(model)``: traces on the model already loaded, sharing its weights."""
    nnsight = _import_nnsight()
    with warnings.catch_warnings():
        # BERT-style blocks have a child named "output"; nnsight renames it (E_output) and says so per block.
        warnings.filterwarnings("ignore", message=".*has a submodule named 'output'")
        return nnsight.NNsight(model)


def server_url(remote_url: str | None) -> str:
    """The NDIF server address a remote trace goes to (``remote_url``, else NDIF_HOST, else nnsight's host)."""
    if remote_url:
        _host_port(remote_url)
        return remote_url.rstrip("/")
    env = os.environ.get("NDIF_HOST")
    if env:
        return env.rstrip("/")
    from nnsight import CONFIG

    return str(CONFIG.API.HOST).rstrip("/")


def _host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ModelLoadError(f"remote_url {url!r} is not a server address; use e.g. http://127.0.0.1:8001 or https://api.ndif.us")
    return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)


def is_loopback(url: str) -> bool:
    """Whether ``url`` names a server on this machine (a self-hosted NDIF, which needs no key)."""
    return _host_port(url)[0] in ("127.0.0.1", "localhost", "::1")


def check_server(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """The NDIF server at ``url`` answers an HTTP request within ``timeout`` seconds, else :class:`ModelLoadError`.

    Any HTTP answer counts (a 404 too): what is excluded is a closed port, an unknown host and a
    server that accepts the connection but never answers, on which nnsight's websocket would wait
    forever. The request runs in a daemon thread, so a DNS lookup that hangs is bounded as well.
    """
    import urllib.error
    import urllib.request

    _host_port(url)  # a clear error for an address that is not one
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(f"{url}/ping", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass  # the server answered, with an error status: it is there
        except Exception as exc:  # noqa: BLE001 - refused, unresolvable, timed out, reset: all unreachable
            errors.append(exc)

    worker = threading.Thread(target=ask, name="xling-probe-ndif-check", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if worker.is_alive() or errors:
        why = _reason(errors[0]) if errors else f"no answer within {timeout:.0f} s"
        raise ModelLoadError(
            f"the NDIF server at {url} cannot be reached ({why}). Check remote_url / NDIF_HOST and the "
            "network, or run the model locally (remote=False)."
        )


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        exc = inner
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer within the timeout"
    return f"{type(exc).__name__}: {exc}"


def api_key() -> str | None:
    """The NDIF API key from the environment or nnsight's own config; ``None`` when there is none."""
    key = os.environ.get("NDIF_API_KEY")
    if key:
        return key
    from nnsight import CONFIG

    return CONFIG.API.APIKEY or None


def configure_remote(remote_url: str | None, *, require_key: bool = True, timeout: float = CONNECT_TIMEOUT) -> str:
    """Point nnsight at the server, check it answers and that a key is set; returns the server address.

    A self-hosted server on loopback needs no key (``require_key`` is False there); NDIF's public
    service does, and a missing key is an error here instead of a refusal after the upload.
    """
    _import_nnsight()
    from nnsight import CONFIG

    url = server_url(remote_url)
    if require_key and not is_loopback(url) and not api_key():
        raise ModelLoadError(
            "remote=True needs an NDIF API key: set the NDIF_API_KEY environment variable (get a key at "
            "https://login.ndif.us). xling_probe never stores it."
        )
    check_server(url, timeout)
    CONFIG.API.HOST = url
    key = api_key()
    if key:
        CONFIG.API.APIKEY = key  # in memory only, as nnsight reads it from the environment itself
    return url


def build_remote(repo_id: str, *, revision: str | None = None, tokenizer: Any = None) -> tuple[Any, nn.Module, Any]:
    """A meta-device ``nnsight.TransformersModel`` of ``repo_id`` (config and tokenizer only, no weights).

    Returns ``(envoy, meta model, tokenizer)``; the meta model has the real module tree, so block
    paths and sizes are known locally while the weights stay on the server. ``repo_id`` may be a
    folder path that a self-hosted server deployed under that same path.
    """
    nnsight = _import_nnsight()
    local = os.path.isdir(os.path.expanduser(repo_id))
    if tokenizer is None:
        # Passed explicitly: nnsight 0.8.1's meta build cannot infer the tokenizer with transformers 5.
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"could not read the tokenizer of {repo_id!r}: {str(exc).splitlines()[0]}") from None
    if local:
        # nnsight names a model by its canonical hub id (one hub call); a self-hosted server's
        # folder model is named by its path, so the path is its own id.
        try:
            from nnsight.modeling import huggingface as _hf

            _hf._ID_CACHE[repo_id] = repo_id
        except (ImportError, AttributeError):  # another nnsight layout: it will ask the hub itself
            pass
    kwargs: dict[str, Any] = {"tokenizer": tokenizer, "task": _task(repo_id, revision, local)}
    if revision:
        kwargs["revision"] = revision
    try:
        envoy = nnsight.TransformersModel(repo_id, **kwargs)
    except Exception as exc:  # noqa: BLE001 - config/tokenizer lookup failures come in many types
        raise ModelLoadError(
            f"could not build the remote model {repo_id!r} (its config and tokenizer are read locally, from the "
            f"hub or its cache): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    return envoy, envoy._module, envoy.tokenizer


def _task(repo_id: str, revision: str | None, local: bool) -> str:
    """The transformers pipeline task that names the model on the server (part of nnsight's model key)."""
    from transformers import AutoConfig

    from .arch import is_causal_lm, is_encoder_decoder

    try:
        config = AutoConfig.from_pretrained(repo_id, revision=revision, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not read the config of {repo_id!r}: {str(exc).splitlines()[0]}") from None
    if is_encoder_decoder(config):
        return "text2text-generation"
    return "text-generation" if is_causal_lm(config) else "feature-extraction"
