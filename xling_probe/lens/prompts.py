"""Prompt builders for the logit lens: translation, repetition, cloze and free text.

Translation (Wendler et al. 2024) writes k example pairs with native language names, then the
query pair with the target word left open; the lens reads the last position, where the model is
about to write the target word::

    Français: "fleur" - Deutsch: "Blume"
    Français: "montagne" - Deutsch: "Berg"
    Français: "livre" - Deutsch: "

Repetition is the same with source = target (``Deutsch: "Blume" - Deutsch: "Blume"``). Cloze
uses sentences with a blank ``___`` from a ``cloze_<lang>`` column of the word list, one example
per line: ``Die ___ blüht im Garten. → "Blume"``. Free prompts are any text. The shots are drawn
at random from the other items, seeded per item by (seed, item index), so an item's prompt does
not change when other items are dropped or added.

``shots`` counts the demonstrations; Wendler et al.'s ``k`` counts the query too (their k = 5 is
``shots=4``). By default demonstrations come from every row that has the words the task needs;
``demonstrations=`` restricts them to given rows (Wendler et al. draw them only from the items
that passed the filters; docs/science.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import LanguageCodeError, LensError
from ..data.languages import language_name, normalize_code
from .words import CLOZE_PREFIX, WordList

TASKS = ("translation", "repetition", "cloze")
BLANK = "___"
CLOZE_ARROW = "→"


@dataclass(frozen=True)
class Prompt:
    """One prompt and what it asks: ``expected`` is the word the model should write next."""

    text: str
    task: str
    index: int | None = None
    concept: str | None = None
    source: str | None = None
    target: str | None = None
    expected: str | None = None
    shots: tuple[str, ...] = field(default_factory=tuple)


def translation_pair(source: str, source_word: str, target: str, target_word: str | None = None) -> str:
    """``Français: "fleur" - Deutsch: "Blume"``; an open pair ends after the opening quote."""
    left = f'{language_name(source, native=True)}: "{source_word}" - {language_name(target, native=True)}: "'
    return left if target_word is None else f'{left}{target_word}"'


def cloze_line(sentence: str, word: str | None = None) -> str:
    """``Die ___ blüht im Garten. → "Blume"``; an open line ends after the opening quote."""
    left = f'{sentence} {CLOZE_ARROW} "'
    return left if word is None else f'{left}{word}"'


def free_prompt(text: str) -> Prompt:
    """A prompt of free text (for the per-position table and language shares)."""
    if not isinstance(text, str) or not text.strip():
        raise LensError("a free prompt needs non-empty text")
    return Prompt(text=text, task="free")


def cloze_column(words: WordList, language: str) -> tuple[str, ...]:
    """The ``cloze_<language>`` column of the word list; :class:`LensError` when there is none."""
    code = normalize_code(language)
    for name, col in words.extras.items():
        if name.lower().startswith(CLOZE_PREFIX):
            try:
                if normalize_code(name[len(CLOZE_PREFIX):]) == code:
                    return col
            except LanguageCodeError:
                continue
    raise LensError(
        f"cloze prompts need a column 'cloze_{code}' in the word list with one sentence per concept in which "
        f"'{BLANK}' marks the word; the list has {sorted(words.extras) or 'no extra columns'}"
    )


def build_prompts(
    words: WordList,
    *,
    task: str = "translation",
    source: str | None = None,
    target: str,
    shots: int = 5,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    demonstrations: Sequence[int] | None = None,
) -> list[Prompt]:
    """One prompt per item ``indices`` (default: every row) of ``words``.

    Shots (demonstrations, not counting the query) come from the rows that have what the task
    needs (both words, or the target word and a cloze sentence), never the item itself; with
    ``demonstrations`` (row indices) only from those rows. Raises :class:`LensError` when
    ``shots`` is larger than the number of such other rows, or when the query item itself lacks
    a word.
    """
    if task not in TASKS:
        raise LensError(f"unknown task {task!r}; use one of {', '.join(TASKS)} (or free_prompt(text))")
    if not isinstance(shots, (int, np.integer)) or shots < 0:
        raise LensError(f"shots must be an integer >= 0, got {shots!r}")
    tgt = words.resolve_language(target)
    if task == "translation":
        if source is None:
            raise LensError("translation prompts need source= (the language of the given word)")
        src = words.resolve_language(source)
    else:
        src = tgt
    cloze = cloze_column(words, tgt) if task == "cloze" else None

    def usable(k: int) -> bool:
        if cloze is not None:
            return bool(words.words[tgt][k]) and BLANK in cloze[k]
        return bool(words.words[src][k]) and bool(words.words[tgt][k])

    allowed = None if demonstrations is None else {int(k) for k in demonstrations}
    pool = [k for k in range(len(words)) if usable(k) and (allowed is None or k in allowed)]
    items = list(range(len(words))) if indices is None else [int(k) for k in indices]
    bad = [words.concepts[k] for k in items if not usable(k)]
    if bad:
        need = f"a {tgt} word and a cloze sentence with {BLANK}" if cloze is not None else f"words in {src} and {tgt}"
        raise LensError(f"{len(bad)} item(s) lack {need}: {', '.join(bad[:10])}")
    # the query is never its own demonstration: an item inside the pool has len(pool) - 1 others
    in_pool = set(pool)
    room = len(pool) - 1 if any(k in in_pool for k in items) else len(pool)
    if shots > room:
        raise LensError(
            f"{shots} shots asked, but only {room} other items have "
            f"{'cloze sentences' if cloze is not None else f'words in {src} and {tgt}'}"
            f"{'' if allowed is None else ' among the allowed demonstrations'}; use shots <= {max(0, room)} "
            "or a longer word list"
        )
    out = []
    for k in items:
        rng = np.random.default_rng([int(seed), k])
        others = [j for j in pool if j != k]
        chosen = [others[j] for j in rng.choice(len(others), size=shots, replace=False)] if shots else []
        if cloze is not None:
            lines = [cloze_line(cloze[j], words.words[tgt][j][0]) for j in chosen]
            lines.append(cloze_line(cloze[k]))
        else:
            lines = [translation_pair(src, words.words[src][j][0], tgt, words.words[tgt][j][0]) for j in chosen]
            lines.append(translation_pair(src, words.words[src][k][0], tgt))
        out.append(Prompt(
            text="\n".join(lines), task=task, index=k, concept=words.concepts[k], source=src, target=tgt,
            expected=words.words[tgt][k][0], shots=tuple(words.concepts[j] for j in chosen),
        ))
    return out
