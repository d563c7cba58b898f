"""Where xling_probe keeps its files on disk.

The cache root is, in order of precedence:
1. ``$XLING_PROBE_CACHE`` when set;
2. ``$XDG_CACHE_HOME/xling_probe`` when ``XDG_CACHE_HOME`` is set;
3. ``~/.cache/xling_probe``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from .errors import CacheError


def cache_root() -> Path:
    """The cache root directory (not created)."""
    override = os.environ.get("XLING_PROBE_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "xling_probe"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True)
        probe.close()
        return True
    except OSError:
        return False


def cache_dir(kind: str, *, root: Path | str | None = None) -> Path:
    """A writable sub-directory ``kind`` of the cache root, created on demand.

    When the configured root is not writable, falls back to a folder under the system
    temporary directory and warns, naming both places; raises :class:`CacheError` when
    neither can be written.
    """
    base = Path(root).expanduser() if root is not None else cache_root()
    wanted = base / kind
    if _writable(wanted):
        return wanted
    fallback = Path(tempfile.gettempdir()) / f"xling_probe-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / kind
    if _writable(fallback):
        warnings.warn(
            f"cache folder {wanted} is not writable; using {fallback} instead. "
            "Set XLING_PROBE_CACHE to a writable folder to keep the cache between sessions.",
            stacklevel=2,
        )
        return fallback
    raise CacheError(
        f"neither {wanted} nor {fallback} is writable. Set XLING_PROBE_CACHE to a writable "
        "folder, or pass cache=False."
    )
