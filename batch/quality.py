"""What the archiver tells the quality ledger about each micro-batch (docs/metrics.md "Data quality").

The archiver decodes every record and dead-letters the invalid ones, so it is where each record is
classified, once: dead-lettered (with its reason and, when one can be read, its tenant), a later copy
of an event_id (the event-id index names a lower copy), late (Kafka timestamp more than
``LATE_AFTER_MS`` after ``event_time``), an order (the catalog's ``orders`` filter, first copies) and an
attributed one (the ``conversions`` filter). A first copy is also an ``event``, and an
``identified_event`` when its customer is identified (``IDENTIFYING_EVENTS``: an ``identify`` of that
id, or an ``alias`` it survives, in this micro-batch or an earlier one). The ledger counts each position once.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from lambdalytics.infra.event_index import EventIndex
from lambdalytics.infra.quality_ledger import Observation, QualityLedger
from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.schemas.catalog.quality import (
    ATTRIBUTED_METRIC,
    DEAD_LETTER_PREFIX,
    IDENTIFYING_EVENTS,
    LATE_AFTER_MS,
    ORDER_METRIC,
)
from lambdalytics.schemas.compile import python_predicate
from lambdalytics.schemas.events import TENANT_ID_PATTERN
from lambdalytics.schemas.views import Watermark

__all__ = ["QualityBatch", "tenant_of_invalid"]

_TENANT = re.compile(TENANT_ID_PATTERN)
_is_order = python_predicate(CATALOG[ORDER_METRIC].filter)
_is_attributed = python_predicate(CATALOG[ATTRIBUTED_METRIC].filter)


def tenant_of_invalid(value: bytes | None, key: bytes | None) -> str | None:
    """The tenant an invalid record names — its JSON ``tenant_id``, else the part of its Kafka key before
    ``:`` — when that is a well-formed tenant id; None otherwise (the operator's "unknown" bucket)."""
    try:
        claimed = orjson.loads(value or b"").get("tenant_id")
    except (orjson.JSONDecodeError, AttributeError):
        claimed = None
    if not isinstance(claimed, str) and key:
        claimed = key.split(b":", 1)[0].decode("utf-8", "replace")
    return claimed if isinstance(claimed, str) and _TENANT.match(claimed) else None


def _arrival(kafka_timestamp: int | None) -> int:
    """A record's arrival: its Kafka timestamp, or the clock when it has none (-1)."""
    if kafka_timestamp is None or kafka_timestamp < 0:
        return int(time.time() * 1000)
    return kafka_timestamp


class QualityBatch:
    """The observations of one micro-batch, handed to the ledger before the batch's Delta commit."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._invalid: list[Observation] = []

    def dead_lettered(self, record: Any, offset: int, reason: str) -> None:
        self._invalid.append(
            Observation(
                record.topic,
                record.partition,
                offset,
                tenant_of_invalid(record.value, record.key),
                _arrival(record.timestamp),
                (DEAD_LETTER_PREFIX + reason,),
            )
        )

    def valid(self, row: dict[str, Any]) -> None:
        """A master row (with its ``topic``, ``partition``, logical ``offset`` and ``broker_time``)."""
        self._rows.append(row)

    def commit(self, ledger: QualityLedger, index: EventIndex, covers: Watermark) -> int:
        """Count the batch; the rows must already be in the event-id index (their lowest copies known)."""
        lowest = index.lowest_of((r["tenant_id"], r["event_id"]) for r in self._rows)
        observations = list(self._invalid)
        for row, first in zip(self._rows, lowest, strict=True):
            arrived = _arrival(row["broker_time"])
            duplicate = first is not None and first < (row["topic"], row["partition"], row["offset"])
            counters = ["records"]
            if duplicate:
                counters.append("duplicates")
            if arrived - row["event_time"] > LATE_AFTER_MS:
                counters.append("late")
            if not duplicate:
                counters.append("events")
            if not duplicate and _is_order(row):
                counters.append("orders")
                if _is_attributed(row):
                    counters.append("attributed_orders")
            observations.append(
                Observation(
                    row["topic"],
                    row["partition"],
                    row["offset"],
                    row["tenant_id"],
                    arrived,
                    tuple(counters),
                    subject=row["customer_id"],
                    marks=row["event_type"] in IDENTIFYING_EVENTS,
                    if_marked=() if duplicate else ("identified_events",),
                )
            )
        return ledger.record(observations, covers=covers)
