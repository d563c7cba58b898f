"""On-disk cache of lens results, with the conventions of the activation cache (:mod:`xling_probe.extraction.store`).

An entry lives under ``<cache root>/lens/<key>/``, where the key hashes everything that changes
the numbers: the model fingerprint (and dtype, backend, stack), the prompts and token sets
actually run (so the word list, the filters, the shots and the seed are in it), and the settings
(batch size, chunking, interval level, bootstrap size...). An entry is three files:

- ``arrays.npz``: the numeric arrays (no pickles);
- ``result.json``: the labels and meta data;
- ``done.json``: the SHA-256 of both, written last.

Every file is written atomically (temp file + fsync + rename) and an entry counts only when
``done.json`` exists and both checksums match, so a kill at any moment never leaves an entry that
loads; a corrupted entry is reported, removed and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..extraction.store import atomic_write_bytes, cache_key
from ..paths import cache_dir

#: Version of the lens cache layout: bump it when a cached result would no longer be what the code computes.
LENS_CACHE_VERSION = 1
KIND = "lens"
ARRAYS, RESULT, DONE = "arrays.npz", "result.json", "done.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ResultCache:
    """One cached lens result: ``load()`` gives ``(doc, arrays)`` or ``None``; ``save(doc, arrays)`` stores it.

    ``fields`` are the JSON-able inputs that key the entry (see the module docstring); ``what`` names
    the kind of result ("drift", ...), so two analyses never share a key.
    """

    def __init__(self, what: str, fields: Mapping[str, Any], *, root: Path | str | None = None):
        self.fields = {"result": what, "lens_cache": LENS_CACHE_VERSION, **fields}
        self.key = cache_key(self.fields)
        self.root = root
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = cache_dir(KIND, root=self.root) / self.key
        return self._folder

    def load(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The stored ``(doc, arrays)``, or ``None`` when absent; a corrupted entry is reported and removed."""
        folder = self.folder
        done = folder / DONE
        if not done.is_file():
            return None
        try:
            sums = json.loads(done.read_text(encoding="utf-8"))["sha256"]
            raw_arrays = (folder / ARRAYS).read_bytes()
            raw_doc = (folder / RESULT).read_bytes()
            if _sha(raw_arrays) != sums[ARRAYS] or _sha(raw_doc) != sums[RESULT]:
                raise ValueError("checksum mismatch")
            doc = json.loads(raw_doc.decode("utf-8"))
            with np.load(io.BytesIO(raw_arrays), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"lens cache entry {folder} is corrupted ({exc}); it will be recomputed.", stacklevel=3)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return doc, arrays

    def save(self, doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Store ``doc`` (JSON-able; NaN allowed) and ``arrays`` (name -> numeric array); ``done.json`` last."""
        folder = self.folder
        buf = io.BytesIO()
        np.savez(buf, **{name: np.ascontiguousarray(a) for name, a in arrays.items()})
        raw_arrays = buf.getvalue()
        raw_doc = json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")
        (folder / DONE).unlink(missing_ok=True)  # an entry being rewritten never counts as done
        atomic_write_bytes(folder / "key.json", json.dumps(self.fields, indent=1, default=str).encode())
        atomic_write_bytes(folder / ARRAYS, raw_arrays)
        atomic_write_bytes(folder / RESULT, raw_doc)
        atomic_write_bytes(folder / DONE, json.dumps({"sha256": {ARRAYS: _sha(raw_arrays), RESULT: _sha(raw_doc)}}).encode())


def model_fields(model: Any) -> dict[str, Any]:
    """What of a model handle changes lens numbers: its fingerprint, name, dtype, backend and stack."""
    return {"model": model.fingerprint, "name": model.name, "dtype": str(model.dtype), "backend": model.backend,
            "stack": model.stack}


def digest(obj: Any) -> str:
    """A SHA-256 of the JSON of ``obj`` (for long inputs such as prompts and token sets)."""
    return _sha(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python values and non-finite floats as None."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
