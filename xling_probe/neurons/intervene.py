"""Interventions on FFN neurons during the forward pass (scoring and ``model.generate``).

:func:`neuron_intervention` puts a forward pre-hook on the down projection of every block that holds
one of the neurons and overwrites those coordinates of its input (the neuron vector, see
:mod:`.locate`) with a value: 0 deactivates them (Tang et al. 2024 set the activation to 0, which
zeroes the product in gated FFNs too), a number or one value per neuron sets them (e.g. the mean
activation of a language, :attr:`~.probabilities.ActivationProbabilities.means`, to steer towards it).
It is the same as zeroing (or, for a constant, replacing) the down projection's *input* columns
of those neurons, at every position. The hooks are removed when the ``with`` block ends, also on an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import XlingProbeError
from .locate import find_ffn
from .selection import LanguageNeurons, neuron_table


@dataclass(frozen=True)
class Intervention:
    """What a running intervention does: ``table [n, 2]`` (block, neuron), ``values [n]``, the blocks hooked."""

    table: np.ndarray
    values: np.ndarray
    blocks: tuple[int, ...]


def as_table(neurons: Any, language: str | None = None) -> np.ndarray:
    """``[n, 2]`` (block, neuron) of a :class:`LanguageNeurons` (with ``language``), ``{block: indices}`` or rows."""
    if isinstance(neurons, LanguageNeurons):
        if language is None:
            raise XlingProbeError("a LanguageNeurons selection holds several languages: pass language=")
        return neurons.index(language)
    if language is not None:
        raise XlingProbeError("language= only applies to a LanguageNeurons selection")
    return neuron_table(neurons)


def check_table(table: np.ndarray, n_layers: int, n_neurons: int) -> None:
    """Refuse a block or a neuron index out of range, naming it and the valid range."""
    bad_block = table[(table[:, 0] < 0) | (table[:, 0] >= n_layers)]
    if len(bad_block):
        raise XlingProbeError(f"block {int(bad_block[0, 0])} out of range: the model has blocks 0..{n_layers - 1}")
    bad = table[(table[:, 1] < 0) | (table[:, 1] >= n_neurons)]
    if len(bad):
        raise XlingProbeError(f"neuron index {int(bad[0, 1])} (block {int(bad[0, 0])}) out of range: each block has "
                              f"{n_neurons} neurons (0..{n_neurons - 1})")


def intervention_values(table: np.ndarray, value: Any, probabilities: Any = None, language: str | None = None,
                        scale: float = 1.0) -> np.ndarray:
    """One value per row of ``table``: a number, ``[n]`` values, or ``"mean"`` (``language``'s mean activation of
    each neuron from ``probabilities``), times ``scale``."""
    if isinstance(value, str):
        if value != "mean":
            raise XlingProbeError(f"value must be a number, one number per neuron or 'mean', got {value!r}")
        if probabilities is None or language is None:
            raise XlingProbeError("value='mean' needs probabilities= (from activation_probabilities) and the language "
                                  "whose mean activation to set")
        means = probabilities.sel(language, what="means")
        if table.size and (table[:, 0].max() >= means.shape[0] or table[:, 1].max() >= means.shape[1]):
            raise XlingProbeError("these probabilities come from a model with fewer blocks or neurons than the neuron set")
        vals = means[table[:, 0], table[:, 1]] if len(table) else np.zeros(0)
    else:
        vals = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(table),)) if np.ndim(value) == 0 else \
            np.asarray(value, dtype=np.float64)
        if vals.shape != (len(table),):
            raise XlingProbeError(f"got {vals.shape[0]} values for {len(table)} neurons")
    return np.asarray(vals, dtype=np.float64) * float(scale)


@contextmanager
def neuron_intervention(model: Any, neurons: Any, *, value: Any = 0.0, language: str | None = None,
                        probabilities: Any = None, value_language: str | None = None,
                        scale: float = 1.0) -> Iterator[Intervention]:
    """Inside the ``with`` block, the neurons are set to ``value`` at every position of every forward pass.

    ``neurons``: a :class:`LanguageNeurons` with ``language=`` (that language's neurons), ``{block: indices}``
    or ``[n, 2]`` (block, neuron) rows. ``value``: 0 (deactivate, the default), a number, one number per
    neuron, or ``"mean"``: the mean activation of ``value_language`` (default ``language``) in
    ``probabilities``, times ``scale``.
    """
    sites = find_ffn(model)
    widths = {s.n_neurons for s in sites}
    table = as_table(neurons, language)
    check_table(table, len(sites), min(widths))
    vals = intervention_values(table, value, probabilities, value_language or language, scale)
    hooks = []
    try:
        for block in np.unique(table[:, 0]):
            rows = table[:, 0] == block
            site = sites[int(block)]
            weight = getattr(site.down, "weight", None)
            device = weight.device if isinstance(weight, torch.Tensor) else model.device
            idx = torch.as_tensor(table[rows, 1], dtype=torch.long, device=device)
            val = torch.as_tensor(vals[rows], dtype=torch.float32, device=device)

            def pre(_module, args, idx=idx, val=val):
                x = args[0].clone()
                x[..., idx] = val.to(dtype=x.dtype, device=x.device)
                return (x, *args[1:])

            hooks.append(site.down.register_forward_pre_hook(pre))
        yield Intervention(table=table, values=vals, blocks=tuple(int(b) for b in np.unique(table[:, 0])))
    finally:
        for h in hooks:
            h.remove()


def random_like(neurons: Mapping[int, Any] | np.ndarray, n_neurons: int, *, seed: int = 0,
                exclude: np.ndarray | None = None) -> np.ndarray:
    """A random control set: as many neurons per block as ``neurons`` has, drawn uniformly without
    replacement from that block (leaving out the rows of ``exclude``), seeded. Returns ``[n, 2]``."""
    table = neuron_table(neurons)
    rng = np.random.default_rng(seed)
    out = []
    for block in np.unique(table[:, 0]):
        need = int((table[:, 0] == block).sum())
        pool = np.arange(n_neurons)
        if exclude is not None and len(exclude):
            pool = np.setdiff1d(pool, exclude[exclude[:, 0] == block, 1])
        if need > len(pool):
            raise XlingProbeError(f"block {int(block)} has only {len(pool)} neurons to draw {need} random ones from")
        pick = np.sort(rng.choice(pool, size=need, replace=False))
        out.extend((int(block), int(i)) for i in pick)
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)
