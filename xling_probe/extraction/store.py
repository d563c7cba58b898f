"""On-disk storage of activations: the extraction cache and saved activation folders.

Cache entries live under ``<cache root>/activations/<key>/`` where the key hashes everything
that changes the numbers (model fingerprint, corpus content hash, languages, layers, pooling,
max_length, dtype, format version). An entry is a set of parts (one language x one chunk of
sentences); each part is an ``.npy`` file plus a ``.json`` sidecar with its SHA-256. A part
counts as done only when its sidecar exists and the checksum matches, and both files are
written atomically (temp file + fsync + rename), so a kill at any moment never leaves a part
that loads as complete; an interrupted extraction recomputes only the missing parts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError, ExtractionError
from ..paths import cache_dir, cache_root

FORMAT_VERSION = 1
DATA_FILE = "activations.npy"
MANIFEST_FILE = "manifest.json"


def cache_key(fields: dict[str, Any]) -> str:
    """Hex digest of the JSON of ``fields`` (sorted keys) plus the format version."""
    payload = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CacheEntry:
    """One extraction's folder of checksummed parts."""

    def __init__(self, folder: Path, fields: dict[str, Any]):
        self.folder = folder
        self.fields = fields
        folder.mkdir(parents=True, exist_ok=True)
        info = folder / "key.json"
        if not info.exists():
            atomic_write_bytes(info, json.dumps({"format": FORMAT_VERSION, **fields}, indent=1, default=str).encode())

    @classmethod
    def open(cls, fields: dict[str, Any], *, root: Path | str | None = None) -> CacheEntry:
        return cls(cache_dir("activations", root=root) / cache_key(fields), fields)

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.folder / f"{name}.npy", self.folder / f"{name}.json"

    def load_part(self, name: str) -> np.ndarray | None:
        """The stored part, or ``None`` when absent; a corrupted part is reported and removed."""
        data_path, meta_path = self._paths(name)
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            raw = data_path.read_bytes()
            if _sha256(raw) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            return np.load(io.BytesIO(raw), allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(
                f"cache part {data_path} is corrupted ({exc}); it will be recomputed.", stacklevel=3
            )
            for p in (meta_path, data_path):
                p.unlink(missing_ok=True)
            return None

    def save_part(self, name: str, array: np.ndarray) -> None:
        data_path, meta_path = self._paths(name)
        raw = _npy_bytes(array)
        atomic_write_bytes(data_path, raw)
        # The sidecar is written last: a part without it is not done.
        atomic_write_bytes(meta_path, json.dumps({"sha256": _sha256(raw), "shape": list(array.shape)}).encode())

    def lock(self) -> WaitingLock:
        """The inter-process lock of this entry; says so on stderr while another process holds it."""
        return WaitingLock(Path(str(self.folder) + ".lock"), self.folder)


class WaitingLock:
    """A file lock that prints one line when it has to wait for another process.

    A second ``extract`` of the same entry would otherwise sit silently at 0% for as long as the
    first one runs. The line goes through ``tqdm.write`` to stderr, like the progress bars, so it
    does not break a bar that is being drawn.
    """

    def __init__(self, path: Path, folder: Path):
        from filelock import FileLock

        self.path = path
        self.folder = folder
        self._lock = FileLock(str(path))

    def __enter__(self) -> WaitingLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            _say(f"waiting for another process that is writing this cache entry ({self.folder}) ...")
            self._lock.acquire()
            _say("... the other process is done; going on (its finished parts are reused)")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def _say(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def write_activations(folder: Path, data: np.ndarray, manifest: dict[str, Any]) -> Path:
    """Save ``data`` (written as float32) as ``activations.npy`` and ``manifest`` as ``manifest.json``.

    ``manifest`` is the JSON-able description of the array (labels, meta, texts; see
    :meth:`Activations.save <xling_probe.extraction.activations.Activations.save>`); the format
    version, the data file's name and its SHA-256 are added here, so :func:`read_activations` can
    verify the pair. Both files are written atomically.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"cannot create output folder {folder}: {exc}") from None
    raw = _npy_bytes(np.asarray(data).astype(np.float32, copy=False))
    manifest = {**manifest, "format": FORMAT_VERSION, "data_file": DATA_FILE, "sha256": _sha256(raw)}
    atomic_write_bytes(folder / DATA_FILE, raw)
    atomic_write_bytes(folder / MANIFEST_FILE, json.dumps(manifest, ensure_ascii=False, indent=1).encode())
    return folder


def read_activations(folder: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The array and the manifest of a folder written by :func:`write_activations`, checksum verified.

    A folder that is not one (no ``manifest.json``) raises :class:`ExtractionError`; a damaged
    one (a truncated or invalid manifest, a missing or corrupted data file) raises
    :class:`CacheError` naming the folder and the file. The manifest holds at least ``layers``,
    ``languages``, ``ids`` and ``sha256``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExtractionError(f"activation folder {folder} does not exist; write one with 'xling-probe extract --out {folder}'")
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ExtractionError(f"{folder} has no {MANIFEST_FILE}; is it a folder written by 'xling-probe extract'?")
    redo = redo_hint(folder)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(
            f"the saved activations in {folder} are damaged: {MANIFEST_FILE} is not valid JSON ({exc}), "
            f"probably a truncated copy. {redo}"
        ) from None
    missing = [k for k in ("layers", "languages", "ids", "sha256") if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise CacheError(f"the saved activations in {folder} are damaged: {MANIFEST_FILE} lacks {', '.join(missing)}. {redo}")
    data_path = folder / str(manifest.get("data_file", DATA_FILE))
    try:
        raw = data_path.read_bytes()
    except OSError as exc:
        raise CacheError(
            f"the saved activations in {folder} are incomplete: {data_path.name} cannot be read "
            f"({exc.strerror or exc}). {redo}"
        ) from None
    if _sha256(raw) != manifest.get("sha256"):
        raise CacheError(
            f"{data_path} does not match the checksum in its manifest: the file is corrupted. {redo}"
        )
    return np.load(io.BytesIO(raw), allow_pickle=False), manifest


def redo_hint(folder: Path) -> str:
    """The sentence that tells how to write a damaged activation folder again."""
    return f"Re-run 'xling-probe extract --out {folder}' (or Activations.save) to write it again."


#: What :func:`clear_cache` can delete: cache kinds (folders under the cache root).
CACHE_KINDS = ("activations", "models", "lens")


def clear_cache(what: str = "activations", *, root: Path | str | None = None) -> int:
    """Delete cached ``"activations"``, converted ``"models"``, logit-lens and drift results (``"lens"``), or
    ``"all"``; returns folders removed."""
    if what not in (*CACHE_KINDS, "all"):
        raise CacheError(f"clear_cache(what=...) takes {', '.join(map(repr, CACHE_KINDS))} or 'all', got {what!r}")
    base = Path(root) if root is not None else cache_root()
    kinds = list(CACHE_KINDS) if what == "all" else [what]
    removed = 0
    for kind in kinds:
        folder = base / kind
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
            elif entry.suffix == ".lock":
                entry.unlink(missing_ok=True)
    return removed
