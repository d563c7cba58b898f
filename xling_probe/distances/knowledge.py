"""The URIEL / URIEL+ knowledge base behind :mod:`.uriel`: loading the shipped arrays, integrating URIEL+'s
databases once, and caching the aggregated values (see :mod:`.uriel` for the sources and definitions)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MetricError

SOURCES = ("urielplus", "uriel")
_MATRIX = {"genetic": 0, "featural": 1, "syntactic": 1, "phonological": 1, "inventory": 1, "morphological": 1,
           "geographic": 2}
_PREFIX = {"syntactic": "S_", "phonological": "P_", "inventory": "INV_", "morphological": "M_"}
_FILES = ("family_features.npz", "features.npz", "geocoord_features.npz", "script_features.npz")
_LOCK = threading.Lock()


# ====================================================================== the knowledge base
@dataclass(frozen=True, eq=False)
class _Base:
    """Aggregated values of one source: per matrix ``values[m]`` [language, feature] (NaN = unknown)."""

    source: str
    langs: tuple[np.ndarray, ...]
    feats: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]  # float32 (NaN unknown) or int8 (-1 unknown), possibly memory-mapped
    iso_to_key: dict[str, str]
    version: str

    def rows(self, matrix: int, keys: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """``(values [len(keys), feature] float64 with NaN unknown, found [len(keys)] bool)``."""
        index = _index(self, matrix)
        feats = len(self.feats[matrix])
        out = np.full((len(keys), feats), np.nan)
        found = np.zeros(len(keys), dtype=bool)
        for k, key in enumerate(keys):
            pos = index.get(key) if key is not None else None
            if pos is None:
                continue
            row = np.asarray(self.values[matrix][pos])
            row = np.where(row == -1, np.nan, row).astype(np.float64) if row.dtype == np.int8 else row.astype(np.float64)
            out[k] = row
            found[k] = True
        return out, found

    def known_iso(self) -> set[str]:
        keys = set()
        for m in range(3):
            keys.update(str(x) for x in self.langs[m])
        return {iso for iso, key in self.iso_to_key.items() if key in keys}


_INDEXES: dict[tuple[int, int], dict[str, int]] = {}


def _index(base: _Base, matrix: int) -> dict[str, int]:
    key = (id(base), matrix)
    if key not in _INDEXES:
        _INDEXES[key] = {str(v): p for p, v in enumerate(base.langs[matrix])}
    return _INDEXES[key]


def _aggregate(data: np.ndarray, geographic: bool) -> np.ndarray:
    """[language, feature, source] -> [language, feature]: max (mean for geographic) of the known values."""
    data = np.asarray(data)
    if data.shape[2] == 1:  # one source: nothing to aggregate (the genetic matrix is large: no float64 copy)
        out = data[:, :, 0].astype(np.float32)
        out[(out == -1.0) | ~np.isfinite(out)] = np.nan
        return out
    data = data.astype(np.float64)
    known = (data != -1.0) & np.isfinite(data)
    if geographic:
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.where(known, data, 0.0).sum(axis=2)
            count = known.sum(axis=2)
            out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    else:
        out = np.where(known, data, -np.inf).max(axis=2)
        out[~known.any(axis=2)] = np.nan
    return out


def _compact(values: np.ndarray) -> np.ndarray:
    """int8 with -1 = unknown when every known value is 0 or 1 (genetic, typological), else float32."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or np.all((finite == 0) | (finite == 1)):
        out = np.full(values.shape, -1, dtype=np.int8)
        out[np.isfinite(values)] = values[np.isfinite(values)].astype(np.int8)
        return out
    return values.astype(np.float32)


def _urielplus_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("urielplus")
    except PackageNotFoundError:
        return "unknown"


def _package_dir() -> Path:
    try:
        import urielplus
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MetricError("language distances need the 'urielplus' package: pip install 'urielplus>=1.3'") from exc
    return Path(urielplus.__file__).resolve().parent


def _glottocode_map() -> dict[str, str]:
    path = _package_dir() / "database" / "urielplus_csvs" / "uriel_glottocode_map.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    return {iso.strip(): glot.strip() for iso, glot in zip(table["iso_code"], table["glottocode"])
            if iso.strip() and glot.strip()}


def _load_original() -> _Base:
    """URIEL's arrays as the wheel ships them (ISO 639-3 keys), aggregated in memory."""
    folder = _package_dir() / "database" / "original_uriel"
    langs, feats, values = [], [], []
    for m, name in enumerate(_FILES[:3]):
        path = folder / name
        if not path.is_file():
            raise MetricError(f"the urielplus wheel lacks {path}; reinstall urielplus (pip install --force-reinstall "
                              "'urielplus>=1.3')")
        with np.load(path, allow_pickle=True) as f:
            langs.append(np.asarray(f["langs"]).astype(str))
            feats.append(np.asarray(f["feats"]).astype(str))
            values.append(_compact(_aggregate(f["data"], geographic=(m == 2))))
    iso = {str(x): str(x) for m in range(3) for x in langs[m]}
    return _Base("uriel", tuple(langs), tuple(feats), tuple(values), iso, _urielplus_version())


def _integrated_cache_folder() -> Path:
    from ..paths import cache_dir

    return cache_dir("urielplus") / f"urielplus-{_urielplus_version()}-U"


def _load_integrated(cache: bool = True) -> _Base:
    """URIEL+ after ``integrate_databases()`` (Glottocode keys); cached aggregated values, memory-mapped."""
    folder = _integrated_cache_folder() if cache else None
    if folder is not None and (folder / "done.json").is_file():
        return _read_cached(folder)
    import logging

    from urielplus.urielplus import URIELPlus

    root = logging.getLogger()
    level = root.level
    try:
        u = URIELPlus()  # copies the shipped arrays into its own database/ folder on first use (URIEL+'s behaviour)
        u.set_cache(False)
        u.integrate_databases()
        u.map_new_distance_to_loaded_features("featural")  # URIEL+'s eWAVE restriction, as new_distance applies it
    finally:
        root.setLevel(level)
    langs = tuple(np.asarray(u.langs[m]).astype(str) for m in range(3))
    feats = tuple(np.asarray(u.feats[m]).astype(str) for m in range(3))
    values = []
    for m in range(3):
        values.append(_compact(_aggregate(u.data[m], geographic=(m == 2))))
        u.data[m] = None  # free the source arrays as soon as they are aggregated
    del u
    mapping = _glottocode_map()
    base = _Base("urielplus", langs, feats, tuple(values), mapping, _urielplus_version())
    if folder is not None:
        _write_cache(folder, base)
        return _read_cached(folder)
    return base


def _write_cache(folder: Path, base: _Base) -> None:
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for m in range(3):
        np.save(tmp / f"values{m}.npy", base.values[m])
    (tmp / "labels.json").write_text(json.dumps({"langs": [list(map(str, x)) for x in base.langs],
                                                 "feats": [list(map(str, x)) for x in base.feats],
                                                 "iso_to_key": base.iso_to_key}))
    (tmp / "done.json").write_text(json.dumps({"urielplus": base.version, "aggregation": "U"}))
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first: keep its copy
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _read_cached(folder: Path) -> _Base:
    labels = json.loads((folder / "labels.json").read_text())
    values = tuple(np.load(folder / f"values{m}.npy", mmap_mode="r") for m in range(3))
    return _Base("urielplus", tuple(np.asarray(x) for x in labels["langs"]),
                 tuple(np.asarray(x) for x in labels["feats"]), values, labels["iso_to_key"],
                 json.loads((folder / "done.json").read_text())["urielplus"])


@lru_cache(maxsize=2)
def knowledge_base(source: str = "urielplus") -> _Base:
    """The aggregated URIEL+ (``"urielplus"``) or URIEL (``"uriel"``) values, loaded once per process."""
    if source not in SOURCES:
        raise MetricError(f"unknown distance source {source!r}; choose one of {SOURCES}")
    with _LOCK:
        return _load_original() if source == "uriel" else _load_integrated()
