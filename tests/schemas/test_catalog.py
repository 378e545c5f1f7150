"""Catalog consistency: the names the API promises, and each validation rule catching its mistake."""

from __future__ import annotations

import re

import pytest

from lambdalytics.schemas.catalog import (
    CATALOG,
    ENGINES,
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
from lambdalytics.schemas.compile import PinotSql, SparkSql, UnsupportedAggregate

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
        label=name.upper(),
        description="d",
        grain=grain,
        unit=Unit.count,
        filter=EventFilter(event_types=types, non_null=non_null),
        aggregate=Aggregate.count,
    )


def _max(name, column):
    return BaseMetric(
        name=name,
        label=name.upper(),
        description="d",
        grain=Grain.customer,
        unit=Unit.count,
        filter=EventFilter(event_types="*", non_null=(column,)),
        aggregate=Aggregate.max,
        column=column,
    )


def _ratio(name, a, b, unit=Unit.ratio, grain=Grain.customer):
    return DerivedMetric(
        name=name, label=name.upper(), description="d", grain=grain, unit=unit, op="ratio", operands=(a, b)
    )


@pytest.mark.parametrize(
    ("metrics", "rule"),
    [
        ((_count("a"), _count("a")), "unique-names"),
        ((_count("a", types=("page_vue",)),), "known-event-types"),
        (
            (
                BaseMetric(
                    name="s",
                    label="S",
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
                    label="S",
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
                    label="S",
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
                    label="D",
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
                    label="D",
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
        ((_max("s", "session_id"),), "engine-support: s: pinot computes max over numeric columns only"),
        (
            (
                DurationMetric(
                    name="d",
                    label="D",
                    description="d",
                    grain=Grain.customer,
                    unit=Unit.seconds,
                    entity="ticket",
                    start="opened",
                    end="resolved",
                    statistic="mean",
                    windowed=True,
                    window_on="opened",
                ),
            ),
            "entity-grain: d: customer-grain entity metrics are not windowed",
        ),
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


def _catalog_with(**changes):
    """The built-in catalog with some entries changed: {metric name: {field: value}}."""
    metrics = tuple(m.model_copy(update=changes.get(m.name, {})) for m in CATALOG.metrics)
    return Catalog(entities=CATALOG.entities, metrics=metrics)


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        (
            {"revenue": {"primary": False}},
            "one-primary: customer grain needs exactly one primary metric, has []",
        ),
        ({"orders": {"primary": True}}, "one-primary: customer grain needs exactly one primary"),
        (
            {"revenue": {"primary": False}, "first_seen": {"primary": True}},
            "primary-has-series: first_seen is the customer primary but has no time series",
        ),
        ({"orders": {"headline": 1}}, "headline-ranks-unique: customer grain repeats a headline rank"),
        ({"csat_responses": {"headline": 20}}, "display-public: csat_responses is not public"),
        ({"net_revenue": {"unit": Unit.count}}, "unit-algebra"),  # stage 1 still runs first
        ({"last_order_at": {"unit": Unit.count}}, "analysis-inputs: RFM reads 'last_order_at'"),
        ({"orders": {"timeseries": False}}, "analysis-inputs: cohorts read 'orders'"),
    ],
)
def test_each_page_and_analysis_rule_names_its_violation(changes, rule):
    with pytest.raises(CatalogError, match=re.escape(rule)):
        _catalog_with(**changes)


def test_the_built_in_catalog_passes_every_rule_of_every_stage():
    assert _catalog_with() == CATALOG


def test_every_engine_computes_every_built_in_base_and_lists_its_gaps_as_data():
    for engine in ENGINES:
        assert all(engine.refusal(m) is None for m in CATALOG.of_kind(BaseMetric)), engine.name
    assert {e.name for e in ENGINES} == {"spark", "embedded", "pinot"}
    with pytest.raises(UnsupportedAggregate, match="s: pinot computes max over numeric columns only"):
        PinotSql().aggregate(_max("s", "session_id"))
    assert (
        SparkSql().aggregate(_max("s", "session_id"))
        == "MAX(CASE WHEN session_id IS NOT NULL THEN session_id END)"
    )
    with pytest.raises(UnsupportedAggregate, match="pinot reads distinct counts as values"):
        PinotSql().aggregate(CATALOG["sessions"])


def test_kll_is_not_advertised():
    assert [a.value for a in Aggregate] == ["count", "sum", "min", "max", "hll_distinct"]


def test_the_dictionary_answers_what_pages_and_answers_need():
    rows = {r["name"]: r for r in CATALOG.describe()}
    assert all(r["label"] and r["short_label"] for r in rows.values())
    assert (rows["ctr"]["label"], rows["ctr"]["short_label"]) == ("Click-through rate", "CTR")
    # series: time-series bases and derivations of them only; at the metric's own grain
    assert {n for n, r in rows.items() if r["series"] and r["grain"] == "customer"} == {
        "events_total", "sessions", "page_views", "orders", "paid_orders", "revenue", "refunds",
        "ad_impressions", "ad_clicks", "tickets_opened", "tickets_resolved", "net_revenue",
        "avg_order_value", "open_tickets", "csat_avg",
    }  # fmt: skip
    assert not any(rows[n]["series"] for n in ("first_seen", "last_order_at", "avg_resolution_seconds"))
    # additive: counts, sums and their differences; never a ratio, an extreme or a duration
    assert {n for n, r in rows.items() if r["additive"] and r["grain"] == "campaign"} == {
        "impressions", "clicks", "spend", "conversions",
    }  # fmt: skip
    assert rows["net_revenue"]["additive"] and rows["open_tickets"]["additive"]
    assert not rows["sessions"]["additive"] and not rows["last_seen"]["additive"]
    assert not rows["avg_order_value"]["additive"] and not rows["avg_wait_seconds"]["additive"]
    primary = {r["grain"]: n for n, r in rows.items() if r["primary"]}
    assert primary == {"customer": "revenue", "campaign": "impressions", "tenant": "avg_wait_seconds"}
    headlines = sorted((r["headline"], n) for n, r in rows.items() if r["headline"])
    assert [n for _, n in headlines][:4] == ["net_revenue", "orders", "avg_order_value", "sessions"]
    assert rows["orders_in_progress"]["caption"] == "orders on their way"


def test_entity_metrics_are_grouped_by_the_entity_they_read():
    tenant = CATALOG.entity_metrics(Grain.tenant)
    assert {e: [m.name for m in ms] for e, ms in tenant.items()} == {
        "order": ["avg_wait_seconds", "p90_wait_seconds", "orders_in_progress"]
    }
    assert list(CATALOG.entity_metrics(Grain.customer)) == ["ticket"]


def test_views_merge_by_the_rule_of_each_aggregate_kind():
    """Incremental batch runs merge view values per aggregate kind, as ``schemas.aggregates.merge``
    does: counts and sums add, min/max keep the extreme, sketches union (never a per-metric formula)."""
    rule = {"count": "SUM", "sum": "SUM", "min": "MIN", "max": "MAX", "hll_distinct": "HLL_UNION_AGG"}
    for metric in CATALOG.of_kind(BaseMetric):
        merged = SparkSql().merge_aggregate(metric, metric.name)
        assert merged.startswith(f"{rule[metric.aggregate.value]}({metric.name}"), merged
    assert SparkSql().merge_aggregate(CATALOG["sessions"], "sessions") == "HLL_UNION_AGG(sessions, false)"
    assert SparkSql().merge_milestone("opened") == "MIN(opened)"
    with pytest.raises(UnsupportedAggregate, match="pinot computes max over numeric columns only"):
        PinotSql().merge_aggregate(_max("s", "session_id"), "s")
