"""Which registered metrics an answer may carry: those both sides can answer for at this snapshot.

A registered base metric is exact only when the batch version holds it (its backfill published it into
the registered views) *and* this worker's speed store aggregates it for every event at or above W (its
catalog was loaded before it consumed from the partitions' start). A metric that lacks either side is
*pending*: left out of profiles and refused for series (503), never answered with one side only — that
would be a silent undercount. A derived metric is pending when any metric it uses is.
"""

from __future__ import annotations

from lambdalytics.schemas.catalog import Catalog, DerivedMetric, Grain
from lambdalytics.schemas.registered import file_bases
from lambdalytics.speed.store import CoverageError

__all__ = ["MetricPending", "pending"]


class MetricPending(CoverageError):
    """A registered metric one side cannot answer for yet (503 with the reason)."""


def pending(catalog: Catalog, held: frozenset[str]) -> frozenset[str]:
    """The metric names of ``catalog`` — the speed store's, so every metric in it is aggregated from the
    partitions' start — that an answer leaves out: registered bases the batch version does not hold
    (``held``), and what derives from them. Called once per batch version (``serving.merge``)."""
    out = {m.name for m in file_bases(catalog) if m.name not in held}
    for metric in catalog.derived_in_order(Grain.customer):
        if isinstance(metric, DerivedMetric) and any(o in out for o in metric.operands):
            out.add(metric.name)
    return frozenset(out)
