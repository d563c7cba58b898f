"""Language distances from URIEL+ (the ``urielplus`` package) and script identity.

:func:`language_distances` returns, per distance kind, a symmetric languages x languages table with a
zero diagonal and NaN where the knowledge base has no data for a language (or no feature that both
languages of a pair have).

Definition (URIEL+'s ``new_distance``, reproduced here in matrix form so that hundreds of languages take
seconds; the test checks it against ``URIELPlus.new_distance`` pair by pair): each language has a value
per feature, aggregated over the sources of URIEL+ (the union, ``max`` of the known source values, URIEL+'s
default aggregation ``'U'``; the mean for ``geographic``); unknown = -1 in every source. The distance of
languages a and b is the angular distance over the features known for both,
``d = 2 arccos(cos(u, v)) / pi`` in [0, 1] (URIEL+'s default ``distance_metric = "angular"``; URIEL+
replaces an all-zero vector by a constant one, so is this; URIEL+ rounds to 4 decimals, this does not).
The kinds and their features: ``genetic`` (Glottolog lineage, matrix 0), ``geographic`` (distances to
fixed points on the globe, matrix 2), ``featural`` (every typological feature of matrix 1),
``syntactic`` (``S_*``), ``phonological`` (``P_*``), ``inventory`` (``INV_*``), ``morphological``
(``M_*``). ``script`` is not URIEL's: 1 when the two languages are written in different scripts, else 0
(the script of each language from its code, see :func:`~xling_probe.distances.codes.script_of_code`, or
given as ``scripts=``).

Sources (``source=``):

- ``"urielplus"`` (default): URIEL with the databases URIEL+ integrates (SAPHON, BDPROTO, Grambank,
  APICS, eWAVE, Glottolog; all shipped inside the ``urielplus`` wheel, nothing is downloaded). The
  integration takes 1-4 minutes and up to 8 GB of memory once; the aggregated values are then
  cached under the xling_probe cache (``urielplus/``) and read memory-mapped.
- ``"uriel"``: the original URIEL arrays shipped in the wheel (``database/original_uriel``), no
  integration (2 s; fewer languages and features).

Codes are mapped to ISO 639-3 by :mod:`xling_probe.distances.codes`; URIEL+ keys its integrated data by
Glottocode, reached through the wheel's ``uriel_glottocode_map.csv``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LanguageCodeError, MetricError
from .codes import script_of_code, to_iso639_3
from .knowledge import _MATRIX, _PREFIX, _urielplus_version, knowledge_base

#: The kinds :func:`language_distances` computes by default (``script`` is added unless ``include_script=False``).
DEFAULT_KINDS = ("syntactic", "phonological", "inventory", "genetic", "geographic", "featural")
URIEL_KINDS = DEFAULT_KINDS + ("morphological",)
KINDS = URIEL_KINDS + ("script",)



# ====================================================================== distances
def angular_distances(values: np.ndarray) -> np.ndarray:
    """Pairwise URIEL+ angular distance between the rows of ``values`` [n, features] (NaN = unknown).

    For rows a, b over the features known in both: ``2 arccos(cos(u, v)) / pi`` (an all-zero vector
    counts as a constant vector, as URIEL+ does); NaN when they share no known feature; 0 on the diagonal
    of a row with any known feature."""
    x = np.asarray(values, dtype=np.float64)
    m = np.isfinite(x).astype(np.float64)
    v = np.where(m > 0, x, 0.0)
    count = m @ m.T  # shared known features
    dot = v @ v.T
    sq_a = (v * v) @ m.T  # [a, b]: sum over shared features of u_a^2
    sq_b = sq_a.T
    sum_a = v @ m.T  # [a, b]: sum over shared of u_a
    sum_b = sum_a.T
    na, nb = np.sqrt(sq_a), np.sqrt(sq_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(count)
        cos = dot / (na * nb)
        cos = np.where((na == 0) & (nb > 0), sum_b / (root * nb), cos)
        cos = np.where((nb == 0) & (na > 0), sum_a / (root * na), cos)
        cos = np.where((na == 0) & (nb == 0), 1.0, cos)
    cos = np.clip(cos, -1.0, 1.0)
    d = 2.0 * np.arccos(cos) / np.pi
    d[count == 0] = np.nan
    d = (d + d.T) / 2.0  # exact symmetry (the two triangles differ only by rounding)
    diag = np.diag(count) > 0
    d[np.diag_indices_from(d)] = np.where(diag, 0.0, np.nan)
    return d


@dataclass(frozen=True, eq=False)
class LanguageDistances:
    """Distances between languages, one symmetric languages x languages table per kind.

    ``languages``: the canonical codes (rows and columns of every table, in the order asked);
    ``labels``: each code as it was written; ``iso639_3``: the URIEL code used (``None`` = not mapped);
    ``unmapped``: the codes with no URIEL entry (their rows are NaN for the URIEL kinds);
    ``missing[kind]``: mapped languages without data of that kind; ``scripts``: the script of each language.
    """

    languages: tuple[str, ...]
    labels: dict[str, str]
    iso639_3: dict[str, str | None]
    tables: dict[str, pd.DataFrame]
    unmapped: tuple[str, ...]
    missing: dict[str, tuple[str, ...]]
    scripts: dict[str, str | None]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.tables)

    def matrix(self, kind: str) -> pd.DataFrame:
        """The languages x languages table of one kind (a copy)."""
        if kind not in self.tables:
            raise MetricError(f"no distance kind {kind!r} here; these distances hold {list(self.tables)}")
        return self.tables[kind].copy()

    def __getitem__(self, kind: str) -> pd.DataFrame:
        return self.matrix(kind)

    def to_dataframe(self) -> pd.DataFrame:
        """Long table: one row per (kind, lang_a, lang_b) with lang_a < lang_b in the order of ``languages``."""
        rows = []
        n = len(self.languages)
        for kind, table in self.tables.items():
            arr = table.to_numpy()
            for i in range(n):
                for j in range(i + 1, n):
                    rows.append((kind, self.languages[i], self.languages[j], float(arr[i, j])))
        return pd.DataFrame(rows, columns=["kind", "lang_a", "lang_b", "distance"])

    def coverage(self) -> pd.DataFrame:
        """Per kind: how many languages and language pairs have a distance."""
        rows = []
        n = len(self.languages)
        iu = np.triu_indices(n, 1)
        for kind, table in self.tables.items():
            arr = table.to_numpy()
            rows.append({"kind": kind, "languages_with_data": int(np.isfinite(np.diag(arr)).sum()),
                         "pairs_with_data": int(np.isfinite(arr[iu]).sum()), "pairs": len(iu[0])})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (f"LanguageDistances({len(self.languages)} languages, kinds={list(self.tables)}, source={self.source!r}, "
                f"unmapped={list(self.unmapped)})")


def _canonical_or_label(code: str) -> str:
    from ..data.languages import normalize_code

    try:
        return normalize_code(code)
    except LanguageCodeError:
        return code.strip()


def language_distances(
    codes: Iterable[str],
    kinds: Sequence[str] = DEFAULT_KINDS,
    *,
    include_script: bool = True,
    scripts: Mapping[str, str | None] | None = None,
    source: str = "urielplus",
    strict: bool = False,
) -> LanguageDistances:
    """Per kind, the languages x languages distance table from URIEL+ (module docstring) plus ``script``.

    ``codes``: any spelling the project reads (``en``, ``eng``, ``cmn_hans``, ``deu_1996``...); two codes of
    the same language are an error. A code URIEL+ does not know is listed in ``unmapped`` (its rows are
    NaN) or, with ``strict=True``, raises :class:`LanguageCodeError`. ``kinds``: any of :data:`KINDS`.
    ``scripts``: the script of each language (any naming, e.g. from
    :func:`~xling_probe.distances.codes.scripts_from_texts`); default: from the codes (ISO 15924, CLDR
    likely script). ``source``: ``"urielplus"`` (integrated databases, cached after the first call) or
    ``"uriel"`` (the original arrays, fast).
    """
    labels_in = [str(c) for c in codes]
    if len(labels_in) < 2:
        raise MetricError(f"language distances need at least 2 languages, got {labels_in}")
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise MetricError(f"unknown distance kind(s) {bad}; choose from {KINDS}")
    if include_script and "script" not in kinds:
        kinds = kinds + ("script",)
    canon = [_canonical_or_label(c) for c in labels_in]
    dups = sorted({c for c in canon if canon.count(c) > 1})
    if dups:
        raise MetricError(f"codes {labels_in} name the same language twice ({dups}); give each language once")
    uriel_kinds = [k for k in kinds if k != "script"]
    iso: dict[str, str | None] = {}
    keys: list[str | None] = []
    base = knowledge_base(source) if uriel_kinds else None
    known = base.known_iso() if base is not None else None
    for c, lab in zip(canon, labels_in):
        code = to_iso639_3(lab, known)
        iso[c] = code
        keys.append(None if code is None or base is None else base.iso_to_key.get(code))
    unmapped = tuple(lab for c, lab in zip(canon, labels_in) if base is not None and iso[c] is None)
    if unmapped and strict:
        raise LanguageCodeError(f"URIEL+ ({source}) has no entry for {list(unmapped)}; drop them or pass strict=False "
                                "(their distances are NaN)")
    index = pd.Index(canon, name="lang_a")
    columns = pd.Index(canon, name="lang_b")
    tables: dict[str, pd.DataFrame] = {}
    missing: dict[str, tuple[str, ...]] = {}
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for kind in uriel_kinds:
        m = _MATRIX[kind]
        if m not in cache:
            cache[m] = base.rows(m, keys)
        vals, found = cache[m]
        if kind in _PREFIX:
            sel = np.char.startswith(base.feats[m].astype(str), _PREFIX[kind])
            vals = vals[:, sel]
        d = angular_distances(vals)
        tables[kind] = pd.DataFrame(d, index=index.copy(), columns=columns.copy())
        has = np.isfinite(vals).any(axis=1)
        missing[kind] = tuple(lab for lab, c, ok in zip(labels_in, canon, has) if not ok and iso[c] is not None)
    script_of: dict[str, str | None] = {}
    if "script" in kinds:
        for c, lab in zip(canon, labels_in):
            if scripts is not None:
                script_of[c] = scripts.get(lab, scripts.get(c))
            else:
                script_of[c] = script_of_code(lab)
        s = [script_of[c] for c in canon]
        d = np.array([[np.nan if a is None or b is None else float(a != b) for b in s] for a in s])
        tables["script"] = pd.DataFrame(d, index=index.copy(), columns=columns.copy())
        missing["script"] = tuple(lab for lab, c in zip(labels_in, canon) if script_of[c] is None)
    return LanguageDistances(
        languages=tuple(canon), labels=dict(zip(canon, labels_in)), iso639_3=iso, tables=tables, unmapped=unmapped,
        missing=missing, scripts=script_of, source=source,
        meta={"urielplus": base.version if base is not None else _urielplus_version(), "aggregation": "U",
              "distance": "angular", "script_from": "given" if scripts is not None else "code (CLDR likely script)"},
    )
