"""Logit lens and language drift: which language each layer decodes to.

One call reproduces the latent-language figure of Wendler et al. (2024)::

    from xling_probe import load_model
    from xling_probe.lens import language_drift

    result = language_drift(load_model(), source="fr", target="zh")   # bundled word list
    print(result.format_curves())            # per-layer P(zh), P(en), P(fr), entropy
    result.to_dataframe()                    # tidy means with Gaussian and bootstrap 95% intervals

Modules: :mod:`.core` (the lens, chunked statistics), :mod:`.words` (word lists),
:mod:`.tokensets` (token sets and filters), :mod:`.prompts` (prompt builders), :mod:`.drift`
(drift statistics), :mod:`.intervals` (bootstrap and Gaussian intervals), :mod:`.shares` (script/language shares of free
text), :mod:`.positions` (layer x position table), :mod:`.prompt` (:func:`prompt_lens`: the lens of one
prompt, its table and per-layer P(token set) curves, as the logit-lens widget shows them), :mod:`.cache`
(the checksummed on-disk cache of drift results and position tables, keyed like the activation cache),
:mod:`.tuned` (a tuned lens trained on multilingual text: :func:`train_tuned_lens`, :func:`compare_lenses`).
"""

from .core import Lens, LensStats, check_final_logits, check_lens_model, lens_stats
from .drift import METRICS, DriftResult, language_drift
from .positions import TABLE_FIELDS, PositionTable, lens_table
from .prompt import PromptLens, prompt_lens
from .prompts import Prompt, build_prompts, cloze_line, free_prompt, translation_pair
from .shares import SharesResult, language_shares, script_of
from .intervals import mean_intervals
from .tokensets import DropReport, ItemSets, TokenScheme, TokenSet, build_item_sets, token_scheme, token_set
from .words import WordList, bundled_words_path, load_words
from .tuned import LENS_KINDS, TunedLens
from .tuned_eval import LensComparison, compare_lenses
from .tuned_fit import train_tuned_lens

__all__ = [
    "METRICS",
    "DriftResult",
    "DropReport",
    "LENS_KINDS",
    "LensComparison",
    "TunedLens",
    "compare_lenses",
    "train_tuned_lens",
    "ItemSets",
    "Lens",
    "LensStats",
    "PositionTable",
    "Prompt",
    "PromptLens",
    "SharesResult",
    "TABLE_FIELDS",
    "TokenScheme",
    "TokenSet",
    "WordList",
    "build_item_sets",
    "build_prompts",
    "bundled_words_path",
    "check_final_logits",
    "check_lens_model",
    "cloze_line",
    "free_prompt",
    "language_drift",
    "language_shares",
    "lens_stats",
    "lens_table",
    "load_words",
    "mean_intervals",
    "prompt_lens",
    "script_of",
    "token_scheme",
    "token_set",
    "translation_pair",
]
