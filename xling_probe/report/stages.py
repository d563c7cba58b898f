"""Report stages that stand on their own: the language-neuron section and the language-drift sections
(:func:`~xling_probe.report.build.build_report` runs them; each adds its sections, tables and figures)."""

from __future__ import annotations

from ..errors import LensError, XlingProbeError


def neuron_stage(stages, handle, corpus, sections, tables, figs, notes, *, enabled, seed, batch_size, max_length,
                  progress) -> None:
    """The language-neuron section when asked for (``neurons=True``); else the stage is skipped with the reason."""
    if not enabled:
        stages.skip("neurons", "not requested (neurons=True / --neurons adds the LAPE section)")
        return
    from ..neurons.locate import find_ffn
    from .html import Section
    from .neurons import neuron_section, run_neuron_analysis

    try:
        find_ffn(handle)
    except XlingProbeError as err:
        notes.append(f"no language-neuron section: {err}")
        stages.skip("neurons", str(err))
        return

    options = {"seed": seed, "batch_size": batch_size, "max_length": max_length, "progress": progress,
               **(enabled if isinstance(enabled, dict) else {})}

    def run():
        _, sel, ppl = run_neuron_analysis(handle, corpus, **options)
        section, more_tables, more_figs = neuron_section(sel, ppl)
        sections.append(section), tables.update(more_tables), figs.update(more_figs)

    try:
        stages.run("neurons", run)
    except XlingProbeError as err:  # e.g. too few tokens for a language: the other sections still stand
        notes.append(f"no language-neuron section: {err}")
        sections.append(Section("neurons", "Language-specific neurons (skipped)", "", notes=[str(err)]))


def drift_unavailable(handle) -> str | None:
    """Why the logit-lens drift cannot run on ``handle`` (the note of the skipped section), or ``None`` when it can."""
    if handle.has_unembedding and handle.kind == "decoder":
        return None
    if getattr(handle, "remote", False):
        return (f"Language drift skipped: {handle.name} runs remotely, and the logit lens applies the unembedding on "
                "this machine, which has none of a remote model's weights. Run the drift on a local model.")
    if handle.stack == "encoder":
        return (f"Language drift skipped: {handle.name} was loaded with its encoder stack, which has no unembedding "
                "(LM head): the logit lens needs the decoder stack: --stack decoder (load_model(..., stack='decoder')). "
                "Similarity and neutrality above are of the encoder's states.")
    return (f"Language drift skipped: {handle.name} is {'an encoder' if handle.kind != 'decoder' else 'a model'} "
            "without an unembedding (LM head), so the logit lens cannot decode its layers. Use a decoder LM.")


def drift_sections(handle, drift_pairs, sections, tables, figs, notes, *, words, items, shots, seed, progress,
                    cache=True, tuned_lens=False):
    """One section per drift pair (logit lens), the one-prompt lens heatmap, and with ``tuned_lens``
    (True, a TunedLens or a path) the pairs read through a tuned lens (:mod:`.tuned`)."""
    from .. import plots
    from ..lens import build_prompts, language_drift, lens_table, load_words
    from .captions import describe_drift, describe_items
    from .html import TEXTS, Section

    wl = load_words(words)
    first_table = None
    runs = {}
    for src, tgt in drift_pairs:
        missing = [c for c in (src, tgt, "en") if c not in wl.languages]
        key = f"drift_{src}_{tgt}"
        if missing:
            note = (f"Drift {src} -> {tgt} skipped: the word list has no {', '.join(missing)} column "
                    f"(it has {', '.join(wl.languages)}); add the column or choose another pair with --pairs.")
            notes.append(note)
            sections.append(Section(key, f"Language drift {src} → {tgt} (skipped)", "", notes=[note]))
            continue
        try:
            d = language_drift(handle, wl, source=src, target=tgt, latent="en", shots=shots, seed=seed, limit=items,
                               progress=progress, cache=cache)
        except LensError as exc:
            note = f"Drift {src} -> {tgt} skipped: {exc}"
            notes.append(note)
            sections.append(Section(key, f"Language drift {src} → {tgt} (skipped)", "", notes=[note]))
            continue
        runs[(src, tgt)] = d
        tables[key] = d.to_dataframe()
        figs[key] = plots.latent_language(d)
        sections.append(Section(key, f"Language drift {src} → {tgt} (latent: English)", TEXTS["drift"],
                                [(key, figs[key])], [f"tables/{key}.csv"], notes=[describe_items(d, items)],
                                finding=describe_drift(d)))
        if first_table is None:
            # a short prompt (1 shot) keeps the layer x position heatmap readable
            prompt = build_prompts(wl, source=src, target=tgt, shots=1, seed=seed, indices=[wl.concepts.index(d.concepts[0])])[0]
            first_table = lens_table(handle, prompt, top_k=5)
            tables["lens_positions"] = first_table.to_dataframe()
            figs["lens"] = plots.lens_heatmap(first_table, title=f"Logit lens: {src} → {tgt}, one prompt")
            sections.append(Section("lens", "Logit lens on one prompt", TEXTS["lens"], [("lens", figs["lens"])],
                                    ["tables/lens_positions.csv"]))
    if tuned_lens is not False and tuned_lens is not None:
        from .tuned import tuned_sections

        tuned_sections(handle, runs, sections, tables, figs, notes, enabled=tuned_lens, words=words, items=items,
                       shots=shots, seed=seed, progress=progress, cache=cache)


def _options(enabled) -> dict:
    return dict(enabled) if isinstance(enabled, dict) else {}


def distance_stage(stages, grid, sections, tables, figs, notes, *, enabled, seed) -> None:
    """The language-distance section when asked for (``distances=True`` or a dict of options: ``kinds``,
    ``source`` ("urielplus" | "uriel"), ``permutations``, ``metrics``, ``alpha``); else skipped with the reason.
    ``grid``: the run's every-pair SimilarityResult. Fewer than 4 languages, no URIEL+ or an error of the
    analysis skip it with a note (the other sections stand)."""
    if not enabled:
        stages.skip("distances", "not requested (distances=True / --distances adds the URIEL+ distance section)")
        return
    from .distances import ALPHA, MIN_LANGUAGES, distance_section, run_distance_analysis
    from .html import Section

    options = {"seed": seed, **_options(enabled)}
    alpha = float(options.pop("alpha", ALPHA))
    if len(grid.languages) < MIN_LANGUAGES:
        why = (f"language distances skipped: a Mantel test over language pairs needs at least {MIN_LANGUAGES} "
               f"languages, this run has {len(grid.languages)} ({', '.join(grid.languages)})")
        notes.append(why)
        sections.append(Section("distances", "Language distance vs similarity (skipped)", "", notes=[why]))
        stages.skip("distances", why)
        return

    def run():
        dist, table = run_distance_analysis(grid, **options)
        section, more_tables, more_figs = distance_section(dist, table, alpha=alpha)
        sections.append(section), tables.update(more_tables), figs.update(more_figs)

    try:
        stages.run("distances", run)
    except (XlingProbeError, ImportError) as err:  # no urielplus, a bad kind...: the other sections still stand
        why = f"language distances skipped: {err}"
        notes.append(why)
        sections.append(Section("distances", "Language distance vs similarity (skipped)", "", notes=[why]))


def transliteration_stage(stages, handle, corpus, acts, sections, tables, figs, notes, *, enabled, pivot, bootstrap,
                          seed, batch_size, max_length, progress, cache, extract_options) -> None:
    """The transliteration section when asked for (``transliteration=True`` or a dict of options of
    :func:`~xling_probe.report.transliteration.run_transliteration_analysis`: ``n_boot``, ``ci``,
    ``max_languages``); else skipped with the reason. Skipped with a note when the run has no non-Latin-script
    language, for the decoder stack of an encoder-decoder model (its input is read by the encoder), or when
    romanization is unavailable."""
    if not enabled:
        stages.skip("transliteration", "not requested (transliteration=True / --transliteration adds the section)")
        return
    from .html import Section
    from .transliteration import run_transliteration_analysis, transliteration_plan, transliteration_section

    def skipped(why: str) -> None:
        why = f"transliteration skipped: {why}"
        notes.append(why)
        sections.append(Section("transliteration", "Transliteration (skipped)", "", notes=[why]))

    if handle.stack == "decoder":
        why = ("the decoder stack of an encoder-decoder model reads its sentences through the encoder; romanize the "
               "corpus (xp.romanize) and compare the stacks yourself")
        stages.skip("transliteration", why)
        skipped(why)
        return
    options = {"n_boot": bootstrap, "seed": seed, **_options(enabled)}
    try:
        transliteration_plan(corpus, list(acts.languages), pivot,
                             **({"max_languages": options["max_languages"]} if "max_languages" in options else {}))
    except XlingProbeError as err:
        stages.skip("transliteration", str(err))
        skipped(str(err))
        return

    def run():
        table, scripts = run_transliteration_analysis(handle, corpus, acts, pivot=pivot, batch_size=batch_size,
                                                      max_length=max_length, progress=progress, cache=cache,
                                                      extract_options=extract_options, **options)
        section, more_tables, more_figs = transliteration_section(table, scripts)
        sections.append(section), tables.update(more_tables), figs.update(more_figs)

    try:
        stages.run("transliteration", run)
    except XlingProbeError as err:  # e.g. uroman missing
        skipped(str(err))
