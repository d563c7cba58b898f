"""Perplexity with and without neuron interventions, and the LAPE perplexity-change matrix.

``perplexity(model, texts)`` = exp(total negative log-likelihood / number of predicted tokens): every
real, non-special token after the first is predicted from the tokens before it (padding and BOS / EOS
never count). The logits are computed only for those positions, in chunks of rows, from the base
model's last state (its final norm applied) through the unembedding and the final-logit soft-capping.

:func:`perplexity_change` is the paper's evaluation (Tang et al. 2024, Sec. 4): for each language A,
deactivate A's neurons and measure the perplexity of every language B on held-out sentences. The
matrix holds ``PPL_B(A's neurons off) / PPL_B(no intervention)`` (``measure="ratio"``, the default) or
the difference (``"difference"``, the paper's "PPL change" tables); the same with random neurons (the
same count in each block, drawn from the block's other neurons, seeded) is the control.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.corpus import ParallelCorpus
from ..errors import XlingProbeError
from .intervene import neuron_intervention, random_like
from .selection import LanguageNeurons

MEASURES = ("ratio", "difference", "ppl")


def check_causal(model: Any) -> None:
    if model.kind != "decoder" or model.stack is not None or model.parts.unembed is None:
        raise XlingProbeError(f"perplexity needs a causal language model with its unembedding; {model.name} is "
                              f"{'the ' + model.stack + ' stack of an encoder-decoder' if model.stack else 'a ' + model.kind}")


def nll(model: Any, texts: Sequence[str], *, batch_size: int = 8, max_length: int = 256, chunk: int = 256,
        progress: Any = None) -> tuple[float, int]:
    """``(sum of -log p(token | prefix), number of predicted tokens)`` over ``texts`` (natural log)."""
    from ..extraction.runners import model_inputs, pad_batch, tokenize

    check_causal(model)
    tok = tokenize(model.tokenizer, texts, max_length)
    side = model.tokenizer.padding_side or "right"
    order = sorted(range(len(texts)), key=lambda k: -len(tok.ids[k]))
    parts = model.parts
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = pad_batch([tok.ids[k] for k in idx], [tok.special[k] for k in idx], model.tokenizer.pad_token_id, side)
            attn, special = batch["attention_mask"].bool(), batch["special_tokens_mask"].bool()
            # Target t is predicted from position t - 1; both must be real tokens, the target not special.
            target_ok = attn[:, 1:] & ~special[:, 1:] & attn[:, :-1]
            hidden = parts.runner(**model_inputs(model, batch)).last_hidden_state[:, :-1]
            head = next(parts.unembed.parameters()).device  # a split model's head may sit on another device
            rows = hidden[target_ok.to(hidden.device)].to(head)
            targets = batch["input_ids"][:, 1:][target_ok].to(head)
            for s in range(0, rows.shape[0], chunk):
                logits = parts.unembed(rows[s:s + chunk]).float()
                if parts.logit_softcap:
                    logits = torch.tanh(logits / parts.logit_softcap) * parts.logit_softcap
                lse = torch.logsumexp(logits, dim=-1)
                total += float((lse - logits.gather(1, targets[s:s + chunk, None])[:, 0]).sum(dtype=torch.float64))
            count += int(target_ok.sum())
            if progress is not None:
                progress.update(len(idx))
    return total, count


def perplexity(model: Any, texts: Sequence[str], *, neurons: Any = None, language: str | None = None,
               value: Any = 0.0, probabilities: Any = None, batch_size: int = 8, max_length: int = 256) -> float:
    """Perplexity of ``texts``; with ``neurons`` (as :func:`~.intervene.neuron_intervention` takes them) under
    that intervention."""
    if neurons is None:
        total, n = nll(model, texts, batch_size=batch_size, max_length=max_length)
    else:
        with neuron_intervention(model, neurons, language=language, value=value, probabilities=probabilities):
            total, n = nll(model, texts, batch_size=batch_size, max_length=max_length)
    if n == 0:
        raise XlingProbeError("no token to predict in these texts (each needs at least two real tokens)")
    return float(np.exp(total / n))


@dataclass(frozen=True, eq=False)
class PerplexityChange:
    """Rows: the language whose neurons are switched off (``off``); columns: the evaluated language (``evaluated``).

    ``base [col]``: perplexity without intervention; ``after [row, col]``: with the row language's neurons at 0;
    ``control [row, col]``: with as many random neurons per block; ``n_neurons [row]``; ``tokens [col]``.
    """

    model: str
    off: tuple[str, ...]
    evaluated: tuple[str, ...]
    base: np.ndarray
    after: np.ndarray
    control: np.ndarray | None
    n_neurons: np.ndarray
    tokens: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for arr in (self.base, self.after, self.control, self.n_neurons, self.tokens):
            if arr is not None:
                arr.setflags(write=False)

    def values(self, measure: str = "ratio", *, control: bool = False) -> np.ndarray:
        """``[row, col]`` of ``measure``: "ratio" (PPL after / before), "difference" (after - before) or "ppl" (after)."""
        if measure not in MEASURES:
            raise XlingProbeError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
        after = self.control if control else self.after
        if after is None:
            raise XlingProbeError("this result has no random control; run perplexity_change(..., control=True)")
        return {"ratio": after / self.base, "difference": after - self.base, "ppl": after}[measure]

    def matrix(self, measure: str = "ratio", *, control: bool = False):
        """DataFrame: rows = neurons switched off (``off``), columns = evaluated language."""
        import pandas as pd

        return pd.DataFrame(self.values(measure, control=control), index=pd.Index(self.off, name="off"),
                            columns=pd.Index(self.evaluated, name="evaluated"))

    def summary(self, measure: str = "ratio") -> dict[str, float]:
        """Mean of the diagonal (a language's own neurons off, evaluated on itself) and of the off-diagonal cells,
        for the selected neurons and for the random control."""
        out: dict[str, float] = {}
        same = np.array([[a == b for b in self.evaluated] for a in self.off])
        for name, use in (("language", False), ("random", True)):
            if use and self.control is None:
                continue
            v = self.values(measure, control=use)
            out[f"{name}_diagonal_mean"] = float(np.nanmean(v[same])) if same.any() else float("nan")
            out[f"{name}_off_diagonal_mean"] = float(np.nanmean(v[~same])) if (~same).any() else float("nan")
        return out

    def to_dataframe(self):
        """Tidy: off, evaluated, n_neurons, tokens, ppl_before, ppl_after, ppl_random, ratio, random_ratio."""
        import pandas as pd

        rows = []
        for i, a in enumerate(self.off):
            for j, b in enumerate(self.evaluated):
                r = {"off": a, "evaluated": b, "n_neurons": int(self.n_neurons[i]), "tokens": int(self.tokens[j]),
                     "ppl_before": float(self.base[j]), "ppl_after": float(self.after[i, j]),
                     "ratio": float(self.after[i, j] / self.base[j])}
                if self.control is not None:
                    r.update(ppl_random=float(self.control[i, j]), random_ratio=float(self.control[i, j] / self.base[j]))
                rows.append(r)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "off": list(self.off), "evaluated": list(self.evaluated),
                "base": self.base.tolist(), "after": self.after.tolist(),
                "control": None if self.control is None else self.control.tolist(),
                "n_neurons": self.n_neurons.tolist(), "tokens": self.tokens.tolist(), "summary": self.summary(),
                "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PerplexityChange:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(d["model"], tuple(d["off"]), tuple(d["evaluated"]), np.asarray(d["base"], float),
                   np.asarray(d["after"], float), None if d["control"] is None else np.asarray(d["control"], float),
                   np.asarray(d["n_neurons"], int), np.asarray(d["tokens"], int), dict(d.get("meta", {})))

    def __repr__(self) -> str:
        s = self.summary()
        return (f"PerplexityChange({self.model!r}, off={list(self.off)}, evaluated={list(self.evaluated)}, "
                + ", ".join(f"{k}={v:.3f}" for k, v in s.items()) + ")")


def perplexity_change(
    model: Any,
    corpus: ParallelCorpus,
    neurons: LanguageNeurons,
    *,
    languages: Iterable[str] | None = None,
    evaluate: Iterable[str] | None = None,
    control: bool = True,
    seed: int = 0,
    batch_size: int = 8,
    max_length: int = 256,
    progress: bool = True,
) -> PerplexityChange:
    """The perplexity-change matrix: rows = ``languages`` whose neurons are deactivated (default: all of the
    selection), columns = ``evaluate`` (default: the same), on the held-out ``corpus`` (sentences the
    selection was not fitted on). With ``control`` each row is repeated with random neurons."""
    from tqdm.auto import tqdm

    if not isinstance(neurons, LanguageNeurons):
        raise XlingProbeError("perplexity_change() needs the result of select_language_neurons()")
    check_causal(model)
    rows = tuple(neurons.language(x) for x in languages) if languages is not None else neurons.languages
    cols = tuple(corpus.resolve_language(x) for x in evaluate) if evaluate is not None else \
        tuple(corpus.resolve_language(x) for x in rows)
    tables = {a: neurons.index(a) for a in rows}
    empty = [a for a, t in tables.items() if not len(t)]
    if len(empty) == len(rows):
        raise XlingProbeError(f"no neuron is assigned to {', '.join(empty)}; lower assign_percentile or raise fraction")
    if empty:
        warnings.warn(f"no neuron is assigned to {', '.join(empty)}: their rows are NaN (lower assign_percentile "
                      "or raise fraction to give them neurons)", stacklevel=2)
    n_runs = len(cols) * (1 + (len(rows) - len(empty)) * (2 if control else 1))
    bar = tqdm(total=n_runs * len(corpus), desc="perplexity", unit="sent", disable=not progress)
    opts = {"batch_size": batch_size, "max_length": max_length, "progress": bar}

    def ppl_all() -> tuple[np.ndarray, np.ndarray]:
        res = [nll(model, corpus.sentences[b], **opts) for b in cols]
        return np.array([np.exp(t / max(n, 1)) for t, n in res]), np.array([n for _, n in res])

    with bar:
        base, tokens = ppl_all()
        after = np.zeros((len(rows), len(cols)))
        rand = np.zeros((len(rows), len(cols))) if control else None
        for i, a in enumerate(rows):
            if not len(tables[a]):
                after[i] = np.nan
                if rand is not None:
                    rand[i] = np.nan
                continue
            with neuron_intervention(model, tables[a]):
                after[i] = ppl_all()[0]
            if rand is not None:
                ctrl = random_like(tables[a], neurons.n_neurons, seed=seed + i, exclude=tables[a])
                with neuron_intervention(model, ctrl):
                    rand[i] = ppl_all()[0]
    return PerplexityChange(model=model.name, off=rows, evaluated=cols, base=base, after=after, control=rand,
                            n_neurons=np.array([len(tables[a]) for a in rows]), tokens=tokens,
                            meta={"sentences": len(corpus), "seed": seed, "measure": "PPL after / PPL before",
                                  "control": "same count per block, random, excluding the language's own neurons",
                                  "selection": neurons.settings})
