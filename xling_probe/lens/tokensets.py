"""Token sets: which vocabulary tokens count as "the model is starting to write this word".

Definition (docs/science.md, "Token sets"; Wendler et al. 2024): the token set of a word is every vocabulary token
that is a prefix of the word, with and without the tokenizer's word-start marker (SentencePiece
``▁``, byte-level BPE ``Ġ``), plus the first byte-fallback token for scripts that a tokenizer
splits into bytes. P(language) at a layer = sum of the probabilities of the token set.

How the prefixes are spelled depends on the tokenizer's scheme:

- SentencePiece-style (``▁`` marker, Gemma, Llama 2, Mistral): prefixes are character prefixes
  ``w[:i]`` and ``▁ + w[:i]`` (i >= 1: the bare marker is not a prefix of the word). When the
  tokenizer writes the word with byte-fallback tokens (``<0xE8>`` ...), the token of the first
  UTF-8 byte is added.
- byte-level BPE (``Ġ`` marker, GPT-2, Llama 3, Qwen): tokens are strings of byte-characters, so
  prefixes are byte prefixes of the UTF-8 encoding written in byte-characters (a Chinese
  character is three byte-characters; its first one is the "first byte" token).
- other tokenizers: plain character prefixes.

Wendler et al. add the first-byte token for zh and ru always, whether or not the tokenizer spells
the word with byte tokens; ``first_byte="always"`` (``build_item_sets(...,
first_byte_languages=("zh", "ru"))``, the ``recipe="wendler"`` of ``language_drift``) does the
same. By default (``"auto"``) it is added only when the word is written with byte tokens, so on a
large vocabulary (Gemma 3) a Chinese word that is one token gets no byte token.

``single_token=True`` keeps only whole-word tokens (``w`` and marker + ``w``); a word that is not
one token then gets an empty set and is dropped with that reason.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import LensError
from .words import WordList

SP_MARKER = "▁"
BPE_MARKER = "Ġ"

# Drop reasons, spelled once so reports can be grouped.
REASON_MISSING = "no word in {lang}"
REASON_EMPTY = "empty token set in {lang}"
REASON_NOT_SINGLE = "not a single token in {lang}"
REASON_OVERLAP = "latent ({latent}) and target ({target}) token sets overlap"
REASON_SUBSTRING = "latent ({latent}) word is a substring of the target ({target}) word"


@lru_cache(maxsize=1)
def byte_chars() -> tuple[str, ...]:
    """The byte -> character table of byte-level BPE (GPT-2): printable bytes map to themselves,
    the others to code points from 256 on, so every byte is one visible character."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


@dataclass(frozen=True)
class TokenScheme:
    """How a tokenizer spells words: ``kind`` is 'sentencepiece', 'byte_bpe' or 'plain'."""

    kind: str
    marker: str | None
    byte_fallback: bool
    vocab: dict[str, int]

    def is_byte_token(self, token: str) -> bool:
        return len(token) == 6 and token.startswith("<0x") and token.endswith(">")


_SCHEMES: "weakref.WeakKeyDictionary[Any, TokenScheme]" = weakref.WeakKeyDictionary()


def _json_types(node: Any) -> set[str]:
    """Every ``"type"`` value in a tokenizer.json sub-tree (Sequence nodes included)."""
    out: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            out.add(node["type"])
        for v in node.values():
            out |= _json_types(v)
    elif isinstance(node, list):
        for v in node:
            out |= _json_types(v)
    return out


def token_scheme(tokenizer: Any) -> TokenScheme:
    """Detect the word-start marker and byte handling of ``tokenizer`` (cached per tokenizer)."""
    try:
        return _SCHEMES[tokenizer]
    except (KeyError, TypeError):
        pass
    vocab = dict(tokenizer.get_vocab())
    kind = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        types = _json_types({k: spec.get(k) for k in ("pre_tokenizer", "decoder")})
        text = json.dumps({k: spec.get(k) for k in ("normalizer", "pre_tokenizer", "decoder")}, ensure_ascii=False)
        if "ByteLevel" in types:
            kind = "byte_bpe"
        elif "Metaspace" in types or SP_MARKER in text:
            kind = "sentencepiece"
    if kind is None:  # slow tokenizers: count the marker spellings in the vocabulary
        n_sp = sum(t.startswith(SP_MARKER) for t in vocab)
        n_bpe = sum(t.startswith(BPE_MARKER) for t in vocab)
        if max(n_sp, n_bpe) >= 0.01 * len(vocab):
            kind = "sentencepiece" if n_sp >= n_bpe else "byte_bpe"
        else:
            kind = "plain"
    marker = {"sentencepiece": SP_MARKER, "byte_bpe": BPE_MARKER}.get(kind)
    fallback = kind != "byte_bpe" and all(f"<0x{b:02X}>" in vocab for b in range(256))
    scheme = TokenScheme(kind=kind, marker=marker, byte_fallback=fallback, vocab=vocab)
    try:
        _SCHEMES[tokenizer] = scheme
    except TypeError:
        pass
    return scheme


@dataclass(frozen=True)
class TokenSet:
    """The token set of one word in one language: vocabulary ids and their token strings."""

    word: str
    language: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    byte_fallback: bool = False

    def __len__(self) -> int:
        return len(self.ids)


def _spelled(scheme: TokenScheme, word: str) -> str:
    """``word`` in the tokenizer's token alphabet (byte-characters for byte-level BPE)."""
    if scheme.kind == "byte_bpe":
        table = byte_chars()
        return "".join(table[b] for b in word.encode("utf-8"))
    return word


def _candidates(scheme: TokenScheme, word: str, single_token: bool) -> list[str]:
    spelled = _spelled(scheme, word)
    stops = [len(spelled)] if single_token else range(1, len(spelled) + 1)
    out = []
    for i in stops:
        out.append(spelled[:i])
        if scheme.marker:
            out.append(scheme.marker + spelled[:i])
    return out


FIRST_BYTE = ("auto", "always")


def _first_byte_token(tokenizer: Any, scheme: TokenScheme, word: str, always: bool = False) -> str | None:
    """``<0xNN>`` of the word's first UTF-8 byte when the tokenizer writes the word with byte tokens
    (``always``: whenever the vocabulary has byte tokens). Byte-level BPE needs nothing here: the
    first byte-character is already a prefix candidate."""
    if not scheme.byte_fallback or not word:
        return None
    if always:
        return f"<0x{word.encode('utf-8')[0]:02X}>"
    for text in (word, " " + word):
        pieces = [p for p in tokenizer.tokenize(text) if p != scheme.marker]
        if pieces and scheme.is_byte_token(pieces[0]):
            return f"<0x{word.encode('utf-8')[0]:02X}>"
    return None


def token_set(tokenizer: Any, word: str | Sequence[str], *, language: str = "", single_token: bool = False,
              first_byte: str = "auto") -> TokenSet:
    """The token set of ``word`` (or the union over alternative spellings) in ``tokenizer``.

    Ids are sorted and unique. An empty set is a valid answer (the caller decides to drop).
    ``first_byte``: ``"auto"`` adds the first-byte token when the tokenizer writes the word with
    byte tokens, ``"always"`` whenever the vocabulary has byte tokens (Wendler et al. for zh/ru).
    """
    if first_byte not in FIRST_BYTE:
        raise LensError(f"first_byte must be one of {FIRST_BYTE}, got {first_byte!r}")
    alts = [word] if isinstance(word, str) else list(word)
    alts = [a for a in (w.strip() for w in alts) if a]
    if not alts:
        raise LensError(f"no word given for the token set{f' in {language}' if language else ''}")
    scheme = token_scheme(tokenizer)
    found: dict[int, str] = {}
    used_bytes = False
    for w in alts:
        for cand in _candidates(scheme, w, single_token):
            tid = scheme.vocab.get(cand)
            if tid is not None:
                found[tid] = cand
        if not single_token:
            first = _first_byte_token(tokenizer, scheme, w, always=first_byte == "always")
            if first is not None and first in scheme.vocab:
                found[scheme.vocab[first]] = first
                used_bytes = True
    ids = tuple(sorted(found))
    return TokenSet(word=alts[0], language=language, ids=ids, tokens=tuple(found[i] for i in ids), byte_fallback=used_bytes)


@dataclass(frozen=True)
class DropReport:
    """Items left out of an analysis and why: ``entries`` are (concept, language, reason)."""

    entries: tuple[tuple[str, str, str], ...] = ()
    n_total: int = 0

    def __len__(self) -> int:
        return len({c for c, _, _ in self.entries})

    @property
    def concepts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for c, _, _ in self.entries))

    def counts(self) -> dict[str, int]:
        """Number of dropped concepts per reason (a concept may have several reasons)."""
        out: dict[str, int] = {}
        for _, _, reason in self.entries:
            out[reason] = out.get(reason, 0) + 1
        return out

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(list(self.entries), columns=["concept", "language", "reason"])

    def __str__(self) -> str:
        if not self.entries:
            return f"no items dropped (of {self.n_total})"
        parts = "; ".join(f"{reason}: {n}" for reason, n in self.counts().items())
        return f"dropped {len(self)} of {self.n_total} items ({parts})"


@dataclass(frozen=True)
class ItemSets:
    """Token sets of the kept items: ``sets[lang][k]`` belongs to ``words.concepts[kept[k]]``."""

    kept: tuple[int, ...]
    sets: dict[str, tuple[TokenSet, ...]]
    dropped: DropReport


def build_item_sets(
    tokenizer: Any,
    words: WordList,
    languages: Sequence[str],
    *,
    latent: str | None = None,
    target: str | None = None,
    single_token: bool = False,
    drop_overlap: bool = True,
    drop_substring: bool = True,
    first_byte_languages: Sequence[str] = (),
) -> ItemSets:
    """Token sets of every concept in ``languages``, with the filters of Wendler et al.

    Drop items whose English and target sets overlap, or where the English word is a substring of
    the target word; report how many were dropped (English = the ``latent`` language here).

    An item is dropped, with its reason, when a language has no word, when a token set is empty
    (or, with ``single_token``, when a word is not one token), when the ``latent`` and ``target``
    sets share a token (``drop_overlap``), or when the latent word is a substring of the target
    word, case-insensitive (``drop_substring``). The two filters are skipped when latent ==
    target: they exist to tell the two languages apart.

    ``first_byte_languages``: languages (e.g. ``("zh", "ru")``, matched on the base code, so
    ``zh-Hans`` counts as zh) whose token sets always get the first-byte token
    (``token_set(..., first_byte="always")``), as Wendler et al. do.
    """
    always_bytes = {str(lang).split("-")[0].lower() for lang in first_byte_languages}
    codes = list(dict.fromkeys(words.resolve_language(lang) for lang in languages))
    lat = words.resolve_language(latent) if latent is not None else None
    tgt = words.resolve_language(target) if target is not None else None
    for extra in (lat, tgt):
        if extra is not None and extra not in codes:
            codes.append(extra)
    entries: list[tuple[str, str, str]] = []
    kept: list[int] = []
    per_lang: dict[str, list[TokenSet]] = {c: [] for c in codes}
    empty_reason = REASON_NOT_SINGLE if single_token else REASON_EMPTY
    for k, concept in enumerate(words.concepts):
        reasons: list[tuple[str, str]] = []
        row: dict[str, TokenSet] = {}
        for code in codes:
            alts = words.words[code][k]
            if not alts:
                reasons.append((code, REASON_MISSING.format(lang=code)))
                continue
            ts = token_set(tokenizer, alts, language=code, single_token=single_token,
                           first_byte="always" if code.split("-")[0].lower() in always_bytes else "auto")
            if not ts.ids:
                reasons.append((code, empty_reason.format(lang=code)))
            row[code] = ts
        if lat is not None and tgt is not None and lat != tgt and lat in row and tgt in row:
            if drop_overlap and set(row[lat].ids) & set(row[tgt].ids):
                reasons.append((tgt, REASON_OVERLAP.format(latent=lat, target=tgt)))
            if drop_substring and _substring(words.words[lat][k], words.words[tgt][k]):
                reasons.append((tgt, REASON_SUBSTRING.format(latent=lat, target=tgt)))
        if reasons:
            entries.extend((concept, lang, reason) for lang, reason in reasons)
            continue
        kept.append(k)
        for code in codes:
            per_lang[code].append(row[code])
    return ItemSets(
        kept=tuple(kept),
        sets={c: tuple(v) for c, v in per_lang.items()},
        dropped=DropReport(entries=tuple(entries), n_total=len(words)),
    )


def _substring(latent_alts: Sequence[str], target_alts: Sequence[str]) -> bool:
    return any(a.lower() in b.lower() for a in latent_alts for b in target_alts)
