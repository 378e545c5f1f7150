"""Segments: a tenant's customers grouped by one property, and an additive metric per group.

A *segmentation* (``by``) maps each customer to one segment value from merged data: ``trait:<name>``
its latest trait value (``schemas.traits``), ``rfm_segment`` its RFM segment (``schemas.rfm``, the
batch cut points applied to merged R/F/M), ``cohort`` the month of its first order
(``schemas.cohorts``). A customer with no such value is in the segment :data:`NO_VALUE` (shown as
null), so the segments of one segmentation partition the tenant's customers. A customer is a merged
customer (``schemas.identity``): its ids' traits, metrics and months merged (:func:`component_raw`),
counted once, a member under its canonical id.

Only metrics that stay exact when a customer is taken out of a segment and put in another can be
shown per segment (:func:`segment_metric`): counts and sums subtract, distinct counts are HLL unions
(DataSketches) — a customer leaving a segment makes serving re-union that segment's members, the one
cost that follows a segment's size rather than the answer. Derived metrics over such bases (net
revenue, AOV) are computed after the bases are merged. Batch publishes per segment its customers and
base states (``schemas.views.SEGMENT_STATS``) and its members (``SEGMENT_MEMBERS``, the drill-down);
serving corrects them for the customers the speed side touched above W (``serving.merge``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import aggregates, rfm
from .catalog import CATALOG, Aggregate, BaseMetric, DerivedMetric, Grain
from .cohorts import month_label
from .traits import TRAITS_BY_NAME

__all__ = [
    "NO_VALUE",
    "SEGMENTATIONS",
    "SEGMENT_BASES",
    "SEGMENT_METRICS",
    "UnknownSegmentation",
    "UnsegmentableMetric",
    "component_raw",
    "segment_metric",
    "segment_of",
    "segmentation",
]

NO_VALUE = ""
"""The segment of customers without a value (no such trait set, never ordered): null in answers.
No real value is empty: string traits are at least one character, RFM segments and months are names."""

SEGMENTATIONS: tuple[str, ...] = (*(f"trait:{t}" for t in TRAITS_BY_NAME), "rfm_segment", "cohort")

_SEGMENTABLE = frozenset({Aggregate.count, Aggregate.sum, Aggregate.hll_distinct})
SEGMENT_BASES: tuple[BaseMetric, ...] = tuple(
    m for m in CATALOG.bases(Grain.customer) if m.aggregate in _SEGMENTABLE
)
"""The customer-grain bases a segment holds (summed, or HLL-unioned, over its customers)."""


class UnknownSegmentation(ValueError):
    pass


class UnsegmentableMetric(ValueError):
    pass


def segmentation(by: str) -> str:
    """``by`` as given, or :class:`UnknownSegmentation` naming the ones that exist."""
    if by not in SEGMENTATIONS:
        raise UnknownSegmentation(f"by must be one of {', '.join(SEGMENTATIONS)}, not {by[:64]!r}")
    return by


def segment_metric(name: str) -> tuple[str, ...]:
    """The segment bases a public customer metric needs, or :class:`UnsegmentableMetric` saying why."""
    bases = {m.name for m in SEGMENT_BASES}
    metric = CATALOG.by_name.get(name)
    if metric is None or metric.grain is not Grain.customer or not metric.public:
        raise UnsegmentableMetric(f"{name[:64]!r} is not a public customer metric")
    if isinstance(metric, BaseMetric) and metric.name in bases:
        return (metric.name,)
    if isinstance(metric, DerivedMetric) and set(metric.operands) <= bases:
        return tuple(metric.operands)
    raise UnsegmentableMetric(
        f"{name}: only counts, sums, distinct counts and metrics derived from them add up over a segment"
    )


def component_raw(batch: list[Mapping[str, Any]], speed: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A merged customer's raw customer metrics (``CATALOG.derive``d) from its ids' batch rows and speed
    states: each base merged over every id, as the profile merges them — what :func:`segment_of` reads."""
    raw = {
        m.name: aggregates.merge_all(m, [b.get(m.name) for b in batch], [s.get(m.name) for s in speed])
        for m in CATALOG.bases(Grain.customer)
    }
    return CATALOG.derive(Grain.customer, raw)


def segment_of(
    by: str,
    *,
    traits: Mapping[str, tuple[int, int, str]],
    raw: Mapping[str, Any] | None,
    first_month: int | None,
    cuts: Mapping[str, Any] | None,
) -> str:
    """A customer's segment from its merged (or batch) state: latest traits, raw customer metrics
    (RFM inputs, ``CATALOG.derive``d), first order month; :data:`NO_VALUE` when it has none."""
    if by.startswith("trait:"):
        state = traits.get(by.removeprefix("trait:"))
        return NO_VALUE if state is None else state[2]
    if by == "cohort":
        return NO_VALUE if first_month is None else month_label(first_month)
    raw = raw or {}
    scores = rfm.scores(raw.get(rfm.R_METRIC), raw.get(rfm.F_METRIC), raw.get(rfm.M_METRIC) or 0, cuts)
    return NO_VALUE if scores is None else scores["segment"]


def _segmentable(name: str) -> bool:
    try:
        segment_metric(name)
    except UnsegmentableMetric:
        return False
    return True


SEGMENT_METRICS: tuple[str, ...] = tuple(
    m.name for m in CATALOG.at(Grain.customer, public_only=True) if _segmentable(m.name)
)
"""The public customer metrics ``GET /v1/segments`` accepts, in catalog order (the dashboard's choice)."""
