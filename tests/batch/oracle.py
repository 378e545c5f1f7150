"""An independent recomputation of the batch views with pandas, written from the issue's definitions.

It deliberately shares no code with the catalog compiler: if both agree, the catalog says what we mean.
"""

from __future__ import annotations

import datasketches
import pandas as pd

HOUR = 3_600_000


def dedup(rows: list[dict], watermark: dict[tuple[str, int], int]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    keep = [row["offset"] < watermark.get((row["topic"], row["partition"]), 0) for row in rows]
    df = df[keep].sort_values(["topic", "partition", "offset"])
    return df.drop_duplicates(["tenant_id", "event_id"], keep="first")


def _count(df, types):
    return df["event_type"].isin(types).groupby([df.tenant_id, df.customer_id]).sum()


def profile(events: pd.DataFrame) -> pd.DataFrame:
    g = events.groupby(["tenant_id", "customer_id"])
    out = pd.DataFrame(
        {"events_total": g.size(), "first_seen": g.event_time.min(), "last_seen": g.event_time.max()}
    )

    def masked(types, col):
        return events[col].where(events.event_type.isin(types))

    keys = [events.tenant_id, events.customer_id]
    out["page_views"] = _count(events, ["page_view"])
    out["orders"] = _count(events, ["order_placed"])
    out["paid_orders"] = _count(events, ["order_paid"])
    out["revenue"] = masked(["order_paid"], "amount_micros").groupby(keys).sum(min_count=1)
    out["refunds"] = masked(["refund"], "amount_micros").groupby(keys).sum(min_count=1)
    out["last_order_at"] = masked(["order_placed"], "event_time").groupby(keys).max()
    out["ad_impressions"] = _count(events, ["ad_impression"])
    out["ad_clicks"] = _count(events, ["ad_click"])
    out["tickets_opened"] = _count(events, ["ticket_opened"])
    out["tickets_resolved"] = _count(events, ["ticket_resolved"])
    out["csat_score_sum"] = masked(["csat_submitted"], "score").groupby(keys).sum(min_count=1)
    out["csat_responses"] = _count(events, ["csat_submitted"])
    sessions = events[
        events.event_type.isin(["session_start", "page_view", "app_event", "search", "add_to_cart"])
    ]
    out["sessions"] = (
        sessions.dropna(subset=["session_id"]).groupby(["tenant_id", "customer_id"]).session_id.nunique()
    )
    out["sessions"] = out["sessions"].fillna(0)
    return out.reset_index()


def campaign_stats(events: pd.DataFrame) -> pd.DataFrame:
    df = events[events.campaign_id.notna()].copy()
    df["hour"] = df.event_time - df.event_time % HOUR
    g = df.groupby(["tenant_id", "campaign_id", "hour"])
    out = pd.DataFrame(
        {
            "impressions": g.event_type.apply(lambda s: (s == "ad_impression").sum()),
            "clicks": g.event_type.apply(lambda s: (s == "ad_click").sum()),
            "conversions": g.event_type.apply(lambda s: (s == "order_placed").sum()),
            "spend": g.cost_micros.sum(min_count=1),
        }
    )
    return out.reset_index()


def hll_estimate(blob) -> int:
    return 0 if blob is None else round(datasketches.hll_sketch.deserialize(blob).get_estimate())


def milestones(events: pd.DataFrame, id_col: str, names: dict[str, str]) -> pd.DataFrame:
    df = events[events[id_col].notna() & events.event_type.isin(list(names.values()))]
    out = {}
    for name, etype in names.items():
        out[name] = df[df.event_type == etype].groupby(["tenant_id", "customer_id", id_col]).event_time.min()
    return pd.DataFrame(out).reset_index()


def order_months(events: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """(tenant, customer) → the months ('YYYY-MM', UTC) with an order_placed."""
    orders = events[events.event_type == "order_placed"].copy()
    orders["month"] = pd.to_datetime(orders.event_time, unit="ms").dt.to_period("M").astype(str)
    return {key: set(m) for key, m in orders.groupby(["tenant_id", "customer_id"]).month}


def cohort_counts(events: pd.DataFrame) -> dict[tuple[str, str], tuple[int, list[int]]]:
    """(tenant, cohort month) → (size, customers ordering in cohort + k for k up to the tenant's last month)."""
    out = {}
    by_tenant: dict[str, dict[str, set[str]]] = {}
    for (tenant, customer), months in order_months(events).items():
        by_tenant.setdefault(tenant, {})[customer] = months
    for tenant, active in by_tenant.items():
        last = max(pd.Period(m, "M") for ms in active.values() for m in ms)
        first = pd.Series({c: min(ms) for c, ms in active.items()})
        for cohort, members in first.groupby(first):
            span = (last - pd.Period(cohort, "M")).n
            counts = [
                sum(str(pd.Period(cohort, "M") + k) in active[c] for c in members.index)
                for k in range(span + 1)
            ]
            out[(tenant, cohort)] = (len(members), counts)
    return out


def cohorts(events: pd.DataFrame) -> dict[tuple[str, str], tuple[int, list[float]]]:
    return {
        key: (size, [round(n / size, 6) for n in counts])
        for key, (size, counts) in cohort_counts(events).items()
    }


def rfm_raw(events: pd.DataFrame, as_of_ms: int) -> pd.DataFrame:
    p = profile(events)
    p = p[p.orders > 0].copy()
    p["monetary"] = p.revenue.fillna(0) - p.refunds.fillna(0)
    p["recency_days"] = (as_of_ms - p.last_order_at) // 86_400_000
    return p[["tenant_id", "customer_id", "last_order_at", "recency_days", "orders", "monetary"]].rename(
        columns={"orders": "frequency"}
    )


def identity_groups(events: pd.DataFrame, cap: int) -> dict[tuple[str, str], str]:
    """(tenant, id) → the id its merged customer is counted as: union-find over the alias events, the
    survivor of the latest alias (event_time, then event_id) of each component; an id alone when its
    component has more than ``cap`` ids."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    aliases = events[events.event_type == "alias"]
    for t, a, b in zip(aliases.tenant_id, aliases.previous_id, aliases.customer_id, strict=True):
        parent[root((t, a))] = root((t, b))
    members: dict = {}
    for x in list(parent):
        members.setdefault(root(x), []).append(x)
    latest = {}
    for row in aliases.sort_values(["event_time", "event_id"]).itertuples():
        latest[root((row.tenant_id, row.customer_id))] = row.customer_id
    out = {}
    for r, ids in members.items():
        for key in ids:
            out[key] = key[1] if len(ids) > cap else latest[r]
    return out


def relabel(events: pd.DataFrame, groups: dict[tuple[str, str], str]) -> pd.DataFrame:
    """The events with each customer id replaced by its merged customer's id."""
    out = events.copy()
    out["customer_id"] = [groups.get((t, c), c) for t, c in zip(out.tenant_id, out.customer_id, strict=True)]
    return out


__all__ = [
    "identity_groups",
    "relabel",
    "campaign_stats",
    "cohort_counts",
    "cohorts",
    "dedup",
    "hll_estimate",
    "milestones",
    "order_months",
    "profile",
    "rfm_raw",
]


def latest_traits(events: pd.DataFrame) -> dict[tuple[str, str], dict[str, object]]:
    """(tenant, customer) → trait → the value of the identify with the greatest (event_time, offset)."""
    import json

    out: dict[tuple[str, str], dict[str, tuple]] = {}
    for row in events[events.event_type == "identify"].itertuples():
        if not isinstance(row.traits, str):
            continue
        states = out.setdefault((row.tenant_id, row.customer_id), {})
        for name, value in json.loads(row.traits).items():
            if name not in states or (row.event_time, row.offset) > states[name][:2]:
                states[name] = (row.event_time, row.offset, value)
    return {key: {n: s[2] for n, s in states.items()} for key, states in out.items()}


def segments_by_trait(
    events: pd.DataFrame, trait: str, start: int | None = None, end: int | None = None
) -> dict[str, dict[object, dict]]:
    """tenant → trait value (None: never set) → {customers (sorted ids), revenue µ, sessions, events}.

    ``sessions`` of a segment: the distinct session_id values of its customers (a union, as distinct
    counts merge), not the sum of their own distinct counts. With ``start``/``end`` (ms) the members
    are the same (traits over all events) and the metrics count only events in [start, end)."""
    traits = latest_traits(events)
    p = profile(events)
    if start is not None:
        events = events[(events.event_time >= start) & (events.event_time < end)]
    counted = (profile(events) if len(events) else p.iloc[0:0]).set_index(["tenant_id", "customer_id"])
    out: dict[str, dict[object, dict]] = {}
    for row in p.itertuples():
        value = traits.get((row.tenant_id, row.customer_id), {}).get(trait)
        seg = out.setdefault(row.tenant_id, {}).setdefault(
            value, {"customers": [], "revenue": 0, "sessions": set(), "events_total": 0}
        )
        seg["customers"].append(row.customer_id)
        key = (row.tenant_id, row.customer_id)
        if key in counted.index:
            own = counted.loc[key]
            seg["revenue"] += 0 if pd.isna(own.revenue) else int(own.revenue)
            seg["events_total"] += int(own.events_total)
    sessions = events.dropna(subset=["session_id"])
    for row in sessions.itertuples():
        value = traits.get((row.tenant_id, row.customer_id), {}).get(trait)
        out[row.tenant_id][value]["sessions"].add(row.session_id)
    for per_tenant in out.values():
        for seg in per_tenant.values():
            seg["customers"].sort()
            seg["sessions"] = len(seg["sessions"])
    return out
