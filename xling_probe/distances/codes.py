"""Our language codes -> the ISO 639-3 codes of URIEL / URIEL+, and the script of a language.

Every spelling the project reads (``en``, ``eng``, ``fra_Latn``, UDHR's ``cmn_hans``, ``deu_1996``,
``pes_1``, ``fuv2``) goes through :func:`xling_probe.data.languages.normalize_code` first. The canonical
code folds macrolanguages (``cmn`` -> ``zh``, ``arb`` -> ``ar``), but URIEL describes individual
languages (``cmn``, ``arb``, ``pes``), so the ISO 639-3 code is chosen in this order, keeping the first
one the knowledge base knows (``known``):

1. the ISO 639-3 code of the canonical language (``en`` -> ``eng``, ``de`` -> ``deu``) unless it is a
   macrolanguage;
2. for a macrolanguage: the individual language the user wrote (``cmn_hans`` -> ``cmn``, ``pes_1`` ->
   ``pes``), then the usual representative in :data:`MACRO_DEFAULTS` (``zh`` -> ``cmn``, ``ar`` ->
   ``arb``, ``fa`` -> ``pes``, ...), then the macrolanguage code itself (``zho``), then any individual
   member (alphabetical);
3. the first subtag as written, when it is a 3-letter code (``mly`` in UDHR).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache

from ..data.languages import normalize_code
from ..errors import LanguageCodeError

#: The individual language that stands for a macrolanguage when the data does not say which one.
MACRO_DEFAULTS = {
    "zh": "cmn", "ar": "arb", "fa": "pes", "ms": "zsm", "sw": "swh", "et": "ekk", "lv": "lvs", "uz": "uzn",
    "no": "nob", "sq": "als", "az": "azj", "mn": "khk", "ne": "npi", "or": "ory", "ps": "pbu", "qu": "quy",
    "om": "gaz", "kr": "knc", "ku": "kmr", "yi": "ydd", "gn": "gug", "ff": "fuv", "ak": "twi", "mg": "plt",
    "kok": "gom", "lah": "pnb", "bal": "bcc", "din": "dik", "zap": "zai", "kpe": "xpe", "grb": "gbo",
    "hai": "hdn", "doi": "dgo", "raj": "rwr", "syr": "aii", "tmh": "taq", "mwr": "rwr", "cr": "crk",
    "iu": "ike", "ik": "esk", "oj": "ojg", "sc": "sro", "bik": "bcl", "luy": "lrm", "kln": "niq",
    "est": "ekk", "lav": "lvs",
}

_HEAD = re.compile(r"^([A-Za-z]{2,3})\d*$")


@lru_cache(maxsize=1)
def _macro_members() -> dict[str, tuple[str, ...]]:
    from langcodes.data_dicts import MACROLANGUAGES

    members: dict[str, list[str]] = {}
    for individual, macro in MACROLANGUAGES.items():
        members.setdefault(macro, []).append(individual)
    return {m: tuple(sorted(v)) for m, v in members.items()}


def _alpha3(base: str) -> str | None:
    import langcodes

    try:
        code = langcodes.Language.get(base, normalize=False).to_alpha3()
    except (LookupError, ValueError):
        return None
    return code or None


def _written_head(code: str) -> str | None:
    head = re.split(r"[-_]", code.strip())[0]
    m = _HEAD.match(head)
    return m.group(1).lower() if m else None


def iso639_3_candidates(code: str) -> list[str]:
    """ISO 639-3 codes ``code`` may stand for, best first (module docstring); empty when it cannot be read."""
    try:
        canonical = normalize_code(code)
    except LanguageCodeError:
        head = _written_head(code)
        return [head] if head and len(head) == 3 else []
    base = canonical.split("-")[0]
    written = _written_head(code)
    out: list[str] = []
    a3 = _alpha3(base)
    members = _macro_members().get(base, ())
    if members:
        if written in members:
            out.append(written)
        if base in MACRO_DEFAULTS:
            out.append(MACRO_DEFAULTS[base])
        if a3:
            out.append(a3)
        out.extend(m for m in members if len(m) == 3)
    elif a3:
        out.append(a3)
    if written and len(written) == 3:
        out.append(written)
    seen: set[str] = set()
    return [c for c in out if not (c in seen or seen.add(c))]


def to_iso639_3(code: str, known: Collection[str] | None = None) -> str | None:
    """The ISO 639-3 code of ``code`` (first candidate in ``known`` when given); ``None`` when there is none."""
    for cand in iso639_3_candidates(code):
        if known is None or cand in known:
            return cand
    return None


def script_of_code(code: str) -> str | None:
    """ISO 15924 script of a language code: its script subtag (``zh-Hant``, ``az-Cyrl``), else CLDR's likely
    script of the language (``ru`` -> ``Cyrl``, ``ja`` -> ``Jpan``, ``zh`` -> ``Hans``); ``None`` if unknown."""
    import langcodes

    try:
        canonical = normalize_code(code)
    except LanguageCodeError:
        return None
    lang = langcodes.Language.get(canonical, normalize=False)
    if lang.script:
        return lang.script
    try:
        script = langcodes.Language.make(language=lang.language, territory=lang.territory).maximize().script
    except (LookupError, ValueError):
        return None
    return script if script and script != "Zzzz" else None


def scripts_from_texts(texts: Mapping[str, str | Iterable[str]]) -> dict[str, str]:
    """Majority Unicode script of each language's text (``{code: 'Latin' | 'Cyrillic' | 'Han' | ...}``), by the
    project's :func:`xling_probe.lens.shares.script_of`; pass it as ``scripts=`` to :func:`language_distances`.

    The names are Unicode script names, not ISO 15924 codes: give every language this way or none."""
    from ..lens.shares import script_of

    out = {}
    for code, text in texts.items():
        joined = text if isinstance(text, str) else " ".join(text)
        out[code] = script_of(joined)
    return out
