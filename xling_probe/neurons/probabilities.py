"""Activation probabilities of FFN neurons per language (LAPE, step 1; docs/neurons.md).

``p[lang, l, i]`` = (number of ``lang``'s tokens on which neuron i of block l is active) / (number of
``lang``'s tokens), over the real tokens of the corpus: padding and special tokens (BOS, EOS, CLS, SEP,
language tags) are never counted. *Active* (``active=``):

- ``"gate"`` (default, as Tang et al. 2024 count it): the activation output is > 0, i.e.
  ``act_fn(gate(x)) > 0`` in gated FFNs (SwiGLU / GeGLU), ``act(fc(x)) > 0`` in plain ones;
- ``"input"``: the down projection's input is > 0 (in gated FFNs the product ``act(gate(x)) * up(x)``;
  in plain FFNs the same as ``"gate"``).

The pass is streamed: inside hooks each batch adds to counts ``[layer, neuron]`` per language (and
to the sum of the neuron values, the down projection's input, so that :attr:`ActivationProbabilities.means`
gives each language's mean activation for the interventions); no ``[token, neuron]`` array is kept
past one block of one batch. Results are cached on disk per language, keyed by the model
fingerprint, the language's sentences and the settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.corpus import ParallelCorpus
from ..errors import XlingProbeError
from ..labels import resolve_language
from .locate import FFNSite, check_widths, find_ffn

ACTIVE = ("gate", "input")
FORMAT = 1


@dataclass(frozen=True, eq=False)
class ActivationProbabilities:
    """Per-language activation counts of every FFN neuron.

    ``counts[g, l, i]``: tokens of language ``languages[g]`` on which neuron i of block l was active;
    ``tokens[g]``: that language's counted tokens; ``sums[g, l, i]``: the sum of the neuron's value (the
    down projection's input) over the same tokens. ``layers`` are block indices 0..L-1 (the FFN of
    block l, between residual states l and l + 1).
    """

    model: str
    languages: tuple[str, ...]
    labels: dict[str, str]
    counts: np.ndarray
    tokens: np.ndarray
    sums: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for arr in (self.counts, self.tokens, self.sums):
            arr.setflags(write=False)

    @property
    def n_layers(self) -> int:
        return int(self.counts.shape[1])

    @property
    def n_neurons(self) -> int:
        return int(self.counts.shape[2])

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(range(self.n_layers))

    @property
    def probs(self) -> np.ndarray:
        """``[language, layer, neuron]`` activation probabilities (float64)."""
        return self.counts / self.tokens[:, None, None].astype(np.float64)

    @property
    def means(self) -> np.ndarray:
        """``[language, layer, neuron]`` mean neuron value (down projection input) per language."""
        return self.sums / self.tokens[:, None, None].astype(np.float64)

    def language(self, language: str) -> str:
        return resolve_language(language, self.languages, self.labels, what="the languages of these probabilities")

    def sel(self, language: str | None = None, layer: int | None = None, what: str = "probs") -> np.ndarray:
        """``what`` ("probs", "means" or "counts") of one language and/or one block, by name."""
        if what not in ("probs", "means", "counts"):
            raise XlingProbeError(f"what must be 'probs', 'means' or 'counts', got {what!r}")
        arr = getattr(self, what)
        if language is not None:
            arr = arr[self.languages.index(self.language(language))]
        if layer is not None:
            if not -self.n_layers <= int(layer) < self.n_layers:
                raise XlingProbeError(f"block {layer} out of range: the model has blocks 0..{self.n_layers - 1}")
            arr = arr[..., int(layer), :] if language is None else arr[int(layer)]
        return arr

    def to_dataframe(self):
        """Per language and block: counted tokens, mean activation probability, share of neurons that never fired."""
        import pandas as pd

        p = self.probs
        rows = [{"language": lang, "layer": l, "tokens": int(self.tokens[g]), "mean_probability": float(p[g, l].mean()),
                 "never_active": float((self.counts[g, l] == 0).mean())}
                for g, lang in enumerate(self.languages) for l in range(self.n_layers)]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "languages": list(self.languages), "labels": dict(self.labels),
                "n_layers": self.n_layers, "n_neurons": self.n_neurons,
                "tokens": {lang: int(t) for lang, t in zip(self.languages, self.tokens)}, "meta": self.meta}

    def __repr__(self) -> str:
        return (f"ActivationProbabilities({self.model!r}, languages={list(self.languages)}, blocks={self.n_layers}, "
                f"neurons per block={self.n_neurons}, tokens={dict(zip(self.languages, self.tokens.tolist()))})")

    def save(self, folder: str | Path) -> Path:
        """``probabilities.npz`` (counts, tokens, sums) and ``probabilities.json`` (labels, meta) in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "probabilities.npz", counts=self.counts, tokens=self.tokens, sums=self.sums)
        (folder / "probabilities.json").write_text(json.dumps(self.to_dict(), indent=1, default=str), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ActivationProbabilities:
        folder = Path(folder)
        if not (folder / "probabilities.json").is_file():
            raise XlingProbeError(f"{folder} has no probabilities.json; write it with ActivationProbabilities.save")
        info = json.loads((folder / "probabilities.json").read_text(encoding="utf-8"))
        with np.load(folder / "probabilities.npz") as z:
            return cls(info["model"], tuple(info["languages"]), dict(info["labels"]), z["counts"], z["tokens"],
                       z["sums"], dict(info.get("meta", {})))


def _texts_hash(language: str, texts: Sequence[str]) -> str:
    h = hashlib.sha256(language.encode() + b"\x00")
    for t in texts:
        h.update(t.encode() + b"\x1e")
    return h.hexdigest()


def _tokenized(handle: Any, texts: Sequence[str], language: str, max_length: int):
    from ..extraction.runners import tokenize

    if handle.stack is None:
        return tokenize(handle.tokenizer, texts, max_length)
    if handle.stack == "encoder":
        from ..extraction.seq2seq import tokenize_source

        return tokenize_source(handle.tokenizer, texts, language, max_length)
    raise XlingProbeError("neuron analyses read one-stack models or the encoder stack of an encoder-decoder model; "
                          "load it with stack='encoder'")


class CountingHooks:
    """Hooks on every FFN that add one batch's active counts and value sums to per-block accumulators.

    ``self.mask`` (``[batch, seq]`` bool, real non-special tokens) must be set before each forward.
    """

    def __init__(self, sites: Sequence[FFNSite], n_neurons: int, active: str, device: torch.device):
        self.sites = list(sites)
        self.active = active
        self.mask: torch.Tensor | None = None
        n = len(self.sites)
        self.counts = torch.zeros((n, n_neurons), dtype=torch.int64, device=device)
        self.sums = torch.zeros((n, n_neurons), dtype=torch.float64, device=device)
        self.handles: list[Any] = []

    def __enter__(self) -> CountingHooks:
        for site in self.sites:
            from_act = self.active == "gate" and site.gated
            if from_act and site.act is None:
                raise XlingProbeError(
                    f"active='gate' counts act_fn(gate(x)) > 0, but block {site.layer}'s activation is not a module "
                    "that can be hooked; use active='input' (the down projection's input > 0)")

            def pre(_module, args, layer=site.layer, count=not from_act):
                x = args[0][self.mask.to(args[0].device)]  # [tokens, neurons]: this batch's real tokens, this block
                # one batch of one block summed in float32 (at most a few thousand tokens), accumulated in float64
                self.sums[layer] += x.sum(0, dtype=torch.float32).to(self.sums.device)
                if count:
                    self.counts[layer] += (x > 0).sum(0).to(self.counts.device)

            self.handles.append(site.down.register_forward_pre_hook(pre))
            if from_act:
                def post(_module, _args, output, layer=site.layer):
                    self.counts[layer] += (output[self.mask.to(output.device)] > 0).sum(0).to(self.counts.device)

                self.handles.append(site.act.register_forward_hook(post))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def count_texts(handle: Any, texts: Sequence[str], language: str, *, active: str = "gate", batch_size: int = 16,
                max_length: int = 512, padding_side: str | None = None, progress: Any = None
                ) -> tuple[np.ndarray, int, np.ndarray, int]:
    """``(counts [layer, neuron], tokens, sums [layer, neuron], truncated)`` of one language's ``texts``."""
    from ..extraction.runners import model_inputs, pad_batch

    if active not in ACTIVE:
        raise XlingProbeError(f"active must be one of {', '.join(ACTIVE)}, got {active!r}")
    sites = find_ffn(handle)
    width = check_widths(sites)
    tok = _tokenized(handle, texts, language, max_length)
    side = padding_side or ("right" if handle.kind == "encoder" or handle.stack else handle.tokenizer.padding_side or "right")
    order = sorted(range(len(texts)), key=lambda k: -len(tok.ids[k]))
    n_tokens = 0
    with CountingHooks(sites, width, active, handle.device) as hooks, torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = pad_batch([tok.ids[k] for k in idx], [tok.special[k] for k in idx], handle.tokenizer.pad_token_id, side)
            mask = (batch["attention_mask"].bool() & ~batch["special_tokens_mask"].bool()).to(handle.device)
            hooks.mask = mask
            n_tokens += int(mask.sum())
            handle.parts.runner(**model_inputs(handle, batch))
            if progress is not None:
                progress.update(len(idx))
        counts, sums = hooks.counts.cpu().numpy(), hooks.sums.cpu().numpy()
    return counts, n_tokens, sums, tok.n_truncated


def activation_probabilities(
    model: Any,
    corpus: ParallelCorpus,
    *,
    languages: Iterable[str] | None = None,
    active: str = "gate",
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str | None = None,
    cache: bool = True,
    cache_root: str | Path | None = None,
    progress: bool = True,
) -> ActivationProbabilities:
    """Activation probabilities of every FFN neuron of every block, per language of ``corpus``.

    One streamed pass per language (a tqdm bar counts sentences); see the module docstring for what
    *active* means and which tokens count. With ``cache=True`` each language's counts are stored under
    ``<cache root>/neurons/`` keyed by the model fingerprint, the language's sentences, ``active`` and
    ``max_length``, so a second call (or a call with one more language) only runs what is new.
    """
    from tqdm.auto import tqdm

    from ..extraction.store import CacheEntry, cache_key
    from ..models.handle import ModelHandle
    from ..paths import cache_dir

    if not isinstance(model, ModelHandle):
        raise XlingProbeError("activation_probabilities() needs a ModelHandle: model = xling_probe.load_model(...)")
    if not isinstance(corpus, ParallelCorpus):
        raise XlingProbeError("activation_probabilities() needs a ParallelCorpus")
    if active not in ACTIVE:
        raise XlingProbeError(f"active must be one of {', '.join(ACTIVE)}, got {active!r}")
    if batch_size < 1 or max_length < 2:
        raise XlingProbeError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size} and {max_length}")
    if languages is not None:
        corpus = corpus.select_languages(list(languages))
    sites = find_ffn(model)
    width = check_widths(sites)
    results: dict[str, tuple[np.ndarray, int, np.ndarray]] = {}
    entries: dict[str, Any] = {}
    for lang in corpus.languages:
        texts = corpus.sentences[lang]
        fields = {"kind": "lape-probabilities", "format": FORMAT, "model": model.fingerprint, "language": lang,
                  "texts": _texts_hash(lang, texts), "active": active, "max_length": max_length,
                  "stack": model.stack, "dtype": str(model.dtype)}
        if cache:
            entry = CacheEntry(cache_dir("neurons", root=cache_root) / cache_key(fields), fields)
            entries[lang] = entry
            counts, sums, tokens = entry.load_part("counts"), entry.load_part("sums"), entry.load_part("tokens")
            if counts is not None and sums is not None and tokens is not None and counts.shape == (len(sites), width):
                results[lang] = (counts, int(tokens[0]), sums)
    todo = [lang for lang in corpus.languages if lang not in results]
    truncated: dict[str, int] = {}
    if todo:
        bar = tqdm(total=sum(len(corpus.sentences[lang]) for lang in todo), desc=f"neurons {model.name}",
                   unit="sent", disable=not progress)
        with bar:
            for lang in todo:
                counts, n_tok, sums, n_trunc = count_texts(model, corpus.sentences[lang], lang, active=active,
                                                           batch_size=batch_size, max_length=max_length,
                                                           padding_side=padding_side, progress=bar)
                if n_tok == 0:
                    raise XlingProbeError(f"language {corpus.labels[lang]!r} has no tokens left once padding and "
                                          "special tokens are excluded; give it real sentences")
                results[lang] = (counts, n_tok, sums)
                truncated[lang] = n_trunc
                if lang in entries:
                    entries[lang].save_part("counts", counts)
                    entries[lang].save_part("sums", sums)
                    entries[lang].save_part("tokens", np.array([n_tok], dtype=np.int64))
    langs = corpus.languages
    meta = {"model": model.name, "fingerprint": model.fingerprint, "active": active, "max_length": max_length,
            "sentences": len(corpus), "corpus_hash": corpus.content_hash(), "ffn": sites[0].path,
            "gated": sites[0].gated, "counted": "real tokens; padding and special tokens excluded"}
    if any(truncated.values()):
        meta["truncated"] = truncated
    return ActivationProbabilities(
        model=model.name, languages=langs, labels={c: corpus.labels[c] for c in langs},
        counts=np.stack([results[c][0] for c in langs]).astype(np.int64),
        tokens=np.array([results[c][1] for c in langs], dtype=np.int64),
        sums=np.stack([results[c][2] for c in langs]).astype(np.float64), meta=meta)
