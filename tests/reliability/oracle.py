"""Ground truth, computed from the events a test had acknowledged — independently of the pipeline.

Written from the metric definitions in docs/metrics.md with plain Python (no catalog, no compiler, no
sketches): an ``event_id`` counts once per tenant; money is summed as exact integer micro-units from the
decimal text of the JSON number; times are epoch milliseconds. Only exact metrics are checked (``sessions``
is an HLL estimate and is left out).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

HOUR_MS = 3_600_000
COUNTS = {
    "events_total": None,  # every event
    "page_views": "page_view",
    "orders": "order_placed",
    "paid_orders": "order_paid",
    "ad_impressions": "ad_impression",
    "ad_clicks": "ad_click",
    "tickets_opened": "ticket_opened",
    "tickets_resolved": "ticket_resolved",
}
SUMS = {"revenue": "order_paid", "refunds": "refund"}  # sum of amount, in micro-units
SERIES = ("events_total", "orders", "revenue")  # time-series metrics the load test samples

Key = tuple[str, str]


def micros(amount: Any) -> int:
    """A JSON number → exact micro-units (``repr`` of a float is its shortest round-trip decimal)."""
    return int(Decimal(repr(amount) if isinstance(amount, float) else str(amount)) * 1_000_000)


def iso_ms(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dedup(events: Iterable[dict]) -> list[dict]:
    """First copy of each (tenant_id, event_id)."""
    seen: set[Key] = set()
    out = []
    for e in events:
        key = (e["tenant_id"], e["event_id"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _value(metric: str, e: dict) -> int:
    if metric in COUNTS:
        wanted = COUNTS[metric]
        return int(wanted is None or e["event_type"] == wanted)
    return micros(e["amount"]) if e["event_type"] == SUMS[metric] else 0


class Truth:
    """Per customer, per campaign and per tenant: what the API must answer."""

    def __init__(self, events: Iterable[dict]):
        self.events = dedup(events)
        self.profiles: dict[Key, dict[str, Any]] = {}
        self.hours: dict[Key, dict[int, dict[str, int]]] = defaultdict(dict)
        self.campaigns: dict[Key, dict[str, int]] = {}
        order_months: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for e in self.events:
            key = (e["tenant_id"], e["customer_id"])
            p = self.profiles.setdefault(
                key, {**{m: 0 for m in (*COUNTS, *SUMS)}, "first_seen": None, "last_seen": None}
            )
            for m in (*COUNTS, *SUMS):
                p[m] += _value(m, e)
            t = e["event_time"]
            p["first_seen"] = t if p["first_seen"] is None else min(p["first_seen"], t)
            p["last_seen"] = t if p["last_seen"] is None else max(p["last_seen"], t)
            bucket = self.hours[key].setdefault(t - t % HOUR_MS, dict.fromkeys(SERIES, 0))
            for m in SERIES:
                bucket[m] += _value(m, e)
            if campaign := e.get("campaign_id"):
                c = self.campaigns.setdefault(
                    (e["tenant_id"], campaign),
                    {"impressions": 0, "clicks": 0, "spend": 0, "conversions": 0},
                )
                c["impressions"] += e["event_type"] == "ad_impression"
                c["clicks"] += e["event_type"] == "ad_click"
                c["conversions"] += e["event_type"] == "order_placed"
                if e["event_type"] in ("ad_impression", "ad_click") and "cost" in e:
                    c["spend"] += micros(e["cost"])
            if e["event_type"] == "order_placed":
                when = dt.datetime.fromtimestamp(t / 1000, dt.UTC)
                order_months[e["tenant_id"]][e["customer_id"]].add(when.year * 12 + when.month - 1)
        self.order_months = {t: dict(c) for t, c in order_months.items()}

    # ------------------------------------------------------------------ comparisons with API answers

    def profile_diff(self, key: Key, metrics: dict[str, Any]) -> list[str]:
        """Differences between an API ``metrics`` object and the truth (empty = equal)."""
        want = self.profiles[key]
        out = []
        for m in COUNTS:
            if metrics.get(m) != want[m]:
                out.append(f"{m}: {metrics.get(m)} != {want[m]}")
        for m in SUMS:
            got = metrics.get(m)
            if got is None or micros(got) != want[m]:
                out.append(f"{m}: {got} != {want[m] / 1e6}")
        for m in ("first_seen", "last_seen"):
            if metrics.get(m) != iso_ms(want[m]):
                out.append(f"{m}: {metrics.get(m)} != {iso_ms(want[m])}")
        return out

    def series_diff(self, key: Key, metric: str, points: list[dict]) -> list[str]:
        """Hourly points of one metric: every hour with an event of the customer, value exact."""
        want = {iso_ms(h): v[metric] for h, v in self.hours[key].items()}
        got = {p["ts"]: (micros(p["value"]) if metric in SUMS else p["value"]) for p in points}
        if got == want:
            return []
        bad = sorted(h for h in want.keys() | got.keys() if want.get(h) != got.get(h))
        return [f"{metric} at {h}: {got.get(h)} != {want.get(h)}" for h in bad[:5]]

    def campaign_diff(self, key: Key, totals: dict[str, Any]) -> list[str]:
        want = self.campaigns[key]
        got = {
            "impressions": totals.get("impressions"),
            "clicks": totals.get("clicks"),
            "conversions": totals.get("conversions"),
            "spend": micros(totals["spend"]) if totals.get("spend") is not None else None,
        }
        return [f"{m}: {got[m]} != {want[m]}" for m in want if got[m] != want[m]]

    def cohorts(self, tenant: str) -> list[dict]:
        """Monthly cohorts by first order_placed; retention[k] = share with an order in month + k."""
        months = self.order_months.get(tenant, {})
        if not months:
            return []
        latest = max(max(ms) for ms in months.values())
        groups: dict[int, list[set[int]]] = defaultdict(list)
        for ms in months.values():
            groups[min(ms)].append(ms)
        rows = []
        for cohort in sorted(groups):
            members = groups[cohort]
            shares = [
                round(sum(cohort + k in ms for ms in members) / len(members), 6)
                for k in range(latest - cohort + 1)
            ]
            label = f"{cohort // 12:04d}-{cohort % 12 + 1:02d}"
            rows.append({"cohort": label, "size": len(members), "retention": shares})
        return rows
