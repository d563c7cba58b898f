"""Language codes: one canonical code per language, whatever spelling the data uses.

``fr``, ``fra`` and ``fra_Latn`` all resolve to ``fr``; ``cmn_hans`` to ``zh-Hans``; ``arb`` to
``ar``. The canonical form is the shortest BCP-47 tag from :mod:`langcodes` (macrolanguages
folded, a script dropped when it is the language's default). The user's original label is kept
for display by the objects that hold languages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from .errors import LanguageCodeError


@lru_cache(maxsize=4096)
def normalize_code(code: str) -> str:
    """Canonical BCP-47 code of ``code``; raises :class:`LanguageCodeError` when unknown.

    Underscores are read as hyphens. Subtags that langcodes cannot parse (``ell_monotonic``,
    ``pes_1``) are dropped from the end until the rest parses.
    """
    import langcodes

    if not isinstance(code, str) or not code.strip():
        raise LanguageCodeError(f"language code must be a non-empty string, got {code!r}")
    parts = code.strip().replace("_", "-").split("-")
    last_error: Exception | None = None
    for end in range(len(parts), 0, -1):
        tag = "-".join(parts[:end])
        try:
            std = langcodes.standardize_tag(tag, macro=True)
            lang = langcodes.Language.get(std).simplify_script()
        except (ValueError, LookupError) as exc:  # langcodes raises LanguageTagError(ValueError)
            last_error = exc
            continue
        if not lang.is_valid() or lang.language in (None, "und") or not lang.has_name_data():
            last_error = None
            continue
        return lang.to_tag()
    hint = f" ({last_error})" if last_error else ""
    raise LanguageCodeError(
        f"unknown language code {code!r}{hint}. Use an ISO 639 code such as 'fr', 'fra' or "
        "'fra_Latn' (FLORES style)."
    )


def language_name(code: str, *, native: bool = False) -> str:
    """English (or native, ``native=True``) name of a language: ``fr`` -> ``French`` / ``français``."""
    import langcodes

    lang = langcodes.Language.get(normalize_code(code))
    if native:
        name = lang.autonym()
        return name[:1].upper() + name[1:]
    return lang.display_name()


def base_language(code: str) -> str:
    """The language subtag of a canonical code: ``zh-Hant`` -> ``zh``, ``pt-PT`` -> ``pt``."""
    return normalize_code(code).split("-")[0]


def normalize_codes(codes: Iterable[str]) -> list[str]:
    """Normalise many codes at once, reporting every unknown code in one error."""
    out, bad = [], []
    for code in codes:
        try:
            out.append(normalize_code(code))
        except LanguageCodeError:
            bad.append(code)
    if bad:
        raise LanguageCodeError(
            f"unknown language code(s): {', '.join(map(repr, bad))}. Use ISO 639 codes such as "
            "'fr', 'fra' or 'fra_Latn'."
        )
    return out


def resolve(requested: str, available: Sequence[str]) -> str:
    """Find ``requested`` among canonical ``available`` codes.

    An exact canonical match wins; otherwise a unique match on the base language
    (``zh`` finds ``zh-Hant`` when it is the only Chinese). Raises with the available list.
    """
    code = normalize_code(requested)
    if code in available:
        return code
    base = code.split("-")[0]
    same_base = [a for a in available if a.split("-")[0] == base]
    if len(same_base) == 1 and (code == base or same_base[0] == base):
        return same_base[0]
    if len(same_base) > 1:
        raise LanguageCodeError(
            f"language {requested!r} is ambiguous here: it could be {', '.join(same_base)}; name one of them"
        )
    raise LanguageCodeError(
        f"language {requested!r} (canonical {code!r}) is not available; available: {', '.join(available)}"
    )
