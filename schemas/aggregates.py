"""Mergeable aggregate states: init / update / merge / result, one implementation for every layer.

The speed stores keep these states per offset block and serving merges the batch view's value with
them. Raw states are plain Python values so that both speed stores (embedded, Pinot) return identical
partials: ``count`` an int, ``sum``/``min``/``max`` an int or None (no matching event), and
``hll_distinct`` on the speed side a *set of the raw values* — the speed side is small, and adding
raw values to the batch's DataSketches HLL is an exact union (a Pinot HLL is not a DataSketches
binary, so sketches could not be merged across engines). The batch side's HLL arrives as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import datasketches

from .catalog import Aggregate, BaseMetric
from .compile import HLL_LG_K

__all__ = ["empty", "merge", "merge_with_batch", "result", "update"]


def empty(metric: BaseMetric) -> Any:
    match metric.aggregate:
        case Aggregate.count:
            return 0
        case Aggregate.hll_distinct:
            return set()
        case _:
            return None


def update(metric: BaseMetric, state: Any, value: Any) -> Any:
    """Fold one matching row's column value (ignored for count) into the state."""
    match metric.aggregate:
        case Aggregate.count:
            return state + 1
        case Aggregate.sum:
            return value if state is None else state + value
        case Aggregate.min:
            return value if state is None or value < state else state
        case Aggregate.max:
            return value if state is None or value > state else state
        case Aggregate.hll_distinct:
            state.add(value)
            return state
    raise NotImplementedError(metric.aggregate)


def merge(metric: BaseMetric, a: Any, b: Any) -> Any:
    """Merge two speed-side states (monoid: ``merge(empty, x) == x``)."""
    if metric.aggregate is Aggregate.count:
        return a + b
    if metric.aggregate is Aggregate.hll_distinct:
        return set(a) | set(b)
    if a is None:
        return b
    if b is None:
        return a
    if metric.aggregate is Aggregate.sum:
        return a + b
    return min(a, b) if metric.aggregate is Aggregate.min else max(a, b)


def merge_with_batch(metric: BaseMetric, batch: Any, speed: Any) -> Any:
    """Batch view value ⊕ speed state → the merged raw value."""
    if metric.aggregate is Aggregate.hll_distinct:
        sketch = (
            datasketches.hll_sketch.deserialize(batch)
            if batch
            else datasketches.hll_sketch(HLL_LG_K, datasketches.tgt_hll_type.HLL_8)
        )
        for value in speed or ():
            sketch.update(value)
        return sketch
    return merge(
        metric, batch if batch is not None else empty(metric), speed if speed is not None else empty(metric)
    )


def result(metric: BaseMetric, state: Any) -> Any:
    """A merged state → the metric's raw value (a distinct count is the rounded HLL estimate)."""
    if metric.aggregate is Aggregate.hll_distinct:
        if isinstance(state, set | frozenset):
            return len(state)
        if isinstance(state, bytes):
            state = datasketches.hll_sketch.deserialize(state)
        return 0 if state is None else round(state.get_estimate())
    return state


def fold(metric: BaseMetric, values: Iterable[Any]) -> Any:
    state = empty(metric)
    for value in values:
        state = update(metric, state, value)
    return state
