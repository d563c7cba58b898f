"""Interleaved timing of variants against a floor, for a shared machine.

Every unit of work (a language's batches, a batch of prompts, ...) runs every variant once, in an
order rotated by the unit's index (unit 0: a b c, unit 1: b c a, ...), so a burst of load from
another process hits every variant about equally. Each variant's figure is the median over units
of its per-unit ratio to the floor measured on the same unit; the load average is recorded with
each unit. Ratios are what to compare between runs; absolute seconds move with the load.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def interleaved(units: Sequence[Any], variants: dict[str, Callable[[Any], Any]], floor: str, *,
                rounds: int = 1, warmup: bool = True) -> dict[str, Any]:
    """Time ``variants[name](unit)`` for every unit (``rounds`` times), interleaved; ratios to ``floor``.

    Returns ``seconds[name]`` (per unit and round), ``speed_vs_floor[name]`` (median of floor time /
    variant time: 1.0 = as fast as the floor, 0.5 = twice as slow), ``cost_vs_floor[name]`` (its
    inverse, the median of variant time / floor time), ``load_avg_1min`` (at each unit's start and
    end) and the order each unit ran in.
    """
    names = list(variants)
    if floor not in variants:
        raise ValueError(f"floor {floor!r} is not one of the variants {names}")
    if warmup and units:
        for name in names:
            variants[name](units[0])
    seconds: dict[str, list[float]] = {n: [] for n in names}
    loads, orders = [], []
    k = 0
    for _ in range(rounds):
        for unit in units:
            order = names[k % len(names):] + names[:k % len(names)]
            k += 1
            start_load = os.getloadavg()[0]
            for name in order:
                t0 = time.perf_counter()
                variants[name](unit)
                seconds[name].append(time.perf_counter() - t0)
            loads.append([round(start_load, 2), round(os.getloadavg()[0], 2)])
            orders.append(order)
    base = seconds[floor]
    speed = {n: statistics.median(b / t for b, t in zip(base, seconds[n])) for n in names}
    cost = {n: statistics.median(t / b for b, t in zip(base, seconds[n])) for n in names}
    return {"floor": floor, "units": len(units), "rounds": rounds,
            "speed_vs_floor": {n: round(v, 4) for n, v in speed.items()},
            "cost_vs_floor": {n: round(v, 4) for n, v in cost.items()},
            "median_seconds": {n: round(statistics.median(v), 4) for n, v in seconds.items()},
            "seconds": {n: [round(x, 4) for x in v] for n, v in seconds.items()},
            "load_avg_1min": loads, "orders": orders}


def merge_json(path, key: str, value: Any) -> dict:
    """Set ``key`` in the JSON object at ``path`` (created when missing), keeping its other keys."""
    import json
    from pathlib import Path

    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return data


def bare_eager_runner(handle):
    """The base model of ``handle`` as a separate copy with eager attention and no TransformerLens wrapping:
    the floor of the TL backend (whose bridge wraps its own model's modules in place, eager attention)."""
    import copy

    from xling_probe.models.arch import find_parts

    model = copy.deepcopy(handle.model)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:  # older transformers
        model.config._attn_implementation = "eager"
    return find_parts(model).runner.eval()
