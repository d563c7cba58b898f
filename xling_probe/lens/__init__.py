"""Logit lens and language drift: which language each layer decodes to.

One call reproduces the latent-language figure of Wendler et al. (2024)::

    from xling_probe import load_model
    from xling_probe.lens import language_drift

    result = language_drift(load_model(), source="fr", target="zh")   # bundled word list
    print(result.format_curves())            # per-layer P(zh), P(en), P(fr), entropy
    result.to_dataframe()                    # tidy means with Gaussian and bootstrap 95% intervals

Modules: :mod:`.core` (the lens, chunked statistics), :mod:`.words` (word lists),
:mod:`.tokensets` (token sets and filters), :mod:`.prompts` (prompt builders), :mod:`.drift`
(drift statistics), :mod:`.stats` (intervals), :mod:`.shares` (script/language shares of free
text), :mod:`.positions` (layer x position table).
"""

from .core import Lens, LensStats, check_final_logits, check_lens_model, lens_stats
from .drift import METRICS, DriftResult, language_drift
from .positions import PositionTable, lens_table
from .prompts import Prompt, build_prompts, cloze_line, free_prompt, translation_pair
from .shares import SharesResult, language_shares, script_of
from .stats import mean_intervals
from .tokensets import DropReport, ItemSets, TokenScheme, TokenSet, build_item_sets, token_scheme, token_set
from .words import WordList, bundled_words_path, load_words

__all__ = [
    "METRICS",
    "DriftResult",
    "DropReport",
    "ItemSets",
    "Lens",
    "LensStats",
    "PositionTable",
    "Prompt",
    "SharesResult",
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
    "script_of",
    "token_scheme",
    "token_set",
    "translation_pair",
]
