"""Encoder-decoder inputs: language tags from corpus codes, source batches and forced decoder prefixes.

Translation models name languages with tokens: M2M100 ``__fr__``, NLLB ``fra_Latn``, mBART-50
``fr_XX``. :func:`language_tag` finds the tag of a corpus language code among the tokenizer's
tags (the canonical codes are compared, so ``fr``, ``fra`` and ``fra_Latn`` all find ``__fr__``);
T5/mT5 and Marian have no tags (``None``). A model with tags and a language it has no tag for is an
:class:`~xling_probe.errors.ExtractionError` that lists the tags it has.

- The **encoder** input of a sentence is what the tokenizer makes of it with ``src_lang`` set to
  its language (M2M100/NLLB/mBART-50 put the tag first).
- The **decoder** input (``stack="decoder"``) starts with the model's ``decoder_start_token_id``,
  then the target-language tag where the family forces one (``forced_bos_token_id`` in
  generation), then, with ``decoder_input="translation"``, the sentence in the target language
  (teacher forcing; no EOS), or nothing more with ``decoder_input="tag"``. The start token and the
  tag are special tokens: mean pooling leaves them out unless nothing else is there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from ..errors import ExtractionError
from ..models.arch import decoder_start
from .runners import Tokenized, tokenize

DecoderInput = Literal["translation", "tag"]
DECODER_INPUTS = ("translation", "tag")
_TAG_FORMS = (re.compile(r"^__([a-z]{2,3})__$"), re.compile(r"^([a-z]{3}_[A-Z][a-z]{3})$"),
              re.compile(r"^([a-z]{2}_[A-Z]{2})$"))


def _tag_code(tag: str) -> tuple[str, str] | None:
    """(canonical code, base language) of a tag such as ``__fr__``, ``fra_Latn`` or ``zh_CN``."""
    from ..data.languages import base_language, normalize_code

    for form in _TAG_FORMS:
        m = form.match(tag)
        if m:
            text = m.group(1)
            if re.match(r"^[a-z]{2}_[A-Z]{2}$", text):  # mBART: the region part is often XX: language only
                text = text.split("_")[0]
            try:
                code = normalize_code(text)
            except Exception:  # noqa: BLE001 - a tag that is no language code is not a language tag
                return None
            return code, base_language(code)
    return None


def tokenizer_tags(tokenizer: Any) -> dict[str, tuple[str, str]]:
    """Every language tag of ``tokenizer`` -> (canonical code, base language); empty for tagless families."""
    return dict(_tags(id(tokenizer), _tag_candidates(tokenizer)))


def _tag_candidates(tokenizer: Any) -> tuple[str, ...]:
    names: list[str] = []
    mapping = getattr(tokenizer, "lang_code_to_token", None) or getattr(tokenizer, "lang_token_to_id", None)
    if isinstance(mapping, dict):
        names += [v if isinstance(v, str) and v.startswith("__") else k for k, v in mapping.items()]
    names += list(getattr(tokenizer, "additional_special_tokens", None) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    names += [str(t) for t in added.values()]
    return tuple(dict.fromkeys(n for n in names if isinstance(n, str)))


@lru_cache(maxsize=32)
def _tags(_key: int, names: tuple[str, ...]) -> tuple[tuple[str, tuple[str, str]], ...]:
    out = []
    for name in names:
        code = _tag_code(name)
        if code is not None:
            out.append((name, code))
    return tuple(out)


def language_tag(tokenizer: Any, language: str) -> str | None:
    """The tokenizer's tag for corpus language ``language``; ``None`` when the family has no tags."""
    from ..data.languages import base_language, normalize_code

    tags = tokenizer_tags(tokenizer)
    if not tags:
        return None
    code = normalize_code(language)
    exact = [t for t, (c, _) in tags.items() if c == code]
    if len(exact) == 1:
        return exact[0]
    base = base_language(code)
    same = exact or [t for t, (c, b) in tags.items() if b == base]
    plain = [t for t in same if tags[t][0] == base]
    if len(same) == 1:
        return same[0]
    if len(plain) == 1:
        return plain[0]
    likely = [t for t in same if _script(tags[t][0]) == _script(code, likely=True)]
    if len(likely) == 1:  # 'zh' -> zho_Hans: the script the language is most often written in
        return likely[0]
    if same:
        raise ExtractionError(f"language {language!r} matches several tags of this tokenizer ({', '.join(sorted(same))}); "
                              "use the more specific code in the corpus (e.g. 'zho_Hant')")
    shown = ", ".join(sorted(tags)[:12]) + (" ..." if len(tags) > 12 else "")
    raise ExtractionError(f"this model's tokenizer has no language tag for {language!r} ({len(tags)} tags: {shown})")


def _script(code: str, *, likely: bool = False) -> str | None:
    import langcodes

    lang = langcodes.Language.get(code)
    return (lang.maximize() if likely else lang).script


def _tag_id(tokenizer: Any, tag: str) -> int:
    return int(tokenizer.convert_tokens_to_ids(tag))


def tokenize_source(tokenizer: Any, texts: Sequence[str], language: str | None, max_length: int) -> Tokenized:
    """Encoder-side tokens of ``texts`` with the source-language tag of ``language`` (where the family has tags)."""
    tag = language_tag(tokenizer, language) if language is not None else None
    if tag is None:
        return tokenize(tokenizer, texts, max_length)
    previous = getattr(tokenizer, "src_lang", None)
    bare = tag.strip("_") if tag.startswith("__") else tag  # M2M100 takes the bare code, NLLB/mBART the tag
    try:
        tokenizer.src_lang = bare
        out = tokenize(tokenizer, texts, max_length)
    finally:
        if previous is not None:
            tokenizer.src_lang = previous
    want = _tag_id(tokenizer, tag)
    if out.ids and want not in out.ids[0]:
        raise ExtractionError(f"setting src_lang={bare!r} did not put the tag {tag!r} into the tokens; "
                              f"this tokenizer ({type(tokenizer).__name__}) is not supported for tagged input")
    return out


def tokenize_target(tokenizer: Any, model: Any, texts: Sequence[str] | None, language: str | None, n: int,
                    mode: str, max_length: int) -> Tokenized:
    """Decoder inputs: start token, the target tag (where the family has one), then the sentence (``translation``)."""
    if mode not in DECODER_INPUTS:
        raise ExtractionError(f"decoder_input must be one of {', '.join(DECODER_INPUTS)}, got {mode!r}")
    prefix = [decoder_start(model)]
    tag = language_tag(tokenizer, language) if language is not None else None
    if tag is not None:
        prefix.append(_tag_id(tokenizer, tag))
    if mode == "tag":
        return Tokenized(ids=[list(prefix) for _ in range(n)], special=[[1] * len(prefix) for _ in range(n)],
                         n_truncated=0)
    if texts is None or len(texts) != n:
        raise ExtractionError("decoder_input='translation' needs the target sentences")
    body = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    room = max(1, max_length - len(prefix))
    ids = [prefix + list(row[:room]) for row in body]
    special = [[1] * len(prefix) + [0] * min(len(row), room) for row in body]
    return Tokenized(ids=ids, special=special, n_truncated=sum(len(row) > room for row in body))
