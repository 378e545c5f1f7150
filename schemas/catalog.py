"""The metric catalog: every metric defined once, as data.

Batch (Spark), the embedded speed store, Pinot SQL and the serving merge are all compiled from
these entries; no other module writes a metric formula. Four kinds, from a closed set:

- :class:`BaseMetric` — a *mergeable* aggregate (count, sum, min, max, HLL distinct, KLL quantiles)
  of one column over the events that pass a filter, at a grain. Batch and speed each compute it over
  their side of the offset watermark; serving merges the two partials.
- :class:`DerivedMetric` — arithmetic over merged metrics of the same grain (AOV, CTR, ...). Never
  merged itself: merging ratios is the classic lambda-architecture bug, and the types prevent it.
- :class:`DurationMetric` — per-entity durations (ticket first response, order wait). The two
  milestones of one ticket may fall on different sides of the batch/speed boundary, so the
  mergeable state is the entity's :class:`Milestone` times (a min per milestone); the duration and its
  mean or quantile are computed only after the entity states are merged.
- :class:`EntityCountMetric` — entities in a state (orders placed but neither delivered nor cancelled),
  again from merged entity states.

Money is summed in integer micro-units (``amount_micros``), so sums are exact and associative;
:func:`finalize` turns a raw value into the unit the API shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .events import FAMILY_BY_EVENT_TYPE, MICROS, ROW_COLUMNS

__all__ = [
    "Aggregate",
    "BaseMetric",
    "CATALOG",
    "Catalog",
    "CatalogError",
    "DerivedMetric",
    "DurationMetric",
    "Entity",
    "EntityCountMetric",
    "EventFilter",
    "Grain",
    "Metric",
    "Milestone",
    "Unit",
    "finalize",
]


HOUR_MS = 3_600_000
"""Width of a time-series bucket (event-time hours, epoch ms); day answers merge 24 of them."""


class Grain(StrEnum):
    customer = "customer"
    campaign = "campaign"
    tenant = "tenant"


GRAIN_KEYS: dict[Grain, tuple[str, ...]] = {
    Grain.customer: ("tenant_id", "customer_id"),
    Grain.campaign: ("tenant_id", "campaign_id"),
    Grain.tenant: ("tenant_id",),
}
"""The row columns that identify one group at each grain. The tenant is always part of the key."""


class Aggregate(StrEnum):
    count = "count"
    sum = "sum"
    min = "min"
    max = "max"
    hll_distinct = "hll_distinct"  # DataSketches HLL: the same binary in Spark, Python and on the wire
    kll_quantiles = "kll_quantiles"  # DataSketches KLL (doubles)


class Unit(StrEnum):
    count = "count"
    currency = "currency"  # raw values are micro-units; shown in currency units
    timestamp = "timestamp"  # raw values are UTC epoch ms; shown as ISO 8601
    seconds = "seconds"  # raw values are milliseconds; shown in seconds
    ratio = "ratio"
    score = "score"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventFilter(_Frozen):
    """Events of these types whose ``non_null`` columns are all set."""

    event_types: tuple[str, ...] | Literal["*"]
    non_null: tuple[str, ...] = ()

    def describe(self) -> str:
        types = "all events" if self.event_types == "*" else " or ".join(self.event_types)
        return types + "".join(f" with {c}" for c in self.non_null)


class _Metric(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    grain: Grain
    unit: Unit
    public: bool = True  # False: a helper base (e.g. csat_score_sum), not shown as its own metric


class BaseMetric(_Metric):
    kind: Literal["base"] = "base"
    filter: EventFilter
    aggregate: Aggregate
    column: str | None = None  # None only for count
    timeseries: bool = True  # kept per hour bucket in the time-series views

    @property
    def formula(self) -> str:
        arg = self.column or "*"
        return f"{self.aggregate.value}({arg}) over {self.filter.describe()}"


class DerivedMetric(_Metric):
    kind: Literal["derived"] = "derived"
    op: Literal["ratio", "difference"]
    operands: tuple[str, str]

    @property
    def formula(self) -> str:
        a, b = self.operands
        return f"{a} / {b}" if self.op == "ratio" else f"{a} - {b}"

    def compute(self, values: dict[str, Any]) -> int | float | None:
        """Apply the formula to merged raw values. A ratio with a zero or missing denominator is None."""
        a, b = (values.get(o) for o in self.operands)
        a = 0 if a is None else a  # a missing base is an empty aggregate: 0 (also for arrays)
        if self.op == "difference":
            return a - (0 if b is None else b)
        if not b:
            return None
        return a / b


class Milestone(_Frozen):
    """The first time (min ``event_time``) an entity saw one of these event types."""

    name: str
    event_type: str


class Entity(_Frozen):
    """A business object whose lifecycle spans several events (a ticket, an order).

    Its mergeable state is, per (tenant, customer, entity id), the min ``event_time`` of each milestone.
    """

    name: str
    id_column: str
    milestones: tuple[Milestone, ...]

    def milestone(self, name: str) -> Milestone:
        return next(m for m in self.milestones if m.name == name)


class DurationMetric(_Metric):
    """Per entity ``end - start`` (both milestones present), then the mean or a quantile over entities.

    With ``window``, only entities whose ``window_on`` milestone lies in [now - window, now] count
    (the window length is a query parameter). Quantiles are exact, nearest-rank.
    """

    kind: Literal["duration"] = "duration"
    entity: str
    start: str
    end: str
    statistic: Literal["mean"] | Annotated[float, Field(gt=0, lt=1)]
    windowed: bool = False
    window_on: str | None = None

    def compute(
        self,
        states: Iterable[Mapping[str, int | None]],
        *,
        now_ms: int | None = None,
        window_ms: int | None = None,
    ) -> float | None:
        """Merged entity milestone states → the statistic in ms (None when no entity qualifies)."""
        durations = sorted(
            s[self.end] - s[self.start]
            for s in states
            if s.get(self.start) is not None
            and s.get(self.end) is not None
            and _in_window(self, s, now_ms, window_ms)
        )
        if not durations:
            return None
        if self.statistic == "mean":
            return sum(durations) / len(durations)
        rank = max(1, math.ceil(self.statistic * len(durations)))  # nearest rank
        return float(durations[rank - 1])

    @property
    def formula(self) -> str:
        stat = "mean" if self.statistic == "mean" else f"p{round(self.statistic * 100)}"
        window = f", {self.window_on} within the window" if self.windowed else ""
        return f"{stat}({self.entity}.{self.end} - {self.entity}.{self.start}) per {self.entity}{window}"


class EntityCountMetric(_Metric):
    """Entities that reached every ``present`` milestone and none of the ``absent`` ones."""

    kind: Literal["entity_count"] = "entity_count"
    entity: str
    present: tuple[str, ...]
    absent: tuple[str, ...] = ()
    windowed: bool = False
    window_on: str | None = None

    def compute(
        self,
        states: Iterable[Mapping[str, int | None]],
        *,
        now_ms: int | None = None,
        window_ms: int | None = None,
    ) -> int:
        return sum(
            1
            for s in states
            if all(s.get(p) is not None for p in self.present)
            and all(s.get(a) is None for a in self.absent)
            and _in_window(self, s, now_ms, window_ms)
        )

    @property
    def formula(self) -> str:
        text = f"count({self.entity}) with {' and '.join(self.present)}"
        if self.absent:
            text += f" and without {' or '.join(self.absent)}"
        return text + (f", {self.window_on} within the window" if self.windowed else "")


def _in_window(
    metric: DurationMetric | EntityCountMetric,
    state: Mapping[str, int | None],
    now_ms: int | None,
    window_ms: int | None,
) -> bool:
    if not metric.windowed:
        return True
    if now_ms is None or window_ms is None:
        raise ValueError(f"{metric.name} is windowed: pass now_ms and window_ms")
    t = state.get(metric.window_on)
    return t is not None and now_ms - window_ms <= t <= now_ms


Metric = Annotated[
    BaseMetric | DerivedMetric | DurationMetric | EntityCountMetric, Field(discriminator="kind")
]


class CatalogError(Exception):
    """The catalog breaks one of its rules; the message names the rule and the metric.

    Not a ValueError, so pydantic does not fold it into a ValidationError."""


class Catalog(_Frozen):
    entities: tuple[Entity, ...]
    metrics: tuple[Metric, ...]

    def model_post_init(self, _context: Any) -> None:
        problems = [problem for rule in _RULES for problem in rule(self)]
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
    def _memo(self) -> dict[tuple, tuple]:
        """Selections computed once: the catalog is immutable and the serving hot path asks per request."""
        return {}

    def at(self, grain: Grain, kind: type | None = None, *, public_only: bool = False) -> tuple[Metric, ...]:
        key = ("at", grain, kind, public_only)
        if key not in self._memo:
            self._memo[key] = tuple(
                m
                for m in self.metrics
                if m.grain == grain
                and (kind is None or isinstance(m, kind))
                and (m.public or not public_only)
            )
        return self._memo[key]

    def of_kind(self, kind: type) -> list[Any]:
        return [m for m in self.metrics if isinstance(m, kind)]

    def bases(self, grain: Grain) -> tuple[BaseMetric, ...]:
        return self.at(grain, BaseMetric)  # type: ignore[return-value]

    def derived_in_order(self, grain: Grain) -> tuple[DerivedMetric, ...]:
        """Derived metrics of a grain, each after the derived metrics it uses."""
        key = ("derived_in_order", grain)
        if key not in self._memo:
            self._memo[key] = tuple(self._order_derived(grain))
        return self._memo[key]

    def _order_derived(self, grain: Grain) -> list[DerivedMetric]:
        ordered: list[DerivedMetric] = []
        pending = list(self.at(grain, DerivedMetric))
        while pending:
            ready = [
                d
                for d in pending
                if all(not isinstance(self[o], DerivedMetric) or self[o] in ordered for o in d.operands)
            ]
            ordered += ready
            pending = [d for d in pending if d not in ready]
        return ordered

    def derive(self, grain: Grain, values: dict[str, Any]) -> dict[str, Any]:
        """Merged base values of one group → the same dict plus every derived metric (raw units)."""
        out = dict(values)
        for metric in self.derived_in_order(grain):
            out[metric.name] = metric.compute(out)
        return out

    def describe(self) -> list[dict[str, str]]:
        """The public metric dictionary (``GET /v1/metrics``)."""
        return [
            {
                "name": m.name,
                "description": m.description,
                "grain": m.grain.value,
                "formula": m.formula,
                "unit": m.unit.value,
            }
            for m in self.metrics
            if m.public
        ]


def finalize(metric: _Metric, raw: Any) -> Any:
    """A merged raw value → what the API shows, by the metric's unit."""
    if raw is None:
        # a sum over no matching event is 0 (the monoid's identity); min/max/ratios stay null
        return 0 if isinstance(metric, BaseMetric) and metric.aggregate is Aggregate.sum else None
    match metric.unit:
        case Unit.currency:
            return round(raw / MICROS, 6)
        case Unit.timestamp:
            return (
                datetime.fromtimestamp(raw / 1000, tz=UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
        case Unit.seconds:
            return round(raw / 1000, 3)
        case Unit.ratio | Unit.score:
            return round(float(raw), 6)
        case _:
            return raw


# ---------------------------------------------------------------- validation rules (one message each)

_NUMERIC = {"int64", "int32"}


def _rule_unique_names(cat: Catalog) -> list[str]:
    seen, dup = set(), set()
    for m in cat.metrics:
        (dup if m.name in seen else seen).add(m.name)
    return [f"unique-names: metric {n!r} is defined more than once" for n in sorted(dup)]


def _rule_filters_use_known_event_types(cat: Catalog) -> list[str]:
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


def _rule_columns_exist_and_fit(cat: Catalog) -> list[str]:
    out = []
    for m in cat.of_kind(BaseMetric):
        for col in (*m.filter.non_null, *([m.column] if m.column else [])):
            if col not in ROW_COLUMNS:
                out.append(f"known-columns: {m.name} uses unknown column {col!r}")
        if (m.aggregate is Aggregate.count) != (m.column is None):
            out.append(f"count-has-no-column: {m.name} ({m.aggregate}) column={m.column!r}")
        if (
            m.aggregate in (Aggregate.sum, Aggregate.kll_quantiles)
            and ROW_COLUMNS.get(m.column) not in _NUMERIC
        ):
            out.append(f"numeric-sum: {m.name} sums non-numeric column {m.column!r}")
        for key in GRAIN_KEYS[m.grain]:
            if key not in ("tenant_id", "customer_id") and key not in m.filter.non_null:
                out.append(f"grain-key-present: {m.name} at {m.grain} grain must filter {key} non-null")
    for e in cat.entities:
        if e.id_column not in ROW_COLUMNS:
            out.append(f"known-columns: entity {e.name} id column {e.id_column!r} unknown")
    return out


def _rule_derived_operands(cat: Catalog) -> list[str]:
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
                _acyclic(cat, grain)
        except CatalogError as exc:
            out.append(str(exc))
    return out


def _acyclic(cat: Catalog, grain: Grain) -> None:
    pending = {m.name for m in cat.at(grain, DerivedMetric)}
    done: set[str] = set()
    while pending:
        ready = {n for n in pending if all(o in done or o not in pending for o in cat[n].operands)}
        if not ready:
            raise CatalogError(f"derived-acyclic: cycle among {sorted(pending)}")
        done |= ready
        pending -= ready


def _rule_unit_algebra(cat: Catalog) -> list[str]:
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


def _rule_entity_references(cat: Catalog) -> list[str]:
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
    return out


_RULES = (
    _rule_unique_names,
    _rule_filters_use_known_event_types,
    _rule_columns_exist_and_fit,
    _rule_derived_operands,
    _rule_unit_algebra,
    _rule_entity_references,
)


# ---------------------------------------------------------------- the catalog

C, K, T = Grain.customer, Grain.campaign, Grain.tenant


def _count(
    name: str,
    grain: Grain,
    types: tuple[str, ...] | Literal["*"],
    description: str,
    *,
    non_null: tuple[str, ...] = (),
    public: bool = True,
) -> BaseMetric:
    return BaseMetric(
        name=name,
        description=description,
        grain=grain,
        unit=Unit.count,
        public=public,
        filter=EventFilter(event_types=types, non_null=non_null),
        aggregate=Aggregate.count,
    )


def _agg(
    name: str,
    grain: Grain,
    types: tuple[str, ...] | Literal["*"],
    agg: Aggregate,
    column: str,
    unit: Unit,
    description: str,
    *,
    non_null: tuple[str, ...] = (),
    public: bool = True,
    timeseries: bool = True,
) -> BaseMetric:
    return BaseMetric(
        name=name,
        description=description,
        grain=grain,
        unit=unit,
        public=public,
        filter=EventFilter(event_types=types, non_null=(*non_null, column)),
        aggregate=agg,
        column=column,
        timeseries=timeseries,
    )


def _ratio(name: str, grain: Grain, a: str, b: str, unit: Unit, description: str) -> DerivedMetric:
    return DerivedMetric(
        name=name, description=description, grain=grain, unit=unit, op="ratio", operands=(a, b)
    )


def _diff(name: str, grain: Grain, a: str, b: str, unit: Unit, description: str) -> DerivedMetric:
    return DerivedMetric(
        name=name, description=description, grain=grain, unit=unit, op="difference", operands=(a, b)
    )


_AD = ("ad_impression", "ad_click")

CATALOG = Catalog(
    entities=(
        Entity(
            name="ticket",
            id_column="ticket_id",
            milestones=(
                Milestone(name="opened", event_type="ticket_opened"),
                Milestone(name="first_reply", event_type="agent_replied"),
                Milestone(name="resolved", event_type="ticket_resolved"),
            ),
        ),
        Entity(
            name="order",
            id_column="order_id",
            milestones=(
                Milestone(name="placed", event_type="order_placed"),
                Milestone(name="delivered", event_type="order_delivered"),
                Milestone(name="cancelled", event_type="order_cancelled"),
            ),
        ),
    ),
    metrics=(
        # ---- customer grain: bases
        _count("events_total", C, "*", "All events of the customer, every family."),
        _agg(
            "first_seen",
            C,
            "*",
            Aggregate.min,
            "event_time",
            Unit.timestamp,
            "Time of the customer's earliest event.",
            timeseries=False,
        ),
        _agg(
            "last_seen",
            C,
            "*",
            Aggregate.max,
            "event_time",
            Unit.timestamp,
            "Time of the customer's latest event.",
            timeseries=False,
        ),
        _agg(
            "sessions",
            C,
            ("session_start", "page_view", "app_event", "search", "add_to_cart"),
            Aggregate.hll_distinct,
            "session_id",
            Unit.count,
            "Distinct session_id values (DataSketches HLL, lg_k 12: exact below a few hundred).",
        ),
        _count("page_views", C, ("page_view",), "Page views."),
        _count("orders", C, ("order_placed",), "Orders placed."),
        _count("paid_orders", C, ("order_paid",), "Orders paid."),
        _agg(
            "revenue",
            C,
            ("order_paid",),
            Aggregate.sum,
            "amount_micros",
            Unit.currency,
            "Sum of amount over order_paid events.",
        ),
        _agg(
            "refunds",
            C,
            ("refund",),
            Aggregate.sum,
            "amount_micros",
            Unit.currency,
            "Sum of amount over refund events.",
        ),
        _agg(
            "last_order_at",
            C,
            ("order_placed",),
            Aggregate.max,
            "event_time",
            Unit.timestamp,
            "Time of the customer's latest order_placed.",
            timeseries=False,
        ),
        _count("ad_impressions", C, ("ad_impression",), "Ad impressions shown to the customer."),
        _count("ad_clicks", C, ("ad_click",), "Ad clicks by the customer."),
        _count("tickets_opened", C, ("ticket_opened",), "Support tickets opened."),
        _count("tickets_resolved", C, ("ticket_resolved",), "Support tickets resolved."),
        _agg(
            "csat_score_sum",
            C,
            ("csat_submitted",),
            Aggregate.sum,
            "score",
            Unit.score,
            "Sum of CSAT scores (helper base of csat_avg).",
            public=False,
        ),
        _count(
            "csat_responses",
            C,
            ("csat_submitted",),
            "CSAT answers submitted (helper base of csat_avg).",
            public=False,
        ),
        # ---- customer grain: derived and durations
        _diff("net_revenue", C, "revenue", "refunds", Unit.currency, "Revenue minus refunds."),
        _ratio(
            "avg_order_value",
            C,
            "revenue",
            "paid_orders",
            Unit.currency,
            "Revenue per paid order (null without paid orders).",
        ),
        _diff(
            "open_tickets",
            C,
            "tickets_opened",
            "tickets_resolved",
            Unit.count,
            "Tickets opened minus tickets resolved.",
        ),
        DurationMetric(
            name="avg_first_response_seconds",
            grain=C,
            unit=Unit.seconds,
            entity="ticket",
            start="opened",
            end="first_reply",
            statistic="mean",
            description="Mean over the customer's tickets of first agent reply - ticket opened.",
        ),
        DurationMetric(
            name="avg_resolution_seconds",
            grain=C,
            unit=Unit.seconds,
            entity="ticket",
            start="opened",
            end="resolved",
            statistic="mean",
            description="Mean over the customer's tickets of resolved - opened.",
        ),
        _ratio(
            "csat_avg",
            C,
            "csat_score_sum",
            "csat_responses",
            Unit.score,
            "Mean CSAT score, 1-5 (null without answers).",
        ),
        # ---- campaign grain (per tenant)
        _count(
            "impressions", K, ("ad_impression",), "Ad impressions of the campaign.", non_null=("campaign_id",)
        ),
        _count("clicks", K, ("ad_click",), "Ad clicks of the campaign.", non_null=("campaign_id",)),
        _agg(
            "spend",
            K,
            _AD,
            Aggregate.sum,
            "cost_micros",
            Unit.currency,
            "Advertiser spend: sum of cost over the campaign's ad events.",
            non_null=("campaign_id",),
        ),
        _count(
            "conversions",
            K,
            ("order_placed",),
            "Orders placed with this campaign_id (attribution).",
            non_null=("campaign_id",),
        ),
        _ratio("ctr", K, "clicks", "impressions", Unit.ratio, "Click-through rate: clicks / impressions."),
        _ratio("cpc", K, "spend", "clicks", Unit.currency, "Cost per click: spend / clicks."),
        _ratio("cpa", K, "spend", "conversions", Unit.currency, "Cost per acquisition: spend / conversions."),
        # ---- tenant grain: live orders over a window
        EntityCountMetric(
            name="orders_in_progress",
            grain=T,
            unit=Unit.count,
            entity="order",
            present=("placed",),
            absent=("delivered", "cancelled"),
            windowed=True,
            window_on="placed",
            description="Orders placed within the window, neither delivered nor cancelled.",
        ),
        DurationMetric(
            name="avg_wait_seconds",
            grain=T,
            unit=Unit.seconds,
            entity="order",
            start="placed",
            end="delivered",
            statistic="mean",
            windowed=True,
            window_on="delivered",
            description="Mean placed-to-delivered time of orders delivered within the window.",
        ),
        DurationMetric(
            name="p90_wait_seconds",
            grain=T,
            unit=Unit.seconds,
            entity="order",
            start="placed",
            end="delivered",
            statistic=0.9,
            windowed=True,
            window_on="delivered",
            description="90th percentile (nearest rank) placed-to-delivered time of orders "
            "delivered within the window.",
        ),
    ),
)
