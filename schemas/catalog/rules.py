"""The catalog's validation rules: small functions, one named message each (metricflow's validators).

Each rule takes the catalog and returns its problems as ``"<rule-name>: <what, which metric>"``. The
rules run in stages: the first checks that every reference resolves (names, columns, operands,
entities, engines); the second needs a well-formed catalog (derived order, series) and checks what
pages and analyses rely on. :class:`~.registry.Catalog` runs them when it is built, so a broken
catalog fails at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import cohorts, rfm
from ..events import FAMILY_BY_EVENT_TYPE, ROW_COLUMNS
from .engines import ENGINES
from .model import (
    GRAIN_KEYS,
    NUMERIC_TYPES,
    Aggregate,
    BaseMetric,
    CatalogError,
    DerivedMetric,
    DurationMetric,
    EntityCountMetric,
    Grain,
    Unit,
)

if TYPE_CHECKING:
    from .registry import Catalog

__all__ = ["RULES", "Rule"]

Rule = Callable[["Catalog"], list[str]]


def unique_names(cat: Catalog) -> list[str]:
    seen, dup = set(), set()
    for m in cat.metrics:
        (dup if m.name in seen else seen).add(m.name)
    return [f"unique-names: metric {n!r} is defined more than once" for n in sorted(dup)]


def known_event_types(cat: Catalog) -> list[str]:
    out = []
    for m in cat.of_kind(BaseMetric):
        if m.filter.event_types != "*":
            out += [
                f"known-event-types: {m.name} filters on unknown event type {t!r}"
                for t in m.filter.event_types
                if t not in FAMILY_BY_EVENT_TYPE
            ]
    for e in cat.entities:
        out += [
            f"known-event-types: entity {e.name}.{ms.name} uses unknown event type {ms.event_type!r}"
            for ms in e.milestones
            if ms.event_type not in FAMILY_BY_EVENT_TYPE
        ]
    return out


def columns_exist_and_fit(cat: Catalog) -> list[str]:
    out = []
    for m in cat.of_kind(BaseMetric):
        for col in (*m.filter.non_null, *([m.column] if m.column else [])):
            if col not in ROW_COLUMNS:
                out.append(f"known-columns: {m.name} uses unknown column {col!r}")
        if (m.aggregate is Aggregate.count) != (m.column is None):
            out.append(f"count-has-no-column: {m.name} ({m.aggregate}) column={m.column!r}")
        if m.aggregate is Aggregate.sum and ROW_COLUMNS.get(m.column) not in NUMERIC_TYPES:
            out.append(f"numeric-sum: {m.name} sums non-numeric column {m.column!r}")
        for key in GRAIN_KEYS[m.grain]:
            if key not in ("tenant_id", "customer_id") and key not in m.filter.non_null:
                out.append(f"grain-key-present: {m.name} at {m.grain} grain must filter {key} non-null")
    for e in cat.entities:
        if e.id_column not in ROW_COLUMNS:
            out.append(f"known-columns: entity {e.name} id column {e.id_column!r} unknown")
    return out


def engine_support(cat: Catalog) -> list[str]:
    """Every engine computes every base metric (each engine's gaps are data: ``engines.py``)."""
    return [
        f"engine-support: {m.name}: {reason}"
        for m in cat.of_kind(BaseMetric)
        for engine in ENGINES
        if (reason := engine.refusal(m))
    ]


def derived_operands(cat: Catalog) -> list[str]:
    out = []
    for m in cat.of_kind(DerivedMetric):
        for op in m.operands:
            base = cat.by_name.get(op)
            if base is None:
                out.append(f"derived-bases-exist: {m.name} uses undefined metric {op!r}")
            elif base.grain != m.grain:
                out.append(f"derived-same-grain: {m.name} ({m.grain}) uses {op} ({base.grain})")
            elif not isinstance(base, BaseMetric | DerivedMetric):
                out.append(f"derived-of-mergeable: {m.name} uses {op}, a {base.kind} metric")
    if not out:
        try:
            for grain in Grain:
                cat.derived_in_order(grain)
        except CatalogError as exc:
            out.append(str(exc))
    return out


def unit_algebra(cat: Catalog) -> list[str]:
    """A ratio or difference must come out in the unit it claims (finalize converts by unit)."""
    out = []
    for m in cat.of_kind(DerivedMetric):
        units = [cat.by_name[o].unit for o in m.operands if o in cat.by_name]
        if len(units) != 2:
            continue
        a, b = units
        if m.op == "difference":
            expected = a if a == b else None
        else:
            expected = {
                (Unit.currency, Unit.count): Unit.currency,
                (Unit.count, Unit.count): Unit.ratio,
                (Unit.currency, Unit.currency): Unit.ratio,
                (Unit.score, Unit.count): Unit.score,
            }.get((a, b))
        if expected != m.unit:
            out.append(f"unit-algebra: {m.name} = {m.formula} over ({a}, {b}) cannot be {m.unit}")
    return out


def entity_references(cat: Catalog) -> list[str]:
    out = []
    names = {e.name: e for e in cat.entities}
    for m in [*cat.of_kind(DurationMetric), *cat.of_kind(EntityCountMetric)]:
        entity = names.get(m.entity)
        if entity is None:
            out.append(f"entity-exists: {m.name} uses undefined entity {m.entity!r}")
            continue
        known = {ms.name for ms in entity.milestones}
        used = (m.start, m.end) if isinstance(m, DurationMetric) else (*m.present, *m.absent)
        used = (*used, *((m.window_on,) if m.window_on else ()))
        out += [
            f"milestone-exists: {m.name} uses unknown milestone {u!r} of {m.entity}"
            for u in used
            if u not in known
        ]
        if m.windowed != (m.window_on is not None):
            out.append(f"window-milestone: {m.name} windowed={m.windowed} needs window_on exactly then")
        if m.grain is Grain.campaign:
            out.append(f"entity-grain: {m.name}: entity metrics are customer or tenant grain")
        if m.grain is Grain.customer and m.windowed:
            out.append(f"entity-grain: {m.name}: customer-grain entity metrics are not windowed")
    return out


def display_hints(cat: Catalog) -> list[str]:
    """Pages take their defaults from the dictionary: one primary per grain, shown, chartable."""
    out = [
        f"display-public: {m.name} is not public but has a display hint"
        for m in cat.metrics
        if not m.public and (m.primary or m.headline is not None)
    ]
    for grain in Grain:
        public = cat.at(grain, public_only=True)
        primary = [m.name for m in public if m.primary]
        if public and len(primary) != 1:
            out.append(f"one-primary: {grain} grain needs exactly one primary metric, has {primary}")
        charted = grain is not Grain.tenant  # customer and campaign pages chart their primary
        out += [
            f"primary-has-series: {name} is the {grain} primary but has no time series"
            for name in primary
            if charted and name not in cat.series(grain)
        ]
        ranks = [m.headline for m in public if m.headline is not None]
        if len(ranks) != len(set(ranks)):
            out.append(f"headline-ranks-unique: {grain} grain repeats a headline rank in {sorted(ranks)}")
    return out


def analysis_inputs(cat: Catalog) -> list[str]:
    """RFM and cohort retention are analyses beside the catalog; the metrics they read must be in it."""
    wanted = {rfm.R_METRIC: Unit.timestamp, rfm.F_METRIC: Unit.count, rfm.M_METRIC: Unit.currency}
    out = [
        f"analysis-inputs: RFM reads {name!r}, which is not a customer {unit} metric"
        for name, unit in wanted.items()
        if name not in cat.by_name or cat[name].grain is not Grain.customer or cat[name].unit is not unit
    ]
    if cohorts.COHORT_METRIC not in cat.series(Grain.customer):
        out.append(f"analysis-inputs: cohorts read {cohorts.COHORT_METRIC!r}, not a customer series metric")
    return out


RULES: tuple[tuple[Rule, ...], ...] = (
    (
        unique_names,
        known_event_types,
        columns_exist_and_fit,
        engine_support,
        derived_operands,
        unit_algebra,
        entity_references,
    ),
    (display_hints, analysis_inputs),
)
"""Stages of rules; a stage runs only when every earlier stage found nothing."""
