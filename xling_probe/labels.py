"""Labels with one grammar: layers, languages, language pairs and directions.

The API, the command line and the widgets all read labels here, so they accept the same spellings
and refuse the same typos with the same messages:

- layers: ``1,5,9``, ``3-5`` (inclusive), ``all``, negative from the end (:func:`parse_layers`);
  :func:`resolve_layers` against a model's ``n_states`` residual-stream states (0 = embeddings,
  l = output of block l-1), :func:`select_layers` / :func:`layer_position` against the layers a result holds;
- languages: any spelling of a code (``fr``, ``fra``, ``fra_Latn``, the corpus's own label) -> the
  canonical code present (:func:`resolve_language`);
- pairs: ``all``, ``pivot:en``, ``en-de,en/zh-Hant`` or tuples (:func:`parse_pairs`, :func:`resolve_pairs`);
- directions of directional measures: ``both``, ``forward`` (a -> b), ``backward`` (:func:`check_direction`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .errors import ExtractionError, LanguageCodeError, MetricError, XlingProbeError

#: What a ``layers=`` argument accepts: ``"all"``, a layer string (``"1,5,9"``, ``"3-5"``), one layer,
#: several, or ``None`` (every layer, where a function allows it); negative indices count from the end.
LayerSpec = int | str | Sequence[int] | None

_INDEX = re.compile(r"-?\d+")
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def parse_layers(text: str) -> str | list[int]:
    """Read a layer list written as text: ``"all"``, ``"1,5,9"``, ``"1-5"`` (inclusive), ``"0,3-5,18"``, ``"-1"``.

    Returns ``"all"`` or the indices in the order written (duplicates kept once); negative indices
    count from the end and are resolved against the model by :func:`resolve_layers`. Ranges take
    non-negative ends, low to high. Raises :class:`ExtractionError` naming the piece it cannot read.
    """
    text = str(text).strip()
    if text.lower() == "all":
        return "all"
    out: list[int] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if _INDEX.fullmatch(piece):
            values = [int(piece)]
        elif m := _RANGE.fullmatch(piece):
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise ExtractionError(f"layer range {piece!r} goes downwards; write it low-high, e.g. {hi}-{lo}")
            values = list(range(lo, hi + 1))
        else:
            raise ExtractionError(
                f"cannot read layer {piece!r} in {text!r}; write 'all', or indices and inclusive ranges like "
                "1,5,9 or 0,3-5,18 (negative indices count from the end)"
            )
        out.extend(v for v in values if v not in out)
    if not out:
        raise ExtractionError(f"no layers in {text!r}; write 'all' or indices like 1,5,9 or a range like 1-5")
    return out


def resolve_layers(layers: LayerSpec, n_states: int) -> list[int]:
    """Sorted residual-stream indices from ``"all"``, an int, ints (negative ones count from the end),
    or a layer string that :func:`parse_layers` reads (``"1,5,9"``, ``"3-5"``)."""
    if isinstance(layers, str):
        layers = parse_layers(layers)
        if layers == "all":
            return list(range(n_states))
    items = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    out = []
    for x in items:
        if not isinstance(x, (int, np.integer)) or isinstance(x, bool):
            raise ExtractionError(f"layer {x!r} is not an int")
        idx = int(x) + n_states if x < 0 else int(x)
        if not 0 <= idx < n_states:
            raise ExtractionError(
                f"layer {x} is out of range: this model has {n_states} residual-stream states, layers "
                f"0 (embeddings) ... {n_states - 1} (after the last block), or -{n_states} ... -1 from the end"
            )
        out.append(idx)
    if not out:
        raise ExtractionError("no layers requested")
    return sorted(set(out))


def select_layers(layers: LayerSpec, available: Sequence[int], *, error: type[XlingProbeError] = MetricError) -> list[int]:
    """Positions (axis-0 indices) in ``available`` of the requested layer labels, sorted, without repeats.

    ``layers``: ``None`` or ``"all"`` (every available layer), one layer, several, or a string that
    :func:`parse_layers` reads; negative values count from the last available layer. Used by every
    result and by :class:`~xling_probe.extraction.activations.Activations`, which hold a subset of a
    model's layers: the labels are residual-stream indices, the positions are array indices.
    """
    available = [int(x) for x in available]
    if layers is None:
        return list(range(len(available)))
    if isinstance(layers, str):
        try:
            layers = parse_layers(layers)
        except ExtractionError as exc:
            raise error(str(exc)) from None
        if layers == "all":
            return list(range(len(available)))
    items = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    if not items:
        raise error("no layers requested")
    return sorted({layer_position(x, available, error=error) for x in items})


def layer_position(layer: int, available: Sequence[int], *, error: type[XlingProbeError] = MetricError) -> int:
    """Axis-0 index of one layer label in ``available`` (negative values count from the last)."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise error(f"layer must be an int (a residual-stream index), got {layer!r}")
    available = [int(x) for x in available]
    if layer < 0:
        if -layer > len(available):
            raise error(f"layer {layer} is out of range for {len(available)} layers ({_span(available)})")
        return len(available) + int(layer)
    if int(layer) not in available:
        raise error(f"layer {layer} is not available; available layers: {_span(available)}")
    return available.index(int(layer))


def _span(layers: Sequence[int]) -> str:
    if layers and list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}..{layers[-1]}"
    return ", ".join(map(str, layers))


# ====================================================================== languages
def resolve_language(
    requested: str,
    available: Sequence[str],
    labels: Mapping[str, str] | None = None,
    *,
    error: type[XlingProbeError] = LanguageCodeError,
    what: str = "these data",
) -> str:
    """The canonical code in ``available`` that ``requested`` names, in any accepted spelling.

    Tried in order: an exact canonical code; an original label (``labels[code]`` as the source wrote
    it, e.g. ``fra_Latn`` or ``es-LA``); the normalised code (:func:`~xling_probe.data.languages.normalize_code`);
    a unique match on the base language (``zh`` finds ``zh-Hant`` when it is the only Chinese).
    Raises ``error`` naming what is available; an ambiguous base names the candidates.
    """
    from .data.languages import normalize_code

    if not isinstance(requested, str) or not requested.strip():
        raise error(f"a language must be a code such as 'en' or 'fra_Latn', got {requested!r}")
    available = list(available)
    if requested in available:
        return requested
    for code, label in (labels or {}).items():
        if label == requested and code in available:
            return code
    try:
        code = normalize_code(requested)
    except XlingProbeError:
        raise error(f"language {requested!r} is not a language code; {what} have: {', '.join(available)}") from None
    if code in available:
        return code
    base = code.split("-")[0]
    same_base = [a for a in available if a.split("-")[0] == base]
    if len(same_base) == 1 and (code == base or same_base[0] == base):
        return same_base[0]
    if len(same_base) > 1:
        raise error(f"language {requested!r} is ambiguous here: it could be {', '.join(same_base)}; name one of them")
    raise error(f"language {requested!r} (canonical {code!r}) is not in {what}; available: {', '.join(available)}")


# ====================================================================== pairs
#: Separators of a written pair, strongest first: ``en/zh-Hant``, ``en:de``, ``en→de``, ``en–de``, ``en-de``.
PAIR_SEPARATORS = ("/", ":", "→", "–", "-")

Pair = tuple[str, str]


def parse_pair(item: str | Sequence[str]) -> Pair:
    """One pair as written by a user: ``("en", "de")``, ``"en-de"``, ``"en/zh-Hant"``, ``"en→de"``.

    With only ``-`` as separator, the split is the first ``-`` after which both sides read as
    language codes, so ``en-zh-Hant`` is ``(en, zh-Hant)`` and ``zh-Hant-en`` is ``(zh-Hant, en)``.
    """
    if not isinstance(item, str):
        parts = tuple(item) if isinstance(item, Sequence) else ()
        if len(parts) != 2 or not all(isinstance(p, str) and p.strip() for p in parts):
            raise MetricError(f"a pair is two language codes (a, b), got {item!r}")
        return parts[0].strip(), parts[1].strip()
    text = item.replace(" ", "")
    for sep in PAIR_SEPARATORS[:-1]:
        if sep in text:
            a, b = text.split(sep, 1)
            if a and b:
                return a, b
            raise MetricError(f"cannot read pair {item!r}: a language is missing on one side")
    from .data.languages import is_language_code  # lazy: data/ imports labels

    cuts = [i for i, ch in enumerate(text) if ch == "-"]
    if not cuts:
        raise MetricError(f"cannot read pair {item!r}; write pairs as en-de or en/zh-Hant")
    for i in cuts:
        a, b = text[:i], text[i + 1:]
        if a and b and is_language_code(a) and is_language_code(b):
            return a, b
    a, b = text.split("-", 1)
    if not a or not b:
        raise MetricError(f"cannot read pair {item!r}: a language is missing on one side")
    return a, b


def parse_pairs(spec: Any) -> str | list[Pair]:
    """The pair grammar of the API, the CLI and the widgets, before languages are known.

    ``"all"`` (every unordered pair); ``"pivot:en"`` (en with every other language; ``"pivot"`` alone
    takes the pivot given separately); a comma-separated string ``"en-de,en-zh"``; or a sequence of
    pairs written as tuples or strings. Returns ``"all"``, ``"pivot:<code>"``, ``"pivot"`` or a list of pairs.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text in ("all", "pivot") or text.startswith("pivot:"):
            if text.startswith("pivot:") and not text.split(":", 1)[1].strip():
                raise MetricError("write the pivot language after 'pivot:', e.g. pivot:en")
            return text
        items: list[Any] = [x for x in (p.strip() for p in text.split(",")) if x]
    else:
        try:
            items = list(spec)
        except TypeError:
            raise MetricError(f"pairs must be 'all', 'pivot:<language>' or a list of pairs, got {spec!r}") from None
    if not items:
        raise MetricError("no pairs given; use 'all', 'pivot:en' or pairs like en-de,en-zh")
    return [parse_pair(x) for x in items]


def resolve_pairs(
    spec: Any,
    languages: Sequence[str],
    labels: Mapping[str, str] | None = None,
    *,
    pivot: str | None = None,
    error: type[XlingProbeError] = MetricError,
) -> tuple[Pair, ...]:
    """Language pairs as canonical codes of ``languages``: the grammar of :func:`parse_pairs`.

    Explicit pairs keep their written order (a -> b for directional measures); a pair and its reverse,
    or a repeat, count once; a language paired with itself is an error.
    """
    languages = list(languages)

    def lang(x: str) -> str:
        return resolve_language(x, languages, labels, error=error)

    parsed = parse_pairs(spec)
    if parsed == "all":
        out = [(a, b) for i, a in enumerate(languages) for b in languages[i + 1:]]
    elif isinstance(parsed, str):
        centre = parsed.split(":", 1)[1].strip() if ":" in parsed else pivot
        if centre is None:
            raise error("pairs='pivot' needs a pivot language: pass pivot='en' or write 'pivot:en'")
        p = lang(centre)
        out = [(p, b) for b in languages if b != p]
    else:
        out = []
        for a, b in parsed:
            ca, cb = lang(a), lang(b)
            if ca == cb:
                raise error(f"pair ({a}, {b}) compares a language with itself")
            out.append((ca, cb))
    seen: set[frozenset[str]] = set()
    unique = []
    for a, b in out:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            unique.append((a, b))
    if not unique:
        raise error(f"no language pair to score (languages: {languages}); use at least two languages")
    return tuple(unique)


def pair_label(pair: Pair, directed: bool = False) -> str:
    """``en-de`` for a symmetric pair, ``en→de`` for a directed one (a queries, b is searched)."""
    return f"{pair[0]}{'→' if directed else '-'}{pair[1]}"


# ====================================================================== directions
#: ``direction=`` of every summary: "both" = the mean of a -> b and b -> a, "forward" = a -> b as the
#: pair is written (a queries, b is searched), "backward" = b -> a. Symmetric measures ignore it.
DIRECTIONS = ("both", "forward", "backward")
Direction = Literal["both", "forward", "backward"]


def check_direction(direction: str) -> str:
    """``direction`` if it is one of :data:`DIRECTIONS`, else a :class:`MetricError` saying what each means."""
    if direction not in DIRECTIONS:
        raise MetricError(f"direction must be one of {DIRECTIONS} (forward = a -> b as the pair is written, "
                          f"a queries; backward = b -> a; both = their mean), got {direction!r}")
    return direction
