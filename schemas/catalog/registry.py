"""The :class:`Catalog`: a validated, immutable set of metrics and entities, and every question about
them that needs more than one entry (derived order, which metrics have a time series, which add up,
which metrics an entity feeds) — answered here once, so no engine, route or page re-derives them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from .model import (
    Aggregate,
    BaseMetric,
    CatalogError,
    DerivedMetric,
    DurationMetric,
    Entity,
    EntityCountMetric,
    Grain,
    Metric,
    _Frozen,
)
from .rules import RULES

__all__ = ["Catalog"]


class Catalog(_Frozen):
    entities: tuple[Entity, ...]
    metrics: tuple[Metric, ...]

    def model_post_init(self, _context: Any) -> None:
        for stage in RULES:
            problems = [problem for rule in stage for problem in rule(self)]
            if problems:
                raise CatalogError("metric catalog is invalid:\n- " + "\n- ".join(problems))

    @cached_property
    def by_name(self) -> dict[str, Metric]:
        return {m.name: m for m in self.metrics}

    def __getitem__(self, name: str) -> Metric:
        return self.by_name[name]

    def entity(self, name: str) -> Entity:
        return next(e for e in self.entities if e.name == name)

    @cached_property
    def _memo(self) -> dict[tuple, Any]:
        """Selections computed once: the catalog is immutable and the serving hot path asks per request."""
        return {}

    def _once(self, key: tuple, compute) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def at(self, grain: Grain, kind: type | None = None, *, public_only: bool = False) -> tuple[Metric, ...]:
        return self._once(
            ("at", grain, kind, public_only),
            lambda: tuple(
                m
                for m in self.metrics
                if m.grain == grain
                and (kind is None or isinstance(m, kind))
                and (m.public or not public_only)
            ),
        )

    def of_kind(self, kind: type) -> list[Any]:
        return [m for m in self.metrics if isinstance(m, kind)]

    def bases(self, grain: Grain) -> tuple[BaseMetric, ...]:
        return self.at(grain, BaseMetric)  # type: ignore[return-value]

    def derived_in_order(self, grain: Grain) -> tuple[DerivedMetric, ...]:
        """Derived metrics of a grain, each after the derived metrics it uses (CatalogError on a cycle)."""
        return self._once(("derived_in_order", grain), lambda: tuple(self._order_derived(grain)))

    def _order_derived(self, grain: Grain) -> list[DerivedMetric]:
        ordered: list[DerivedMetric] = []
        pending = list(self.at(grain, DerivedMetric))
        while pending:
            ready = [
                d
                for d in pending
                if all(not isinstance(self[o], DerivedMetric) or self[o] in ordered for o in d.operands)
            ]
            if not ready:
                raise CatalogError(f"derived-acyclic: cycle among {sorted(d.name for d in pending)}")
            ordered += ready
            pending = [d for d in pending if d not in ready]
        return ordered

    def derive(self, grain: Grain, values: dict[str, Any]) -> dict[str, Any]:
        """Merged base values of one group → the same dict plus every derived metric (raw units)."""
        out = dict(values)
        for metric in self.derived_in_order(grain):
            out[metric.name] = metric.compute(out)
        return out

    def series(self, grain: Grain) -> dict[str, Metric]:
        """Metrics that can be bucketed by time: time-series bases and derivations of them only."""

        def compute() -> dict[str, Metric]:
            out: dict[str, Metric] = {m.name: m for m in self.bases(grain) if m.timeseries}
            for d in self.derived_in_order(grain):
                if all(o in out for o in d.operands):
                    out[d.name] = d
            return out

        return self._once(("series", grain), compute)

    def additive(self, name: str) -> bool:
        """Buckets add up to the total (counts, sums and their differences): a bucket without events is a
        true 0, so charts draw bars; for ratios, extremes and averages a missing bucket has no value."""
        m = self[name]
        if isinstance(m, BaseMetric):
            return m.aggregate in (Aggregate.count, Aggregate.sum)
        return isinstance(m, DerivedMetric) and m.op == "difference" and all(map(self.additive, m.operands))

    def entity_metrics(self, grain: Grain) -> dict[str, tuple[DurationMetric | EntityCountMetric, ...]]:
        """Per entity name, the metrics of this grain computed from its merged milestone states."""

        def compute():
            found = [m for m in self.at(grain) if isinstance(m, DurationMetric | EntityCountMetric)]
            return {
                e.name: tuple(m for m in found if m.entity == e.name)
                for e in self.entities
                if any(m.entity == e.name for m in found)
            }

        return self._once(("entity_metrics", grain), compute)

    def describe(self) -> list[dict[str, Any]]:
        """The public metric dictionary (``GET /v1/metrics``): what a metric is and how to show it."""
        series = {grain: self.series(grain) for grain in Grain}
        return [
            {
                "name": m.name,
                "label": m.label,
                "short_label": m.short_label or m.label,
                "description": m.description,
                "grain": m.grain.value,
                "formula": m.formula,
                "unit": m.unit.value,
                "series": m.name in series[m.grain],
                "additive": self.additive(m.name),
                "primary": m.primary,
                "headline": m.headline,
                "caption": m.caption,
            }
            for m in self.metrics
            if m.public
        ]
