"""Mergeable aggregate states: init / update / merge / result, one implementation for every layer.

The speed stores keep these states per offset block and serving merges the batch view's value with
them. Raw states are plain Python values so that both speed stores (embedded, Pinot) return identical
partials: ``count`` an int, ``sum``/``min``/``max`` an int or None (no matching event), and
``hll_distinct`` on the speed side a *set of the raw values* — the speed side is small, and adding
raw values to the batch's DataSketches HLL is an exact union (a Pinot HLL is not a DataSketches
binary, so sketches could not be merged across engines). The batch side's HLL arrives as bytes.
These functions are the embedded store's evaluator; what it cannot compute is ``catalog.engines.EMBEDDED``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import datasketches

from .catalog import Aggregate, BaseMetric
from .compile import HLL_LG_K

__all__ = [
    "Latest",
    "empty",
    "latest",
    "merge",
    "merge_all",
    "merge_latest",
    "merge_milestones",
    "merge_with_batch",
    "reach_milestone",
    "union_sketch",
    "update",
    "updater",
]


def empty(metric: BaseMetric) -> Any:
    match metric.aggregate:
        case Aggregate.count:
            return 0
        case Aggregate.hll_distinct:
            return set()
        case _:
            return None


def _add_count(state: int, _value: Any) -> int:
    return state + 1


def _add_sum(state: Any, value: Any) -> Any:
    return value if state is None else state + value


def _add_min(state: Any, value: Any) -> Any:
    return value if state is None or value < state else state


def _add_max(state: Any, value: Any) -> Any:
    return value if state is None or value > state else state


def _add_distinct(state: set, value: Any) -> set:
    state.add(value)
    return state


_UPDATERS = {
    Aggregate.count: _add_count,
    Aggregate.sum: _add_sum,
    Aggregate.min: _add_min,
    Aggregate.max: _add_max,
    Aggregate.hll_distinct: _add_distinct,
}


def updater(metric: BaseMetric) -> Callable[[Any, Any], Any]:
    """The metric's ``update`` as one function ``(state, value) -> state``, chosen once: what a hot loop
    (the embedded store's ingest) calls per matching row instead of dispatching on the kind every time."""
    try:
        return _UPDATERS[metric.aggregate]
    except KeyError:
        raise NotImplementedError(metric.aggregate) from None


def update(metric: BaseMetric, state: Any, value: Any) -> Any:
    """Fold one matching row's column value (ignored for count) into the state."""
    return updater(metric)(state, value)


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
    match metric.aggregate:
        case Aggregate.sum:
            return a + b
        case Aggregate.min:
            return min(a, b)
        case Aggregate.max:
            return max(a, b)
    raise NotImplementedError(metric.aggregate)  # a new aggregate needs its own merge, never a fallback


def merge_with_batch(metric: BaseMetric, batch: Any, speed: Any) -> Any:
    """Batch view value ⊕ speed state → the merged raw value (a distinct count: its estimate)."""
    if metric.aggregate is Aggregate.hll_distinct:
        return merge_all(metric, [batch], [speed])
    identity = empty(metric)  # None (no matching event) is the monoid's identity on either side
    return merge(metric, identity if batch is None else batch, identity if speed is None else speed)


def merge_all(metric: BaseMetric, batch_values: Iterable[Any], speed_states: Iterable[Any]) -> Any:
    """Any number of batch view values (e.g. several hours) ⊕ speed states → one merged raw value."""
    if metric.aggregate is Aggregate.hll_distinct:
        return round(union_sketch(batch_values, speed_states).get_estimate())
    state = empty(metric)
    for value in (*batch_values, *speed_states):
        state = merge(metric, state, value if value is not None else empty(metric))
    return state


def union_sketch(
    batch_values: Iterable[bytes | None], speed_states: Iterable[Any]
) -> datasketches.hll_sketch:
    """The DataSketches HLL union of batch sketch binaries and speed-side raw values (distinct counts)."""
    union = datasketches.hll_union(HLL_LG_K)
    for blob in batch_values:
        if blob:
            union.update(datasketches.hll_sketch.deserialize(blob))
    sketch = union.get_result(datasketches.tgt_hll_type.HLL_8)
    for state in speed_states:
        for value in state or ():
            sketch.update(value)
    return sketch


def reach_milestone(state: dict[str, int | None], name: str, t: int | None) -> None:
    """Fold one time into a milestone state in place: the first time reached wins (None: not reached)."""
    if t is not None and (state.get(name) is None or t < state[name]):
        state[name] = t
    else:
        state.setdefault(name, None)


def merge_milestones(*states: Mapping[str, int | None] | None) -> dict[str, int | None] | None:
    """Entity states merge as a min per milestone (first time reached); None when there is no state."""
    present = [s for s in states if s]
    if not present:
        return None
    out: dict[str, int | None] = dict(present[0])
    for state in present[1:]:
        for name, t in state.items():
            reach_milestone(out, name, t)
    return out


Latest = tuple[int, int, str]
"""A "latest" state: ``(event_time, offset, value)`` of the event that set the value last."""


def latest(state: Latest | None, candidate: Latest | None) -> Latest | None:
    """Latest by ``(event_time, offset)``: the greater pair wins (None, no value set, is the identity).

    A monoid, commutative and idempotent, so batch ⊕ speed in any order and any grouping agree. The
    offset breaks event-time ties in ingestion order: every event of a customer shares its key, hence its
    partition, so two of its offsets always compare (equal pairs are one event, one value). Spark
    computes the same order as ``MAX(STRUCT(event_time, offset, value))`` (``compile.SparkSql.latest``).
    """
    if state is None:
        return candidate
    if candidate is None:
        return state
    return candidate if (candidate[0], candidate[1]) > (state[0], state[1]) else state


def merge_latest(*states: Mapping[str, Latest] | None) -> dict[str, Latest]:
    """Per-name latest states (a customer's traits) merged name by name."""
    out: dict[str, Latest] = {}
    for state in states:
        for name, value in (state or {}).items():
            out[name] = latest(out.get(name), tuple(value))
    return out
