"""The report's tuned-lens section: each drift pair read through a tuned lens trained on multilingual text.

Asked for with ``build_report(tuned_lens=True)`` (train, or load from the cache, the default lens on
the bundled 16-language sample), ``tuned_lens=<TunedLens>`` or ``tuned_lens="<path to lens.npz>"``
(``xling-probe report --tuned-lens [PATH]``). For each drift pair that ran through the logit lens,
the same prompts are read through the tuned lens; the section holds the latent-language figure,
a table with both lenses' curves side by side, and a sentence computed from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LensError

TEXT = ("The tuned lens (Belrose et al. 2023) reads layer l through an affine translator trained so that its "
        "next-token distribution matches the model's final one (KL to the final layer); the published lenses "
        "were trained on English text, this one on parallel text in many languages. The logit lens reads every "
        "layer as if it were the last. Where the two disagree, a logit-lens reading of a middle layer partly "
        "reflects how far that layer is from the output space, not only which language it holds.")


def resolve_tuned(handle, enabled: Any, *, progress: bool):
    """The :class:`~xling_probe.lens.TunedLens` the report reads through (training it when asked)."""
    from ..lens import TunedLens, train_tuned_lens

    if isinstance(enabled, TunedLens):
        enabled.check(handle)
        return enabled
    if isinstance(enabled, (str, Path)):
        lens = TunedLens.load(enabled)
        lens.check(handle)
        return lens
    return train_tuned_lens(handle, progress=progress)


def compare_frame(logit, tuned):
    """Both lenses' per-layer means side by side (one row per layer)."""
    import pandas as pd

    rows = {"layer": list(logit.layers)}
    for m in ("p_target", "p_latent", "p_source", "kl_to_final_bits", "entropy_bits"):
        rows[f"{m}_logit"] = np.asarray(logit.curve(m), float)
        rows[f"{m}_tuned"] = np.asarray(tuned.curve(m), float)
    return pd.DataFrame(rows)


def describe_tuned(logit, tuned) -> str:
    """What changes between the two lenses, from their curves."""
    layers = list(logit.layers)
    lat, tgt = logit.latent, logit.target
    parts = []
    for name, d in (("logit", logit), ("tuned", tuned)):
        pl = np.asarray(d.curve("p_latent"), float)
        k = int(pl.argmax())
        parts.append(f"through the {name} lens P({lat}) peaks at {pl[k]:.3f} at layer {layers[k]}")
    mid = len(layers) // 2
    kl_l, kl_t = (float(np.asarray(d.curve("kl_to_final_bits"))[mid]) for d in (logit, tuned))
    pt_l, pt_t = (np.asarray(d.curve("p_target"), float) for d in (logit, tuned))
    first = [next((layers[j] for j in range(len(layers)) if p[j] >= 0.5 * p.max()), None) if p.max() > 0 else None
             for p in (pt_l, pt_t)]
    rise = " and ".join(f"at layer {f} ({n})" if f is not None else f"never ({n}: P({tgt}) is 0 at every layer)"
                        for f, n in zip(first, ("logit", "tuned")))
    text = ("; ".join(parts) + f". At layer {layers[mid]} the mean KL to the final layer is {kl_l:.2f} bits "
            f"through the logit lens and {kl_t:.2f} through the tuned lens. P({tgt}) reaches half its maximum {rise}.")
    if kl_t >= kl_l:
        text += " The tuned lens does not read this middle layer closer to the output than the logit lens here."
    return text


def tuned_sections(handle, runs, sections, tables, figs, notes, *, enabled, words, items, shots, seed, progress,
                   cache=True) -> None:
    """Append a tuned-lens section per drift pair in ``runs`` (``{(src, tgt): DriftResult}`` of the logit lens)."""
    from .. import plots
    from ..lens import language_drift, load_words
    from .html import Section

    if not runs:
        return
    try:
        lens = resolve_tuned(handle, enabled, progress=progress)
    except LensError as exc:
        note = f"Tuned lens skipped: {exc}"
        notes.append(note)
        sections.append(Section("tuned_lens", "Tuned lens (skipped)", "", notes=[note]))
        return
    wl = load_words(words)
    langs = ", ".join(lens.meta.get("languages", [])) or "?"
    how = (f"Lens {lens.digest[:12]}: trained on {lens.meta.get('n_tokens', '?')} token positions of {langs}; "
           f"layers kept at the identity (not better than the logit lens on validation text): "
           f"{lens.meta.get('identity_layers', []) or 'none'}.")
    for (src, tgt), logit in runs.items():
        d = language_drift(handle, wl, source=src, target=tgt, latent="en", shots=shots, seed=seed, limit=items,
                           progress=progress, cache=cache, tuned=lens)
        key = f"tuned_{src}_{tgt}"
        tables[key] = compare_frame(logit, d)
        figs[key] = plots.latent_language(d, title=f"{src} → {tgt} through the tuned lens")
        sections.append(Section(key, f"Tuned lens: drift {src} → {tgt}", TEXT, [(key, figs[key])],
                                [f"tables/{key}.csv"], notes=[how], finding=describe_tuned(logit, d)))
