"""Where xling_probe keeps its files on disk, and how it prepares the folders it writes into.

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

from .errors import CacheError, XlingProbeError


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


def prepare_output_folder(path: str | Path, *, force: bool = False, what: str = "output folder",
                          force_hint: str = "pass force=True") -> Path:
    """Create the folder ``path`` that a command writes its results into and return it.

    Refuses (with :class:`XlingProbeError`) a path that is a file, a folder that is not empty
    unless ``force`` (files with the same names are then overwritten, nothing is deleted), and a
    folder that cannot be created or written, before any slow work starts. ``what`` names the
    folder in messages and ``force_hint`` says how to allow a non-empty one, so the command line
    can say "--out folder" / "pass --force" while library callers read "force=True".
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise XlingProbeError(f"{what} {out} exists and is a file, not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise XlingProbeError(
            f"{what} {out} exists and is not empty; choose another folder or {force_hint} "
            "(files with the same names are overwritten, nothing else is deleted)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or type(exc).__name__)
        raise XlingProbeError(f"cannot create the {what} {out}: {reason}; choose a path you can write to") from None
    if not _writable(out):
        raise XlingProbeError(f"cannot write into the {what} {out} (permission denied?); choose a path you can write to")
    return out
