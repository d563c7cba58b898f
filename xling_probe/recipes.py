"""Recipes: one argument that reproduces a published pipeline exactly (docs/science.md, "Recipes").

``extract(model, corpus, recipe="mexa")`` (Kargaran et al., MEXA):

- pooling ``"weighted_mean"`` with the special tokens included (the BOS state gets position
  weight 1): e = sum_t t h_t / sum_t t over the sentence's real tokens t = 1..T;
- the states of HF ``output_hidden_states``: 0 = embedding output, l = output of block l - 1,
  and the LAST entry after the model's own final norm (Gemma/Llama-style decoders, GPT-2's
  ``ln_f``), applied per token before pooling. Our default stores the raw residual stream
  everywhere (no final norm), which differs from MEXA at the last layer only.

MEXA's score then is ``similarity(acts, metrics=["mexa"], pairs="pivot:en")`` and, per pair,
the mean and the max over layers: ``result.peak_layers()[["lang_a", "lang_b",
"mean_over_layers", "max_over_layers"]]``.

``language_drift(model, words, ..., recipe="wendler")`` (Wendler et al. 2024) differs from the
defaults in three ways:

1. their ``k`` counts the query: k = 5 is 4 demonstrations + the query (our ``shots`` counts the
   demonstrations only, default 5); the recipe writes 4;
2. the token sets of zh and ru always include the token of the word's first UTF-8 byte (ours add
   it only when the tokenizer spells the word with byte tokens);
3. demonstrations are drawn only from items that passed the filters (ours: from every row that
   has both words).

Arguments that contradict a recipe raise :class:`RecipeError`; arguments a recipe leaves free
(``layers``, ``batch_size``, ``seed``...) are used as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ExtractionError, LensError


class RecipeError(ExtractionError, LensError):
    """A recipe name is unknown, or an explicit argument contradicts what the recipe fixes (raised by
    ``extract`` and ``language_drift``, so it is also their ExtractionError / LensError)."""


@dataclass(frozen=True)
class Recipe:
    """What a recipe fixes: ``settings`` (argument name -> value) and a one-line ``source``."""

    name: str
    source: str
    settings: dict[str, Any] = field(default_factory=dict)


EXTRACT_RECIPES: dict[str, Recipe] = {
    "mexa": Recipe(
        "mexa", "Kargaran et al., MEXA: position-weighted mean with BOS over HF hidden_states (last = final norm)",
        {"pooling": "weighted_mean", "include_special": True, "final_norm_last": True},
    ),
}
#: Wendler et al. write k = 5 for 4 demonstrations + the query.
WENDLER_K = 5
DRIFT_RECIPES: dict[str, Recipe] = {
    "wendler": Recipe(
        "wendler", "Wendler et al. 2024, 'Do Llamas work in English?': k=5 (4 demonstrations + query), "
        "first-byte tokens for zh/ru, demonstrations from kept items",
        {"shots": WENDLER_K - 1, "first_byte_languages": ("zh", "ru"), "demonstrations_from": "kept",
         "single_token": False, "drop_overlap": True, "drop_substring": True},
    ),
}


def resolve(recipe: str | None, table: dict[str, Recipe], given: dict[str, Any],
            defaults: dict[str, Any]) -> tuple[Recipe | None, dict[str, Any]]:
    """The settings to use: ``given`` (None = not passed) filled from the recipe, then ``defaults``.

    Raises :class:`RecipeError` for an unknown recipe or a given value that differs from the
    recipe's (naming both, and what to do).
    """
    if recipe is None:
        return None, {k: (defaults[k] if v is None else v) for k, v in given.items()}
    if not isinstance(recipe, str) or recipe.lower() not in table:
        raise RecipeError(f"unknown recipe {recipe!r}; choose one of {sorted(table)} or leave recipe=None")
    rec = table[recipe.lower()]
    out = {}
    for name, value in given.items():
        fixed = rec.settings.get(name, defaults.get(name))
        if value is not None and name in rec.settings and value != fixed:
            raise RecipeError(
                f"recipe={rec.name!r} sets {name}={fixed!r}, but {name}={value!r} was given; drop {name}= to "
                f"reproduce {rec.name}, or drop recipe= to choose it yourself")
        out[name] = fixed if value is None else value
    return rec, out
