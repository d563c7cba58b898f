"""Cross-language activation patching: does the output follow the patched concept or the patched language?

The measurement behind "language-agnostic concept representations" (Dumas et al. 2024/2025). A
*source* prompt translates concept C1 from language a into b (``Deutsch: "Buch" - Italiano: "``); a
*target* prompt translates another concept C2 from c into d (``Français: "fleur" - 中文: "``). The
residual stream of the source run at layer l and a position is written into the target run at the
aligned position (:class:`~xling_probe.interventions.mechanism.SetState`), and the target's next token
is read:

- ``concept_moved``: P(C1 in d): the concept came along, the language of the target stayed;
- ``language_moved``: P(C1 in b): the concept and the source's output language came along;
- ``target_kept``: P(C2 in d): the patch changed nothing;

each a probability of the word's token set at the last layer (the lens token sets). Positions are
counted from the end of each prompt (``-1`` = the last token), so prompts of different lengths align
end to end; positions from the start need prompts of one length, or ``position_map``.

:func:`patch_states` patches one pair of prompts over a layer x position grid; :func:`concept_patching`
runs it over many pairs of word-list items (C1 != C2) with intervals, and the control: the source
state taken from an unrelated sentence instead (``kind="unrelated"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InterventionError
from .mechanism import SetState
from .results import InterventionResult, summarise
from .run import check_causal, encode, next_token_logprobs

MEASURES = {
    "concept_moved": "P(the source's concept in the target's output language) after the patch",
    "language_moved": "P(the source's concept in the source's output language) after the patch",
    "target_kept": "P(the target's own concept in its output language) after the patch",
}

#: Sentences with no word of the list's concepts, as the unrelated-source control.
UNRELATED = (
    "The meeting was moved to next Tuesday because of the rain.",
    "Please close the window before you leave the office.",
    "Numbers grew quickly during the second half of the year.",
    "She repaired the old radio with a small screwdriver.",
)


def source_states(model: Any, prompt: str, layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """The residual stream ``[T, d]`` of ``prompt`` at each of ``layers`` (no intervention)."""
    from ..extraction.backends import make_runner

    ids = torch.as_tensor([encode(model, [prompt])[0]])
    runner = make_runner(model, sorted(set(layers)))
    with torch.inference_mode():
        got = runner.run({"input_ids": ids, "attention_mask": torch.ones_like(ids)},
                         lambda layer, x: x[0].detach().clone())
    return got


def _aligned(src_len: int, tgt_len: int, position: int, position_map: Mapping[int, int] | None) -> tuple[int, int]:
    if position_map is not None:
        if position not in position_map:
            raise InterventionError(f"position {position} has no entry in position_map")
        return position, int(position_map[position])
    if position < 0:
        if -position > min(src_len, tgt_len):
            raise InterventionError(f"position {position} is outside a prompt of {min(src_len, tgt_len)} tokens")
        return src_len + position, tgt_len + position
    if src_len != tgt_len:
        raise InterventionError(f"the prompts have {src_len} and {tgt_len} tokens: count positions from the end "
                                "(negative, -1 = the last token) or give position_map={source: target}")
    if position >= src_len:
        raise InterventionError(f"position {position} is outside the prompt of {src_len} tokens")
    return position, position


def patch_states(model: Any, source_prompt: str, target_prompt: str, *, layers: Sequence[int],
                 positions: Sequence[int] = (-1,), position_map: Mapping[int, int] | None = None,
                 batch_size: int = 8) -> dict[tuple[int, int], torch.Tensor]:
    """Next-token log-probabilities ``[V]`` of ``target_prompt`` with the source's state patched in, per
    (layer, position) of the grid. Patching a prompt into itself gives its unpatched distribution."""
    check_causal(model)
    for layer in layers:
        if not 0 <= int(layer) <= model.n_blocks:
            raise InterventionError(f"layer {layer} is out of range: states 0..{model.n_blocks}")
    states = source_states(model, source_prompt, layers)
    ns, nt = len(encode(model, [source_prompt])[0]), len(encode(model, [target_prompt])[0])
    out = {}
    for layer in layers:
        for p in positions:
            sp, tp = _aligned(ns, nt, int(p), position_map)
            edit = SetState(int(layer), positions=[tp], values=states[int(layer)][sp:sp + 1], prompt_length=nt)
            out[(int(layer), int(p))] = next_token_logprobs(model, [target_prompt], edits=[edit])[0]
    return out


def concept_patching(model: Any, words: Any = None, *, source: tuple[str, str] = ("de", "it"),
                     target: tuple[str, str] = ("fr", "zh"), layers: Sequence[int] | None = None,
                     positions: Sequence[int] = (-1,), n_pairs: int = 16, shots: int = 3, control: bool = True,
                     seed: int = 0, progress: bool = True) -> InterventionResult:
    """Patch source translation prompts (``source`` = (input, output) languages) into target ones over
    ``n_pairs`` pairs of different concepts; a layer x position grid with intervals (see the module docstring)."""
    from tqdm.auto import tqdm

    from ..lens.prompts import build_prompts
    from ..lens.tokensets import build_item_sets
    from ..lens.words import load_words

    check_causal(model)
    wl = load_words(words)
    a, b = (wl.resolve_language(x) for x in source)
    c, d = (wl.resolve_language(x) for x in target)
    if a == b or c == d:
        raise InterventionError("each prompt translates between two languages: source=(in, out), target=(in, out)")
    items = build_item_sets(model.tokenizer, wl, [a, b, c, d], latent=b, target=d)
    kept = list(items.kept)
    if len(kept) < 3:
        raise InterventionError(f"only {len(kept)} items have token sets in {a}, {b}, {c}, {d}; {items.dropped}")
    rng = np.random.default_rng(seed)
    pairs = []
    for k in rng.permutation(len(kept))[:n_pairs]:
        j = int(rng.integers(0, len(kept) - 1))
        j = j + 1 if j >= k else j  # a different concept
        pairs.append((kept[int(k)], kept[j]))
    src_prompts = {k: p.text for k, p in zip(kept, build_prompts(wl, task="translation", source=a, target=b,
                                                                  shots=shots, seed=seed, indices=kept,
                                                                  demonstrations=kept))}
    tgt_prompts = {k: p.text for k, p in zip(kept, build_prompts(wl, task="translation", source=c, target=d,
                                                                  shots=shots, seed=seed + 1, indices=kept,
                                                                  demonstrations=kept))}
    pos = {k: i for i, k in enumerate(items.kept)}
    layers = list(layers) if layers is not None else list(range(0, model.n_blocks + 1, max(1, model.n_blocks // 6)))

    def prob(logp: torch.Tensor, lang: str, k: int) -> float:
        return float(torch.logsumexp(logp[list(items.sets[lang][pos[k]].ids)], -1).exp())

    vals: dict[tuple[str, int, int, str], list[float]] = {}
    kinds = ["translation"] + (["unrelated"] if control else [])
    bar = tqdm(total=len(pairs) * len(kinds), desc=f"patching {a}->{b} into {c}->{d}", unit="pair",
               disable=not progress)
    with bar:
        for n, (k1, k2) in enumerate(pairs):
            for kind in kinds:
                src = src_prompts[k1] if kind == "translation" else UNRELATED[n % len(UNRELATED)]
                grid = patch_states(model, src, tgt_prompts[k2], layers=layers, positions=positions)
                for (layer, p), logp in grid.items():
                    for m, v in (("concept_moved", prob(logp, d, k1)), ("language_moved", prob(logp, b, k1)),
                                 ("target_kept", prob(logp, d, k2))):
                        vals.setdefault((kind, layer, p, m), []).append(v)
                bar.update(1)
    cells = [({"kind": kind, "layer": layer, "position": p}, m, np.array(v)) for (kind, layer, p, m), v in vals.items()]
    table = summarise(cells, seed=seed)
    return InterventionResult("patching", table, settings={
        "model": model.name, "source": [a, b], "target": [c, d], "layers": layers, "positions": list(positions),
        "n_pairs": len(pairs), "shots": shots, "seed": seed, "control": control,
        "pairs": [[wl.concepts[k1], wl.concepts[k2]] for k1, k2 in pairs]}, measures=MEASURES)
