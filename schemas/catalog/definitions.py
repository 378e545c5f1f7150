"""The built-in entities and metrics: the one place each metric's formula, unit and label is written."""

from __future__ import annotations

from typing import Any, Literal

from .model import (
    Aggregate,
    BaseMetric,
    DerivedMetric,
    DurationMetric,
    Entity,
    EntityCountMetric,
    EventFilter,
    Grain,
    Milestone,
    Unit,
)
from .registry import Catalog

__all__ = ["CATALOG"]

C, K, T = Grain.customer, Grain.campaign, Grain.tenant
Types = tuple[str, ...] | Literal["*"]


def _count(
    name: str, grain: Grain, types: Types, description: str, *, non_null=(), **hints: Any
) -> BaseMetric:
    return BaseMetric(
        name=name,
        description=description,
        grain=grain,
        unit=Unit.count,
        filter=EventFilter(event_types=types, non_null=non_null),
        aggregate=Aggregate.count,
        **hints,
    )


def _agg(
    name: str,
    grain: Grain,
    types: Types,
    agg: Aggregate,
    column: str,
    unit: Unit,
    description: str,
    *,
    non_null: tuple[str, ...] = (),
    **hints: Any,
) -> BaseMetric:
    return BaseMetric(
        name=name,
        description=description,
        grain=grain,
        unit=unit,
        filter=EventFilter(event_types=types, non_null=(*non_null, column)),
        aggregate=agg,
        column=column,
        **hints,
    )


def _ratio(
    name: str, grain: Grain, a: str, b: str, unit: Unit, description: str, **hints: Any
) -> DerivedMetric:
    return DerivedMetric(
        name=name, description=description, grain=grain, unit=unit, op="ratio", operands=(a, b), **hints
    )


def _diff(
    name: str, grain: Grain, a: str, b: str, unit: Unit, description: str, **hints: Any
) -> DerivedMetric:
    return DerivedMetric(
        name=name, description=description, grain=grain, unit=unit, op="difference", operands=(a, b), **hints
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
        _count(
            "events_total", C, "*", "All events of the customer, every family.", label="Events", headline=12
        ),
        _agg(
            "first_seen",
            C,
            "*",
            Aggregate.min,
            "event_time",
            Unit.timestamp,
            "Time of the customer's earliest event.",
            label="First seen",
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
            label="Last seen",
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
            label="Sessions",
            headline=4,
        ),
        _count("page_views", C, ("page_view",), "Page views.", label="Page views", headline=11),
        _count("orders", C, ("order_placed",), "Orders placed.", label="Orders", headline=2),
        _count("paid_orders", C, ("order_paid",), "Orders paid.", label="Paid orders"),
        _agg(
            "revenue",
            C,
            ("order_paid",),
            Aggregate.sum,
            "amount_micros",
            Unit.currency,
            "Sum of amount over order_paid events.",
            label="Revenue",
            primary=True,
        ),
        _agg(
            "refunds",
            C,
            ("refund",),
            Aggregate.sum,
            "amount_micros",
            Unit.currency,
            "Sum of amount over refund events.",
            label="Refunds",
        ),
        _agg(
            "last_order_at",
            C,
            ("order_placed",),
            Aggregate.max,
            "event_time",
            Unit.timestamp,
            "Time of the customer's latest order_placed.",
            label="Last order",
            timeseries=False,
        ),
        _count(
            "ad_impressions",
            C,
            ("ad_impression",),
            "Ad impressions shown to the customer.",
            label="Ad impressions",
            headline=6,
        ),
        _count("ad_clicks", C, ("ad_click",), "Ad clicks by the customer.", label="Ad clicks", headline=5),
        _count(
            "tickets_opened",
            C,
            ("ticket_opened",),
            "Support tickets opened.",
            label="Tickets opened",
            headline=10,
        ),
        _count(
            "tickets_resolved", C, ("ticket_resolved",), "Support tickets resolved.", label="Tickets resolved"
        ),
        _agg(
            "csat_score_sum",
            C,
            ("csat_submitted",),
            Aggregate.sum,
            "score",
            Unit.score,
            "Sum of CSAT scores (helper base of csat_avg).",
            label="CSAT score sum",
            public=False,
        ),
        _count(
            "csat_responses",
            C,
            ("csat_submitted",),
            "CSAT answers submitted (helper base of csat_avg).",
            label="CSAT responses",
            public=False,
        ),
        # ---- customer grain: derived and durations
        _diff(
            "net_revenue",
            C,
            "revenue",
            "refunds",
            Unit.currency,
            "Revenue minus refunds.",
            label="Net revenue",
            headline=1,
        ),
        _ratio(
            "avg_order_value",
            C,
            "revenue",
            "paid_orders",
            Unit.currency,
            "Revenue per paid order (null without paid orders).",
            label="Avg. order value",
            headline=3,
        ),
        _diff(
            "open_tickets",
            C,
            "tickets_opened",
            "tickets_resolved",
            Unit.count,
            "Tickets opened minus tickets resolved.",
            label="Open tickets",
            headline=7,
        ),
        DurationMetric(
            name="avg_first_response_seconds",
            label="Avg. first response",
            short_label="First response",
            headline=9,
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
            label="Avg. resolution time",
            short_label="Resolution time",
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
            label="Satisfaction (CSAT)",
            short_label="CSAT",
            headline=8,
        ),
        # ---- campaign grain (per tenant)
        _count(
            "impressions",
            K,
            ("ad_impression",),
            "Ad impressions of the campaign.",
            non_null=("campaign_id",),
            label="Impressions",
            primary=True,
        ),
        _count(
            "clicks",
            K,
            ("ad_click",),
            "Ad clicks of the campaign.",
            non_null=("campaign_id",),
            label="Clicks",
        ),
        _agg(
            "spend",
            K,
            _AD,
            Aggregate.sum,
            "cost_micros",
            Unit.currency,
            "Advertiser spend: sum of cost over the campaign's ad events.",
            non_null=("campaign_id",),
            label="Spend",
        ),
        _count(
            "conversions",
            K,
            ("order_placed",),
            "Orders placed with this campaign_id (attribution).",
            non_null=("campaign_id",),
            label="Conversions",
        ),
        _ratio(
            "ctr",
            K,
            "clicks",
            "impressions",
            Unit.ratio,
            "Click-through rate: clicks / impressions.",
            label="Click-through rate",
            short_label="CTR",
        ),
        _ratio(
            "cpc",
            K,
            "spend",
            "clicks",
            Unit.currency,
            "Cost per click: spend / clicks.",
            label="Cost per click",
            short_label="CPC",
        ),
        _ratio(
            "cpa",
            K,
            "spend",
            "conversions",
            Unit.currency,
            "Cost per acquisition: spend / conversions.",
            label="Cost per acquisition",
            short_label="CPA",
        ),
        # ---- tenant grain: live orders over a window (the live badge shows them in this order)
        DurationMetric(
            name="avg_wait_seconds",
            label="Average wait",
            caption="from order to door",
            primary=True,
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
            label="90% delivered within",
            short_label="9 in 10 within",
            caption="90th percentile",
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
        EntityCountMetric(
            name="orders_in_progress",
            label="Orders in progress",
            short_label="In progress",
            caption="orders on their way",
            grain=T,
            unit=Unit.count,
            entity="order",
            present=("placed",),
            absent=("delivered", "cancelled"),
            windowed=True,
            window_on="placed",
            description="Orders placed within the window, neither delivered nor cancelled.",
        ),
    ),
)
