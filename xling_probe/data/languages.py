"""Language codes: one canonical code per language, whatever spelling the data uses.

``fr``, ``fra`` and ``fra_Latn`` all resolve to ``fr``; ``cmn_hans`` to ``zh-Hans``; ``arb`` to
``ar``; ``deu_1996`` to ``de-1996`` and ``pes_1`` to ``fa-x-1`` (variants stay distinct). The
canonical form is a BCP-47 tag built with :mod:`langcodes` (macrolanguages folded, a script
dropped when it is the language's default: IANA Suppress-Script or CLDR likely subtags, except
for Chinese, whose ``Hans``/``Hant`` stay); the corpus conventions and the
few CLDR aliases that are not followed are in :mod:`xling_probe.data.conventions`. The user's original
label is kept for display by the objects that hold languages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from .conventions import (
    AUTO,
    DEFAULT_SCRIPT_EXTRA,
    KEEP_DISTINCT,
    KEEP_SCRIPT,
    NO_MACRO,
    SUBTAG_ALIASES,
    VARIANT_NAMES,
    CodeReading,
    check_conventions,
    lookup,
    note_for,
)
from ..errors import LanguageCodeError

_LANG_DIGITS = re.compile(r"^([A-Za-z]{2,3})(\d{1,3})$")  # UDHR's fuv2, gsw1, ven2
_HINT = "Use an ISO 639 code such as 'fr', 'fra' or 'fra_Latn' (FLORES style)."


def normalize_code(code: str, conventions: str | None = AUTO) -> str:
    """Canonical BCP-47 code of ``code``; raises :class:`LanguageCodeError` when unknown.

    The one entry point for reading a language code. ``_`` is read as ``-``; the subtags after
    the language are read by their form: 4 letters = ISO 15924 script (``Latn``), 2 letters or 3
    digits = region (``PT``, ``419``), a registered variant stays a variant (``1996``,
    ``monoton``), anything else becomes a private-use subtag (``pes_1`` -> ``fa-x-1``,
    ``cmn_hans_beijing`` -> ``zh-Hans-x-beijing``), so that two variants of a language never
    share a code. ``conventions`` picks corpus convention tables (see
    :mod:`xling_probe.data.conventions`): ``"auto"`` (default) applies the entries whose literal
    reading is never meant (``es-LA`` -> ``es-419``); ``"tico19"``, ``"flores"``, ``"udhr"`` add
    that corpus's readings (TICO-19's ``zh`` -> ``zh-Hans``); ``None`` reads every code literally.
    :func:`read_code` returns the same code with its name and the note of any table entry used.
    """
    return read_code(code, conventions).code


@lru_cache(maxsize=8192)
def read_code(code: str, conventions: str | None = AUTO) -> CodeReading:
    """How ``code`` is read: a :class:`CodeReading` (label, canonical code, English name, note)."""
    if not isinstance(code, str) or not code.strip():
        raise LanguageCodeError(f"language code must be a non-empty string, got {code!r}")
    conventions = check_conventions(conventions)
    label = code.strip()
    found = lookup(label, conventions)
    target = found[0].code if found else label
    if found is None and re.search(r"[-_]", label):
        head, rest = re.split(r"[-_]", label, maxsplit=1)
        sub = lookup(head, conventions)
        if sub is not None and sub[0].subtag:
            found, target = sub, f"{sub[0].code}-{rest}"
    canonical = _canonical(target, label)
    if found is None:
        return CodeReading(label, canonical, _name(canonical))
    reading, conv = found
    name = reading.name if reading.name and target == reading.code else _name(canonical)
    return CodeReading(label, canonical, name, note_for(label, canonical, reading, conv), conv.key)


def _canonical(tag: str, label: str) -> str:
    """The canonical tag of ``tag`` (``label`` is what the user wrote, for the error)."""
    import langcodes

    parts = tag.replace("_", "-").split("-")
    if not all(parts):
        raise LanguageCodeError(f"unknown language code {label!r} (empty subtag). {_HINT}")
    first, rest = parts[0], parts[1:]
    m = _LANG_DIGITS.match(first)
    if m:
        first, rest = m.group(1), [m.group(2), *rest]
    if not first.isalpha() or not 2 <= len(first) <= 3:
        raise LanguageCodeError(f"unknown language code {label!r}. {_HINT}")
    lang, script, region = _language_subtag(first.lower(), label)
    variants: list[str] = []
    private: list[str] = []
    for k, sub in enumerate(rest):
        low = sub.lower()
        if private or low == "x":
            if low != "x":
                private.append(low[:8])
            continue
        kind, value = SUBTAG_ALIASES.get(low, ("", ""))
        if kind == "script":
            script = value
        elif kind == "variant":
            variants.append(value)
        elif kind == "private":
            private.append(value)
        elif k == 0 and len(low) == 3 and low.isalpha() and _extlang(first, low) is not None:
            lang, script, region = _language_subtag(_extlang(first, low), label)
        elif len(low) == 4 and low.isalpha() and low.title() in _scripts():
            script = low.title()
        elif (len(low) == 2 and low.isalpha()) or (len(low) == 3 and low.isdigit()):
            region = _region(low.upper(), label)
        elif langcodes.Language.make(language=lang, variants=[low]).is_valid():
            variants.append(low)
        elif low.isalnum():
            private.append(low[:8])
        else:
            raise LanguageCodeError(f"cannot read subtag {sub!r} of language code {label!r}. {_HINT}")
    result = langcodes.Language.make(
        language=lang, script=script, territory=region, variants=variants or None,
        private="x-" + "-".join(private) if private else None,
    )
    return _drop_default_script(result.simplify_script()).to_tag()


def _drop_default_script(lang: Any) -> Any:
    """Drop the script when CLDR's likely subtags make it the language's default (``ckb-Arab`` ->
    ``ckb``, ``prs-Arab`` -> ``prs``), so FLORES+ and TICO-19 spellings of a language agree.

    Chinese keeps its script (``zh-Hans`` / ``zh-Hant`` are what corpora compare).
    """
    if not lang.script or lang.language in KEEP_SCRIPT:
        return lang
    if _likely_script(lang.language) == lang.script or DEFAULT_SCRIPT_EXTRA.get(lang.language) == lang.script:
        return lang.update_dict({"script": None})
    return lang


@lru_cache(maxsize=4096)
def _likely_script(language: str) -> str | None:
    """CLDR's likely script of a language, else of its CLDR alias (prs -> fa) or macrolanguage (pbt -> ps)."""
    import langcodes
    from langcodes.data_dicts import LIKELY_SUBTAGS, MACROLANGUAGES

    candidates = [language, langcodes.Language.get(language, normalize=True).language]
    candidates.append(MACROLANGUAGES.get(language))  # individual language -> its macrolanguage
    for cand in candidates:
        likely = LIKELY_SUBTAGS.get(cand or "", "").split("-")
        if len(likely) > 1:
            return likely[1]
    return None


def _language_subtag(sub: str, label: str) -> tuple[str, str | None, str | None]:
    """(language, implied script, implied region) of a language subtag, after aliases and macro folding."""
    import langcodes

    if sub in KEEP_DISTINCT:
        return KEEP_DISTINCT[sub], None, None
    try:
        std = langcodes.Language.get(sub, normalize=True)
    except (ValueError, LookupError):
        raise LanguageCodeError(f"unknown language code {label!r}. {_HINT}") from None
    lang = std.language
    if lang and lang not in NO_MACRO and sub not in NO_MACRO:
        lang = langcodes.Language.make(language=lang).prefer_macrolanguage().language
    plain = langcodes.Language.make(language=lang)
    if not lang or lang == "und" or not plain.is_valid() or plain.language_name().startswith("Unknown language"):
        raise LanguageCodeError(f"unknown language code {label!r}. {_HINT}")
    return lang, std.script, std.territory


def _extlang(first: str, sub: str) -> str | None:
    """``sub`` when ``first-sub`` is an extended-language tag (``zh-cmn``), else ``None``."""
    from langcodes.data_dicts import MACROLANGUAGES

    return sub if MACROLANGUAGES.get(sub) == first.lower() else None


@lru_cache(maxsize=1)
def _scripts() -> frozenset[str]:
    from langcodes.data_dicts import ALL_SCRIPTS

    return frozenset(ALL_SCRIPTS)


def _region(region: str, label: str) -> str:
    import langcodes
    from langcodes.data_dicts import TERRITORY_REPLACEMENTS

    region = TERRITORY_REPLACEMENTS.get(region, region)
    try:  # CLDR aliases that the table above does not hold (UK -> GB)
        region = langcodes.Language.get(f"und-{region}", normalize=True).territory or region
    except (ValueError, LookupError):
        pass
    if not langcodes.Language.make(language="en", territory=region).is_valid():
        raise LanguageCodeError(f"unknown region {region!r} in language code {label!r}. {_HINT}")
    return region


def language_name(code: str, *, native: bool = False) -> str:
    """English (or native, ``native=True``) name of a language: ``fr`` -> ``French`` / ``français``.

    Variants are named after the base: ``de-1996`` -> ``German (orthography of 1996)``,
    ``fa-x-1`` -> ``Persian (variant 1)``. Native names leave variants out (they are written in
    prompts).
    """
    return _name(normalize_code(code), native=native)


def _name(canonical: str, *, native: bool = False) -> str:
    """The name of a canonical code (no normalisation: langcodes would alias ``tl`` to ``fil``)."""
    import langcodes

    lang = langcodes.Language.get(canonical, normalize=False)
    base = langcodes.Language.make(language=lang.language, script=lang.script, territory=lang.territory)
    if native:
        name = base.autonym()
        return name[:1].upper() + name[1:]
    name = base.display_name()
    extra = [VARIANT_NAMES.get(v, v) for v in (lang.variants or [])]
    if lang.private:
        extra += [f"variant {p}" for p in lang.private.split("-")[1:]]
    if not extra:
        return name
    if name.endswith(")"):
        return f"{name[:-1]}, {', '.join(extra)})"
    return f"{name} ({', '.join(extra)})"


def base_language(code: str) -> str:
    """The language subtag of a canonical code: ``zh-Hant`` -> ``zh``, ``pt-PT`` -> ``pt``."""
    return normalize_code(code).split("-")[0]


def is_language_code(code: str) -> bool:
    """True when :func:`normalize_code` reads ``code`` as a language code (no exception)."""
    try:
        normalize_code(code)
    except LanguageCodeError:
        return False
    return True


def normalize_codes(codes: Iterable[str], conventions: str | None = AUTO) -> list[str]:
    """Normalise many codes at once, reporting every unknown code in one error."""
    out, bad = [], []
    for code in codes:
        try:
            out.append(normalize_code(code, conventions))
        except LanguageCodeError:
            bad.append(code)
    if bad:
        raise LanguageCodeError(
            f"unknown language code(s): {', '.join(map(repr, bad))}. Use ISO 639 codes such as "
            "'fr', 'fra' or 'fra_Latn'."
        )
    return out
