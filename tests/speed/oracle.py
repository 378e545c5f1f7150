"""The independent answer to every SpeedStore read: plain Python over the event list.

Written from the contract (``speed/store.py``, ``docs/metrics.md``), sharing no code with the catalog,
its compilers, ``schemas.aggregates`` or either store: a store that agrees with it computes what the
catalog means, not merely what the other store computes. The speed side of a watermark W holds the
first copy of each ``(tenant_id, event_id)`` in consumption order, if its offset is >= W[topic,
partition]; a copy above W whose first copy lies below W is the batch view's, not counted again.

Raw states, as ``store.py`` defines them: a count is an int, a sum/min/max an int or None (no matching
event), a distinct count the set of raw values. The generated streams' duplicates arrive well within
the stores' dedup window (checked in the contract suite), so the window does not appear here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from lambdalytics.schemas.identity import Alias  # the value type of the answer, not its computation

HOUR = 3_600_000
ALL = None  # every event type
_SESSION = ("session_start", "page_view", "app_event", "search", "add_to_cart")

# name -> (kind, event types or ALL, column); a row matches when its type is listed and the column is set
CUSTOMER: dict[str, tuple[str, tuple[str, ...] | None, str | None]] = {
    "events_total": ("count", ALL, None),
    "first_seen": ("min", ALL, "event_time"),
    "last_seen": ("max", ALL, "event_time"),
    "sessions": ("distinct", _SESSION, "session_id"),
    "page_views": ("count", ("page_view",), None),
    "orders": ("count", ("order_placed",), None),
    "paid_orders": ("count", ("order_paid",), None),
    "revenue": ("sum", ("order_paid",), "amount_micros"),
    "refunds": ("sum", ("refund",), "amount_micros"),
    "last_order_at": ("max", ("order_placed",), "event_time"),
    "ad_impressions": ("count", ("ad_impression",), None),
    "ad_clicks": ("count", ("ad_click",), None),
    "tickets_opened": ("count", ("ticket_opened",), None),
    "tickets_resolved": ("count", ("ticket_resolved",), None),
    "csat_score_sum": ("sum", ("csat_submitted",), "score"),
    "csat_responses": ("count", ("csat_submitted",), None),
}
NOT_A_SERIES = {"first_seen", "last_seen", "last_order_at"}  # profile-only: no per-hour state
SERIES = {name: d for name, d in CUSTOMER.items() if name not in NOT_A_SERIES}
CAMPAIGN = {
    "impressions": ("count", ("ad_impression",), None),
    "clicks": ("count", ("ad_click",), None),
    "spend": ("sum", ("ad_impression", "ad_click"), "cost_micros"),
    "conversions": ("count", ("order_placed",), None),
}
ENTITIES = {  # entity -> (id column, milestone -> event type)
    "ticket": (
        "ticket_id",
        {"opened": "ticket_opened", "first_reply": "agent_replied", "resolved": "ticket_resolved"},
    ),
    "order": (
        "order_id",
        {"placed": "order_placed", "delivered": "order_delivered", "cancelled": "order_cancelled"},
    ),
}


def after(records: Iterable[tuple[dict, str, int, int, int]], watermark: dict) -> list[dict]:
    """The rows the speed side answers for at ``watermark``."""
    seen, kept = set(), []
    for row, topic, partition, offset, _ in records:
        key = (row["tenant_id"], row["event_id"])
        if key in seen:
            continue
        seen.add(key)
        if offset >= watermark.get((topic, partition), 0):
            kept.append(row)
    return kept


def _fold(definitions: dict, rows: Iterable[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: 0 if kind == "count" else set() if kind == "distinct" else None
        for name, (kind, _, _) in definitions.items()
    }
    for row in rows:
        for name, (kind, types, column) in definitions.items():
            if types is not ALL and row["event_type"] not in types:
                continue
            value = row[column] if column else None
            if column and value is None:
                continue
            old = out[name]
            if kind == "count":
                out[name] = old + 1
            elif kind == "distinct":
                old.add(value)
            elif old is None:
                out[name] = value
            else:
                out[name] = {"sum": old + value, "min": min(old, value), "max": max(old, value)}[kind]
    return out


def _hourly(definitions: dict, rows: list[dict], start_ms: int, end_ms: int) -> dict[int, dict]:
    by_hour: dict[int, list[dict]] = {}
    for row in rows:
        hour = row["event_time"] // HOUR * HOUR
        if start_ms <= hour < end_ms:
            by_hour.setdefault(hour, []).append(row)
    return {hour: _fold(definitions, by_hour[hour]) for hour in sorted(by_hour)}


def _milestones(entity: str, rows: Iterable[dict]) -> dict[tuple[str, str], dict[str, int | None]]:
    """(customer, entity id) -> first time of each milestone (None: not reached after W)."""
    id_column, milestones = ENTITIES[entity]
    out: dict[tuple[str, str], dict[str, int | None]] = {}
    for row in rows:
        names = [m for m, event_type in milestones.items() if event_type == row["event_type"]]
        if not names or row[id_column] is None:
            continue
        state = out.setdefault((row["customer_id"], row[id_column]), dict.fromkeys(milestones))
        for name in names:
            if state[name] is None or row["event_time"] < state[name]:
                state[name] = row["event_time"]
    return out


def _month(epoch_ms: int) -> int:
    """Months since 1970-01, UTC."""
    t = dt.datetime.fromtimestamp(epoch_ms // 1000, dt.UTC)
    return (t.year - 1970) * 12 + t.month - 1


class SpeedOracle:
    """Answers the SpeedStore reads, by the same names and arguments, for one record list."""

    def __init__(self, records: list[tuple[dict, str, int, int, int]], *, extra: dict | None = None):
        """``extra``: customer metrics beyond the built-in ones (a catalog file's), in ``CUSTOMER``'s form;
        each is also a series."""
        self.records = records
        self._customer = {**CUSTOMER, **(extra or {})}
        self._series = {**SERIES, **(extra or {})}
        self._by_key: dict[tuple, dict[tuple[str, str | None], list[dict]]] = {}

    def _rows(self, watermark, tenant: str, customer: str | None = None) -> list[dict]:
        """The rows after W of a tenant (or one of its customers); indexed once per watermark."""
        w = tuple(sorted(watermark.items()))
        if w not in self._by_key:
            index: dict[tuple[str, str | None], list[dict]] = {}
            for row in after(self.records, watermark):
                index.setdefault((row["tenant_id"], None), []).append(row)
                index.setdefault((row["tenant_id"], row["customer_id"]), []).append(row)
            self._by_key[w] = index
        return self._by_key[w].get((tenant, customer), [])

    def customer(self, tenant, customer, watermark):
        return _fold(self._customer, self._rows(watermark, tenant, customer))

    def customer_hours(self, tenant, customer, watermark, start_ms, end_ms):
        return _hourly(self._series, self._rows(watermark, tenant, customer), start_ms, end_ms)

    def campaign_hours(self, tenant, campaign, watermark, start_ms, end_ms):
        rows = [r for r in self._rows(watermark, tenant) if r["campaign_id"] == campaign]
        return _hourly(CAMPAIGN, rows, start_ms, end_ms)

    def customer_entities(self, tenant, customer, entity, watermark):
        states = _milestones(entity, self._rows(watermark, tenant, customer))
        return {entity_id: state for (_, entity_id), state in states.items()}

    def tenant_entities(self, tenant, entity, watermark):
        return _milestones(entity, self._rows(watermark, tenant))

    def alias_edges(self, tenant, customers, watermark):
        wanted = None if customers is None else set(customers)
        return {
            Alias(r["event_time"], r["event_id"], r["previous_id"], r["customer_id"])
            for r in self._rows(watermark, tenant)
            if r["event_type"] == "alias"
            and (wanted is None or r["customer_id"] in wanted or r["previous_id"] in wanted)
        }

    def order_months(self, tenant, watermark):
        out: dict[str, set[int]] = {}
        for row in self._rows(watermark, tenant):
            if row["event_type"] == "order_placed":
                out.setdefault(row["customer_id"], set()).add(_month(row["event_time"]))
        return out

    def touched_customers(self, tenant, watermark):
        return {row["customer_id"] for row in self._rows(watermark, tenant)}

    def customer_traits(self, tenant, customer, watermark):
        """Per trait the value of the identify with the greatest (event_time, offset), as text."""
        import json

        offsets = {id(row): offset for row, _, _, offset, _ in self.records}
        best: dict[str, tuple] = {}
        for row in self._rows(watermark, tenant, customer):
            if row["event_type"] != "identify" or not row.get("traits"):
                continue
            for name, value in json.loads(row["traits"]).items():
                state = (
                    row["event_time"],
                    offsets[id(row)],
                    value if isinstance(value, str) else json.dumps(value),
                )
                if name not in best or state[:2] > best[name][:2]:
                    best[name] = state
        return best


__all__ = ["CAMPAIGN", "CUSTOMER", "ENTITIES", "SERIES", "SpeedOracle", "after"]
