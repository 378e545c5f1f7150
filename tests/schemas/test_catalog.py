"""Catalog consistency: the names the API promises, and each validation rule catching its mistake."""

from __future__ import annotations

import pytest

from lambdalytics.schemas.catalog import (
    CATALOG,
    Aggregate,
    BaseMetric,
    Catalog,
    CatalogError,
    DerivedMetric,
    DurationMetric,
    EventFilter,
    Grain,
    Unit,
    finalize,
)

pytestmark = pytest.mark.unit

CUSTOMER = [
    "events_total",
    "first_seen",
    "last_seen",
    "sessions",
    "page_views",
    "orders",
    "paid_orders",
    "revenue",
    "refunds",
    "net_revenue",
    "avg_order_value",
    "last_order_at",
    "ad_impressions",
    "ad_clicks",
    "tickets_opened",
    "tickets_resolved",
    "open_tickets",
    "avg_first_response_seconds",
    "avg_resolution_seconds",
    "csat_avg",
]
CAMPAIGN = ["impressions", "clicks", "spend", "conversions", "ctr", "cpc", "cpa"]
TENANT = ["orders_in_progress", "avg_wait_seconds", "p90_wait_seconds"]


def test_the_api_contract_names_exist_at_their_grain():
    for grain, names in ((Grain.customer, CUSTOMER), (Grain.campaign, CAMPAIGN), (Grain.tenant, TENANT)):
        public = {m.name for m in CATALOG.at(grain, public_only=True)}
        assert public == set(names), grain


def test_derived_metrics_name_existing_bases_of_their_grain():
    for metric in CATALOG.of_kind(DerivedMetric):
        for operand in metric.operands:
            assert CATALOG[operand].grain == metric.grain


def test_describe_publishes_every_public_metric_once():
    rows = CATALOG.describe()
    assert [r["name"] for r in rows] == [m.name for m in CATALOG.metrics if m.public]
    assert len({r["name"] for r in rows}) == len(rows)
    assert all(r["formula"] and r["description"] and r["unit"] for r in rows)
    assert next(r for r in rows if r["name"] == "avg_order_value")["formula"] == "revenue / paid_orders"


def _count(name, grain=Grain.customer, types=("page_view",), non_null=()):
    return BaseMetric(
        name=name,
        description="d",
        grain=grain,
        unit=Unit.count,
        filter=EventFilter(event_types=types, non_null=non_null),
        aggregate=Aggregate.count,
    )


def _ratio(name, a, b, unit=Unit.ratio, grain=Grain.customer):
    return DerivedMetric(name=name, description="d", grain=grain, unit=unit, op="ratio", operands=(a, b))


@pytest.mark.parametrize(
    ("metrics", "rule"),
    [
        ((_count("a"), _count("a")), "unique-names"),
        ((_count("a", types=("page_vue",)),), "known-event-types"),
        (
            (
                BaseMetric(
                    name="s",
                    description="d",
                    grain=Grain.customer,
                    unit=Unit.count,
                    filter=EventFilter(event_types="*"),
                    aggregate=Aggregate.sum,
                    column="nope",
                ),
            ),
            "known-columns",
        ),
        (
            (
                BaseMetric(
                    name="s",
                    description="d",
                    grain=Grain.customer,
                    unit=Unit.count,
                    filter=EventFilter(event_types="*"),
                    aggregate=Aggregate.sum,
                    column="tenant_id",
                ),
            ),
            "numeric-sum",
        ),
        (
            (
                BaseMetric(
                    name="s",
                    description="d",
                    grain=Grain.customer,
                    unit=Unit.count,
                    filter=EventFilter(event_types="*"),
                    aggregate=Aggregate.count,
                    column="score",
                ),
            ),
            "count-has-no-column",
        ),
        ((_count("a", grain=Grain.campaign),), "grain-key-present"),
        ((_count("a"), _ratio("r", "a", "missing")), "derived-bases-exist"),
        (
            (
                _count("a"),
                _count("b", grain=Grain.campaign, non_null=("campaign_id",)),
                _ratio("r", "a", "b"),
            ),
            "derived-same-grain",
        ),
        ((_count("a"), _ratio("x", "a", "y"), _ratio("y", "x", "a")), "derived-acyclic"),
        ((_count("a"), _count("b"), _ratio("r", "a", "b", unit=Unit.currency)), "unit-algebra"),
        (
            (
                DurationMetric(
                    name="d",
                    description="d",
                    grain=Grain.customer,
                    unit=Unit.seconds,
                    entity="ticket",
                    start="opened",
                    end="closed_forever",
                    statistic="mean",
                ),
            ),
            "milestone-exists",
        ),
        (
            (
                DurationMetric(
                    name="d",
                    description="d",
                    grain=Grain.customer,
                    unit=Unit.seconds,
                    entity="parcel",
                    start="a",
                    end="b",
                    statistic="mean",
                ),
            ),
            "entity-exists",
        ),
        ((_count("a"), _ratio("r", "a", "avg_resolution_seconds", unit=Unit.ratio)), "derived-of-mergeable"),
    ],
)
def test_each_rule_names_its_violation(metrics, rule):
    entities = CATALOG.entities
    extra = (CATALOG["avg_resolution_seconds"],) if rule == "derived-of-mergeable" else ()
    with pytest.raises(CatalogError, match=rule):
        Catalog(entities=entities, metrics=(*metrics, *extra))


def test_derive_applies_formulas_after_merge():
    merged = {
        "revenue": 30_000_000,
        "refunds": 5_000_000,
        "paid_orders": 4,
        "tickets_opened": 3,
        "tickets_resolved": 1,
        "csat_score_sum": 9,
        "csat_responses": 2,
    }
    out = CATALOG.derive(Grain.customer, merged)
    assert out["net_revenue"] == 25_000_000
    assert out["avg_order_value"] == 7_500_000
    assert out["open_tickets"] == 2
    assert out["csat_avg"] == 4.5
    assert CATALOG.derive(Grain.customer, {"revenue": 10})["avg_order_value"] is None  # no division by zero
    campaign = CATALOG.derive(
        Grain.campaign, {"impressions": 200, "clicks": 5, "spend": 2_500_000, "conversions": 0}
    )
    assert (campaign["ctr"], campaign["cpc"], campaign["cpa"]) == (0.025, 500_000, None)


def test_finalize_by_unit():
    assert finalize(CATALOG["revenue"], 12_345_678) == 12.345678
    assert finalize(CATALOG["first_seen"], 1_767_225_600_123) == "2026-01-01T00:00:00.123Z"
    assert finalize(CATALOG["avg_resolution_seconds"], 90_500) == 90.5
    assert finalize(CATALOG["orders"], 3) == 3
    assert finalize(CATALOG["avg_order_value"], None) is None
