"""Data-quality metrics: how healthy a tenant's event feed is, defined once, beside the catalog.

They are not metric kinds: they count *records as they arrived* (copies, late ones and the ones that
broke the contract included), not the deduplicated events the catalog's metrics aggregate. Each entry
names its counters (kept by ``infra.quality_ledger``, fed by the archiver, the one consumer that
dead-letters) and its window; :func:`evaluate` is the one place their ratios are computed, for
``GET /v1/quality`` and the dashboard panel (Prometheus exports the raw counters instead).

Which orders count and which are attributed is the catalog's own filter of ``orders`` and
``conversions`` (:data:`ORDER_METRIC`, :data:`ATTRIBUTED_METRIC`), applied at tenant grain; the
formula is not written again here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from .model import HOUR_MS, Unit, _Frozen

__all__ = [
    "ATTRIBUTED_METRIC",
    "DEAD_LETTER_PREFIX",
    "IDENTIFYING_EVENTS",
    "LATE_AFTER_MS",
    "ORDER_METRIC",
    "QUALITY",
    "QualityMetric",
    "UNKNOWN_TENANT_LABEL",
    "describe_quality",
    "evaluate",
]

LATE_AFTER_MS = HOUR_MS
"""A record is late when its Kafka timestamp is more than this after its ``event_time``. Fixed at
arrival: changing it does not reclassify what was counted."""

DEAD_LETTER_PREFIX = "dead_letters:"
"""Counter ``dead_letters:<reason>``: one per contract-violation reason (a closed set of codes)."""

UNKNOWN_TENANT_LABEL = "(unknown)"
"""How the operator sees the dead letters of records without a parsable tenant (no tenant id matches
it: parentheses are not allowed in one)."""

IDENTIFYING_EVENTS = frozenset({"identify", "alias"})
"""Event types that identify their ``customer_id``: an ``identify`` (the customer told who they are) or
an ``alias`` (its ``customer_id`` is the id that survives the merge). From the archiver micro-batch that
holds the first such record on, every event of that id is on an identified customer."""

ORDER_METRIC = "orders"
ATTRIBUTED_METRIC = "conversions"
"""Catalog metrics whose filters say which records are orders and which orders carry a campaign."""


class QualityMetric(_Frozen):
    """One data-quality figure: a count or the ratio of two counters, over a window of arrival hours."""

    name: str
    label: str
    description: str
    unit: Unit
    numerator: str  # a counter, or the prefix of a counter family (dead letters, per reason)
    denominator: str | None = None
    per: Literal["reason", "topic"] | None = None
    window: str

    @property
    def formula(self) -> str:
        if self.per == "topic":
            return "now - max(Kafka timestamp of valid records), per topic"
        top = f"count({self.numerator}<reason>), per reason" if self.per == "reason" else self.numerator
        return f"{top} / {self.denominator}" if self.denominator else top


_HOURS = "the arrival hours (Kafka timestamp, UTC) overlapping the window; default 24h, up to 30d"


def _rate(name: str, label: str, description: str, numerator: str, denominator: str) -> QualityMetric:
    return QualityMetric(
        name=name,
        label=label,
        description=description,
        unit=Unit.ratio,
        numerator=numerator,
        denominator=denominator,
        window=_HOURS,
    )


QUALITY: tuple[QualityMetric, ...] = (
    QualityMetric(
        name="dead_letters",
        label="Dead-lettered records",
        description="Records that broke the event contract and went to events.deadletter, per reason. "
        "A record without a parsable tenant is counted for the operator only (GET /v1/admin/quality).",
        unit=Unit.count,
        numerator=DEAD_LETTER_PREFIX,
        per="reason",
        window=_HOURS,
    ),
    _rate(
        "duplicate_rate",
        "Duplicate rate",
        "Share of valid records that are a later copy of an event_id the tenant already sent "
        "(the copy the batch and speed views do not count).",
        "duplicates",
        "records",
    ),
    _rate(
        "late_event_rate",
        "Late-event rate",
        f"Share of valid records whose Kafka timestamp is more than {LATE_AFTER_MS // 60_000} minutes "
        "after their event_time.",
        "late",
        "records",
    ),
    _rate(
        "attributed_order_share",
        "Orders attributed to a campaign",
        f"Share of orders (the filter of catalog metric {ORDER_METRIC!r}, first copies only) that carry a "
        f"campaign_id (the filter of {ATTRIBUTED_METRIC!r}).",
        "attributed_orders",
        "orders",
    ),
    _rate(
        "identified_event_share",
        "Events on identified customers",
        "Share of events (valid first copies) whose customer_id was identified when the event was "
        "counted: the customer_id of an identify event, or the surviving customer_id of an alias, "
        "archived in the same micro-batch or earlier. Events counted before their id was identified "
        "stay not identified.",
        "identified_events",
        "events",
    ),
    QualityMetric(
        name="seconds_since_last_event",
        label="Time since the last event",
        description="Per topic, seconds since the newest valid record's Kafka timestamp: a stale source "
        "shows as a growing number.",
        unit=Unit.seconds,
        numerator="last_event_ms",
        per="topic",
        window="all time",
    ),
)


def describe_quality() -> list[dict]:
    """The quality dictionary: what each figure is, its formula and its window."""
    return [
        {
            "name": m.name,
            "label": m.label,
            "description": m.description,
            "formula": m.formula,
            "unit": m.unit.value,
            "window": m.window,
            "numerator": m.numerator,
            "denominator": m.denominator,
        }
        for m in QUALITY
    ]


def evaluate(counts: Mapping[str, int], last_event_ms: Mapping[str, int], now_ms: int) -> dict:
    """Counters over a window (and the newest record per topic) → every quality figure, by name.

    A ratio without records in the window is None (nothing to measure), never 0."""
    out: dict = {}
    for m in QUALITY:
        if m.per == "reason":
            by = {c[len(m.numerator) :]: n for c, n in sorted(counts.items()) if c.startswith(m.numerator)}
            out[m.name] = {"total": sum(by.values()), "by_reason": by}
        elif m.per == "topic":
            out[m.name] = {t: round(max(now_ms - ms, 0) / 1000, 3) for t, ms in sorted(last_event_ms.items())}
        else:
            top, bottom = counts.get(m.numerator, 0), counts.get(m.denominator or "", 0)
            out[m.name] = {
                "value": round(top / bottom, 6) if bottom else None,
                m.numerator: top,
                m.denominator: bottom,
            }
    return out
