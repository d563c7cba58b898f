"""Language family, script and region of a language code, for grouping and filtering many languages.

Families come from the bundled ``families.tsv`` (ISO 639-3 -> Glottolog top-level family name,
written by hand for the 402 UDHR languages; its header says how it was made and where it is
approximate). Scripts and regions come from langcodes (CLDR likely subtags: ``fr`` -> ``Latn``,
``FR``). Unknown languages read as :data:`UNCLASSIFIED`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

UNCLASSIFIED = "unclassified"
FAMILIES_TSV = Path(__file__).with_name("families.tsv")

__all__ = ["FAMILIES_TSV", "UNCLASSIFIED", "language_family", "language_region", "language_script",
           "load_families"]


@lru_cache(maxsize=1)
def load_families() -> dict[str, str]:
    """ISO 639-3 code -> family name, as in ``families.tsv`` (comment lines start with ``#``)."""
    out: dict[str, str] = {}
    lines = [ln for ln in FAMILIES_TSV.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    for line in lines[1:]:  # the first line is the column header
        code, family, *_ = line.split("\t")
        out[code] = family
    return out


def _alpha3(code: str) -> list[str]:
    """Candidate ISO 639-3 keys of ``code``: its language subtag as written and as langcodes' alpha-3."""
    import langcodes

    base = code.replace("_", "-").split("-")[0].lower()
    keys = [base]
    try:
        keys.append(langcodes.Language.get(base).to_alpha3())
    except (LookupError, ValueError):
        pass
    return keys


@lru_cache(maxsize=4096)
def language_family(code: str) -> str:
    """The family of ``code`` (``fr``, ``fra``, ``zh-Hant``, ``cmn_hans`` ...), :data:`UNCLASSIFIED` if unknown."""
    table = load_families()
    return next((table[k] for k in _alpha3(code) if k in table), UNCLASSIFIED)


def _likely(code: str, part: str, unknown: str) -> str:
    """A subtag of ``code``: the written one, else CLDR's likely one (langcodes ``maximize``), else ``unknown``."""
    import langcodes

    try:
        return getattr(langcodes.Language.get(code.replace("_", "-")).maximize(), part) or unknown
    except (LookupError, ValueError):
        return unknown


@lru_cache(maxsize=4096)
def language_script(code: str) -> str:
    """The ISO 15924 script of ``code`` (written or CLDR's likely one: ``ru`` -> ``Cyrl``), else ``"Zyyy"``."""
    return _likely(code, "script", "Zyyy")


@lru_cache(maxsize=4096)
def language_region(code: str) -> str:
    """The region of ``code`` (written or CLDR's likely one: ``fr`` -> ``FR``), else ``"ZZ"``."""
    return _likely(code, "territory", "ZZ")
