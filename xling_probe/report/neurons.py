"""The report's language-neuron section (LAPE, Tang et al. 2024; docs/neurons.md).

:func:`neuron_section` is pure: the selection (and, when computed, the perplexity-change result) in; a
Section, tables (name -> DataFrame, written as ``tables/<name>.csv``) and figures (id -> Figure) out.
:func:`run_neuron_analysis` computes those results for a report from a model and a corpus: the
probabilities on a fit split, the perplexity matrix on the held-out split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..neurons.perplexity import PerplexityChange
    from ..neurons.selection import LanguageNeurons
    from .html import Section

NEURON_TEXT = (
    "Language-specific neurons (LAPE, Tang et al. 2024). For every FFN neuron of every block, the share of each "
    "language's tokens on which it is active (its activation output > 0) is its activation probability; normalised "
    "over the languages, the entropy of those probabilities (LAPE) is low for a neuron that fires for one or a few "
    "languages only. The neurons with the lowest entropy (among those some language activates often) are kept and "
    "assigned to the languages that activate them. The first figure shows in which blocks each language's neurons "
    "sit (the paper finds them mostly in the first and the last blocks), the second how many neurons two languages "
    "share. The perplexity matrix switches off one language's neurons (row) and measures the perplexity of every "
    "language (column) on held-out sentences, as PPL after / PPL before; beside it the same for as many random "
    "neurons per block. Language-specific neurons should raise the perplexity of their own language (the diagonal) "
    "much more than that of the others, and much more than random neurons do.")
TABLES = ("neurons_selected", "neurons_per_layer", "neurons_overlap", "neurons_perplexity")


def describe_neurons(neurons: LanguageNeurons, ppl: PerplexityChange | None = None) -> str:
    """One sentence on what this run's numbers show."""
    counts = neurons.counts()
    per_layer = neurons.per_layer().sum(axis=1)
    n = len(per_layer)
    edge = int(per_layer.iloc[: max(1, n // 4)].sum() + per_layer.iloc[n - max(1, n // 4):].sum())
    total = int(per_layer.sum())
    text = (f"This run: {len(neurons.selected)} neurons kept of {neurons.n_layers} x {neurons.n_neurons}; per language "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f"; {edge} of {total} language assignments lie in the first and last quarter of the blocks.")
    if ppl is not None:
        s = ppl.summary()
        text += (f" Switching a language's neurons off multiplies its own perplexity by {s['language_diagonal_mean']:.3f} "
                 f"on average and the other languages' by {s['language_off_diagonal_mean']:.3f}")
        if "random_diagonal_mean" in s:
            text += (f"; random neurons: {s['random_diagonal_mean']:.3f} and {s['random_off_diagonal_mean']:.3f}")
        text += f" ({len(ppl.off)} x {len(ppl.evaluated)} languages, {ppl.meta.get('sentences', '?')} held-out sentences)."
    return text


def neuron_section(neurons: LanguageNeurons, ppl: PerplexityChange | None = None
                   ) -> tuple[Section, dict[str, Any], dict[str, Any]]:
    """(Section, tables name -> DataFrame, figures id -> Figure) of the language neurons."""
    from .. import plots
    from .html import Section

    figs: dict[str, Any] = {"neurons_per_layer": plots.neurons_per_layer(neurons),
                            "neurons_overlap": plots.neuron_overlap(neurons)}
    tables: dict[str, Any] = {"neurons_selected": neurons.to_dataframe(),
                              "neurons_per_layer": neurons.per_layer().reset_index(),
                              "neurons_overlap": neurons.overlap().reset_index()}
    shown = [("Neurons per language and block", neurons.per_layer().T)]
    if ppl is not None:
        figs["neurons_perplexity"] = plots.perplexity_change_heatmap(ppl)
        tables["neurons_perplexity"] = ppl.to_dataframe()
        shown.append(("PPL after / before (rows: neurons off, columns: evaluated)", ppl.matrix().round(3)))
    links = [f"tables/{name}.csv" for name in TABLES if name in tables]
    section = Section("neurons", "Language-specific neurons (LAPE)", NEURON_TEXT, list(figs.items()), links,
                      finding=describe_neurons(neurons, ppl), tables=shown)
    return section, tables, figs


def run_neuron_analysis(model: Any, corpus: Any, *, heldout: int | float = 0.2, seed: int = 0, fraction: float = 0.01,
                        filter_percentile: float = 95.0, assign_percentile: float = 95.0, min_tokens: int = 200,
                        control: bool = True, batch_size: int = 16, max_length: int = 256, progress: bool = True
                        ) -> tuple[Any, Any, Any]:
    """``(probabilities, selection, perplexity change or None)`` for a report: the corpus is split by id into a fit
    and a held-out part (``heldout``: a fraction or a count); the matrix needs a causal LM (else None)."""
    from ..neurons import activation_probabilities, perplexity_change, select_language_neurons

    fit, held = corpus.split(heldout, seed=seed)
    probs = activation_probabilities(model, fit, batch_size=batch_size, max_length=max_length, progress=progress)
    sel = select_language_neurons(probs, fraction=fraction, filter_percentile=filter_percentile,
                                  assign_percentile=assign_percentile, min_tokens=min_tokens)
    ppl = None
    if model.kind == "decoder" and model.stack is None and model.has_unembedding:
        ppl = perplexity_change(model, held, sel, control=control, seed=seed, batch_size=batch_size,
                                max_length=max_length, progress=progress)
    return probs, sel, ppl


__all__ = ["NEURON_TEXT", "TABLES", "describe_neurons", "neuron_section", "run_neuron_analysis"]
