"""An out-of-core activation store: zarr v3, chunked by layer x language x sentence block.

Why zarr: it is the chunked array format xarray and dask read natively (``dask.array.from_zarr``),
it has no server, its chunks are plain files on a local or shared file system or objects in a
bucket (through fsspec), and many processes can write different chunks of one array at once,
which is what distributed extraction needs. HDF5 has no safe concurrent writers; a folder of
``.npy`` parts (the in-memory path's cache) has no lazy, sliced reads across parts.

Layout of a store folder:

- ``activations``: float32, float16 or bfloat16 (kept as the upper 16 bits of float32, in uint16)
  array ``[layer, language, sentence, hidden]``, one chunk per (layer, language, block of
  ``block`` sentences);
- group attributes: the format version, the *fields* that produced the numbers (model fingerprint,
  corpus hash, layers, languages, pooling, ...: a store opened with other fields is refused, with
  what differs), and the labels (layers, languages, ids, display labels, meta);
- ``pieces/<language>-<block>.json``: written atomically after a piece (one language x one sentence
  block, all layers) is in the array, with the SHA-256 of its stored bytes. A piece counts as done
  only with its marker and a matching checksum, so a kill mid-write leaves a piece that is recomputed.

Reading is lazy: :class:`StoreArray` is a float32 view that reads only the chunks an index touches
(orthogonal indexing, as ``numpy.ix_``), converts half-precision storage to float32, and backs an
:class:`~xling_probe.extraction.activations.Activations` whose ``sel`` stays lazy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError, ExtractionError
from .locations import Location

STORE_FORMAT = 1
STORAGE_DTYPES = ("float32", "float16", "bfloat16")
ARRAY = "activations"


def _import_zarr() -> Any:
    try:
        import zarr
    except ImportError:
        raise ExtractionError("the activation store needs zarr 3: pip install 'xling-probe[scale]'") from None
    return zarr


def to_storage(x: np.ndarray, storage: str) -> np.ndarray:
    """float32 -> the stored dtype (bfloat16: round to nearest even, kept as uint16)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if storage == "float32":
        return x
    if storage == "float16":
        return x.astype(np.float16)
    bits = x.view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))
    return (rounded >> 16).astype(np.uint16)


def from_storage(x: np.ndarray, storage: str) -> np.ndarray:
    """The stored dtype -> float32."""
    if storage == "bfloat16":
        return (np.asarray(x, dtype=np.uint32) << 16).view(np.float32)
    return np.asarray(x, dtype=np.float32)


class ActivationStore:
    """One zarr store of activations; see the module docstring for the layout."""

    def __init__(self, location: Location, group: Any):
        self.location = location
        #: The store's folder (a Path) or its object-storage URL (a str), as given.
        self.path = location.shown
        self.group = group
        self.array = group[ARRAY]
        attrs = dict(group.attrs)
        self.fields: dict[str, Any] = attrs["fields"]
        self.labels: dict[str, Any] = attrs["labels"]
        self.storage: str = attrs["storage"]
        self.block: int = int(attrs["block"])

    # ------------------------------------------------------------------ opening
    @classmethod
    def open_or_create(cls, path: str | Path, *, fields: dict[str, Any], labels: dict[str, Any], shape: tuple[int, ...],
                       storage: str = "float32", block: int = 256) -> ActivationStore:
        """The store at ``path``: created when absent, reopened (to resume) when its fields are these."""
        zarr = _import_zarr()
        where = Location(path)
        if storage not in STORAGE_DTYPES:
            raise ExtractionError(f"store dtype must be one of {', '.join(STORAGE_DTYPES)}, got {storage!r}")
        if where.exists("zarr.json"):
            store = cls.open(path)
            store.check_fields(fields)
            if store.storage != storage:
                raise ExtractionError(f"the store at {path} holds {store.storage} values; this run asks for {storage}: "
                                      "use the same store_dtype, or another folder")
            if tuple(store.array.shape) != tuple(shape):
                raise ExtractionError(f"the store at {path} has shape {tuple(store.array.shape)}, this extraction "
                                      f"needs {tuple(shape)}")
            return store
        if where.holds_other_files():
            raise ExtractionError(f"{where} exists and is not an activation store; choose an empty or new folder")
        itemsize = 4 if storage == "float32" else 2
        need = int(np.prod(shape)) * itemsize
        free = where.free_bytes()  # None on object storage, which has no fixed size
        if free is not None and need > 0.95 * free:
            raise ExtractionError(
                f"the store needs {need / 2**30:.1f} GiB but {where.free_where()} has {free / 2**30:.1f} GiB free; "
                "free space, choose another folder, or store in half precision (store_dtype='float16' or 'bfloat16')"
            )
        group = zarr.open_group(where.target, mode="w", zarr_format=3)
        dtype = {"float32": "float32", "float16": "float16", "bfloat16": "uint16"}[storage]
        L, G, N, D = shape
        group.create_array(ARRAY, shape=shape, chunks=(1, 1, min(block, max(N, 1)), D), dtype=dtype,
                           fill_value=0, dimension_names=("layer", "language", "sentence", "hidden"))
        group.attrs.update({"format": STORE_FORMAT, "fields": json.loads(json.dumps(fields, default=str)),
                            "labels": json.loads(json.dumps(labels, default=str)), "storage": storage, "block": block})
        if where.folder is not None:
            (where.folder / "pieces").mkdir(exist_ok=True)
        return cls(where, group)

    @classmethod
    def open(cls, path: str | Path) -> ActivationStore:
        """An existing store (read and resume); :class:`CacheError` when it is not one or another version's."""
        zarr = _import_zarr()
        where = Location(path)
        try:
            group = zarr.open_group(where.target, mode="r+")
            fmt = group.attrs.get("format")
        except Exception as exc:  # noqa: BLE001 - zarr raises several kinds for a folder that is no store
            raise CacheError(f"{where} is not an activation store ({type(exc).__name__}: {exc})") from None
        if fmt != STORE_FORMAT:
            raise CacheError(f"the store at {where} was written in format {fmt!r}; this version reads format "
                             f"{STORE_FORMAT}: re-extract into a new folder")
        return cls(where, group)

    def check_fields(self, fields: dict[str, Any]) -> None:
        """Refuse to resume a store made by another model, corpus, layer list or pooling, naming what differs."""
        want = json.loads(json.dumps(fields, default=str))
        differ = sorted(k for k in set(want) | set(self.fields) if want.get(k) != self.fields.get(k))
        if differ:
            shown = "; ".join(f"{k}: store has {self.fields.get(k)!r}, this run {want.get(k)!r}"
                              for k in differ[:4])
            raise ExtractionError(f"the store at {self.path} was written by a different extraction ({shown}); "
                                  "use another folder, or the settings it was made with")

    def save_meta(self, meta: dict[str, Any]) -> None:
        """Record what produced the numbers (the result's ``meta``), for :meth:`Activations.load` of the store."""
        labels = dict(self.group.attrs["labels"])
        labels["meta"] = json.loads(json.dumps(meta, default=str))
        self.group.attrs["labels"] = labels
        self.labels = labels

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def _marker(g: int, k: int) -> str:
        return f"pieces/{g}-{k}.json"

    def _rows(self, k: int) -> slice:
        n = self.array.shape[2]
        return slice(k * self.block, min((k + 1) * self.block, n))

    def n_blocks(self) -> int:
        return -(-self.array.shape[2] // self.block)

    def write_piece(self, g: int, k: int, states: np.ndarray) -> None:
        """Store ``states`` ``[layer, sentences of block k, hidden]`` for language ``g``, then mark it done."""
        rows = self._rows(k)
        expected = (self.array.shape[0], rows.stop - rows.start, self.array.shape[3])
        if states.shape != expected:
            raise ExtractionError(f"piece ({g}, {k}) has shape {states.shape}, expected {expected}")
        stored = to_storage(states, self.storage)
        self.array[:, g, rows, :] = stored
        digest = hashlib.sha256(stored.tobytes()).hexdigest()
        self.location.write_atomic(self._marker(g, k), json.dumps({"sha256": digest}).encode())

    def piece_done(self, g: int, k: int, *, verify: bool = False) -> bool:
        """Whether piece (g, k) is complete (with ``verify``: its stored bytes match the checksum)."""
        raw = self.location.read_bytes(self._marker(g, k))
        if raw is None:
            return False
        try:
            digest = json.loads(raw)["sha256"]
        except (ValueError, KeyError, TypeError):
            return False
        if not verify:
            return True
        stored = np.ascontiguousarray(self.array[:, g, self._rows(k), :])
        return hashlib.sha256(stored.tobytes()).hexdigest() == digest

    def missing(self, *, verify: bool = False) -> list[tuple[int, int]]:
        """The (language, block) pieces still to compute."""
        G = self.array.shape[1]
        return [(g, k) for g in range(G) for k in range(self.n_blocks()) if not self.piece_done(g, k, verify=verify)]

    def view(self) -> StoreArray:
        return StoreArray(self.array, self.storage)


def _axis_index(key: Any, size: int) -> tuple[np.ndarray, bool]:
    """One axis of an orthogonal index: (positions, whether the axis is dropped)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        k = int(key) + (size if key < 0 else 0)
        if not 0 <= k < size:
            raise IndexError(f"index {key} is out of bounds for an axis of size {size}")
        return np.array([k]), True
    if isinstance(key, slice):
        return np.arange(size)[key], False
    arr = np.asarray(key)
    if arr.dtype == bool:
        return np.nonzero(arr.ravel())[0], False
    arr = arr.astype(np.int64).ravel()
    return np.where(arr < 0, arr + size, arr), False


class StoreArray:
    """A lazy float32 view of a store's array (or of a subset of it): reads only what an index touches.

    Indexing is orthogonal: ``a[[0, 2], [5, 7]]`` and ``a[np.ix_([0, 2], [5, 7])]`` both select layers
    0 and 2 of languages 5 and 7, as numpy does with ``ix_``.
    """

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(self, zarray: Any, storage: str, index: Sequence[np.ndarray] | None = None):
        self.zarray = zarray
        self.storage = storage
        self.index = tuple(np.arange(s) for s in zarray.shape) if index is None else tuple(index)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(i) for i in self.index)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def _positions(self, key: Any) -> tuple[list[np.ndarray], list[bool]]:
        """Positions in this view per axis, and which axes an integer drops."""
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        positions, drops = [], []
        for axis, k in enumerate(key):
            pos, drop = _axis_index(k, self.shape[axis])
            positions.append(pos)
            drops.append(drop)
        return positions, drops

    def _resolve(self, key: Any) -> tuple[list[np.ndarray], list[bool]]:
        positions, drops = self._positions(key)
        return [self.index[axis][pos] for axis, pos in enumerate(positions)], drops

    def subset(self, *axes: Sequence[int] | None) -> StoreArray:
        """A lazy view of the given positions per axis (``None`` keeps an axis whole)."""
        index = [self.index[a] if sel is None else self.index[a][np.asarray(sel, dtype=np.int64)]
                 for a, sel in enumerate(list(axes) + [None] * (self.ndim - len(axes)))]
        return StoreArray(self.zarray, self.storage, index)

    def __getitem__(self, key: Any) -> np.ndarray:
        parts, drops = self._resolve(key)
        if any(len(p) == 0 for p in parts):
            out = np.zeros([len(p) for p in parts], dtype=np.float32)
        else:
            out = from_storage(self.zarray.oindex[tuple(parts)], self.storage)
        squeeze = tuple(i for i, d in enumerate(drops) if d)
        return out.squeeze(squeeze) if squeeze else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def to_dask(self) -> Any:
        """A dask array of this view (float32), for ``Activations.to_xarray`` and distributed work."""
        import dask.array as da

        arr = da.from_zarr(self.zarray)
        for axis, idx in enumerate(self.index):
            if len(idx) != self.zarray.shape[axis] or not np.array_equal(idx, np.arange(len(idx))):
                arr = da.take(arr, idx, axis=axis)
        if self.storage == "bfloat16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(np.float32)


class ShiftedArray(StoreArray):
    """A lazy store view minus a per-(layer, language) vector: language-centred activations that stay on disk.

    ``shift`` ``[layer, language, hidden]`` (float64) is aligned with this view's axes 0, 1 and 3; a read
    returns ``stored - shift`` in float32, computed on the rows read only. ``subset`` keeps the shift
    aligned, so ``acts.sel(...)`` of centred activations stays lazy too.
    """

    def __init__(self, zarray: Any, storage: str, index: Sequence[np.ndarray] | None, shift: np.ndarray):
        super().__init__(zarray, storage, index)
        shift = np.asarray(shift, dtype=np.float64)
        want = (self.shape[0], self.shape[1], self.shape[3])
        if shift.shape != want:
            raise ExtractionError(f"a shift of shape {shift.shape} does not fit a view of shape {self.shape}")
        self.shift = shift

    @classmethod
    def of(cls, view: StoreArray, shift: np.ndarray) -> ShiftedArray:
        """``view`` minus ``shift`` (a view that is shifted already adds the two shifts)."""
        if isinstance(view, ShiftedArray):
            return cls(view.zarray, view.storage, view.index, view.shift + np.asarray(shift, dtype=np.float64))
        return cls(view.zarray, view.storage, view.index, shift)

    def subset(self, *axes: Sequence[int] | None) -> ShiftedArray:
        base = super().subset(*axes)
        sel = list(axes) + [None] * (self.ndim - len(axes))
        shift = self.shift
        for axis, shift_axis in ((0, 0), (1, 1), (3, 2)):
            if sel[axis] is not None:
                shift = np.take(shift, np.asarray(sel[axis], dtype=np.int64), axis=shift_axis)
        return ShiftedArray(base.zarray, base.storage, base.index, shift)

    def __getitem__(self, key: Any) -> np.ndarray:
        positions, drops = self._positions(key)
        parts = [self.index[axis][pos] for axis, pos in enumerate(positions)]
        if any(len(p) == 0 for p in parts):
            out = np.zeros([len(p) for p in parts], dtype=np.float32)
        else:
            raw = from_storage(self.zarray.oindex[tuple(parts)], self.storage)
            shift = self.shift[np.ix_(positions[0], positions[1], positions[3])]
            out = (raw - shift[:, :, None, :]).astype(np.float32)
        squeeze = tuple(i for i, d in enumerate(drops) if d)
        return out.squeeze(squeeze) if squeeze else out

    def to_dask(self) -> Any:
        import dask.array as da

        return (super().to_dask().astype(np.float64) - da.from_array(self.shift)[:, :, None, :]).astype(np.float32)
