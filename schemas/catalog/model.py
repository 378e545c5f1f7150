"""The catalog's vocabulary: grains, aggregates, units, the four metric kinds, and :func:`finalize`.

A metric is data: what it counts (filter, aggregate, grain), how to show it (unit, label, display
hints) and nothing an engine or page has to re-state. This module knows one metric at a time; what
needs the whole catalog (derived-metric order, series, additivity) is :class:`~.registry.Catalog`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..events import MICROS
from ..traits import Trait

__all__ = [
    "GRAIN_KEYS",
    "HOUR_MS",
    "NUMERIC_TYPES",
    "Aggregate",
    "BaseMetric",
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
    "iso_utc",
    "show_trait",
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

NUMERIC_TYPES = frozenset({"int64", "int32"})
"""Row column types (``events.ROW_COLUMNS``) that sums and numeric-only aggregates accept."""


class Aggregate(StrEnum):
    count = "count"
    sum = "sum"
    min = "min"
    max = "max"
    hll_distinct = "hll_distinct"  # DataSketches HLL: the same binary in Spark, Python and on the wire


class Unit(StrEnum):
    """What a raw value measures, and so how it is shown (:func:`finalize` here, ``format.js`` in pages)."""

    count = "count"
    currency = "currency"  # raw values are micro-units; shown in currency units
    timestamp = "timestamp"  # raw values are UTC epoch ms; shown as ISO 8601
    seconds = "seconds"  # raw values are milliseconds; shown in seconds
    ratio = "ratio"  # shown as a percentage
    score = "score"


class CatalogError(Exception):
    """The catalog breaks one of its rules; the message names the rule and the metric.

    Not a ValueError, so pydantic does not fold it into a ValidationError."""


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
    """What every kind has: identity, grain, unit, and the display hints pages read from the dictionary."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)  # what people read: "Avg. order value"
    description: str
    grain: Grain
    unit: Unit
    public: bool = True  # False: a helper base (e.g. csat_score_sum), not shown as its own metric
    short_label: str | None = None  # for a small tile ("CTR"); the label when None
    caption: str | None = None  # one line under the value on a tile ("from order to door")
    headline: int | None = Field(None, ge=1)  # rank among the headline tiles of its grain's card
    primary: bool = False  # its grain's default: the chart shown unless asked, the main tile


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


def iso_utc(epoch_ms: int) -> str:
    """UTC epoch ms → ISO 8601 with milliseconds and ``Z``: how every timestamp is shown."""
    return (
        datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def show_trait(trait: Trait, text: str) -> str | int | float:
    """A stored trait value text → what the API shows (a timestamp as ISO 8601, like metrics)."""
    value = trait.value(text)
    return iso_utc(value) if trait.type == "timestamp" else value


def finalize(metric: _Metric, raw: Any) -> Any:
    """A merged raw value → what the API shows, by the metric's unit."""
    if raw is None:
        # a sum over no matching event is 0 (the monoid's identity); min/max/ratios stay null
        return 0 if isinstance(metric, BaseMetric) and metric.aggregate is Aggregate.sum else None
    match metric.unit:
        case Unit.currency:
            return round(raw / MICROS, 6)
        case Unit.timestamp:
            return iso_utc(raw)
        case Unit.seconds:
            return round(raw / 1000, 3)
        case Unit.ratio | Unit.score:
            return round(float(raw), 6)
        case _:
            return raw
