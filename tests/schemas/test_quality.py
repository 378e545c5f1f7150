"""The quality dictionary: evaluated ratios, the catalog filters it reuses, and docs/metrics.md checked
against it (every figure documented with its window, nothing documented that is not defined)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.schemas.catalog.quality import (
    ATTRIBUTED_METRIC,
    ORDER_METRIC,
    QUALITY,
    describe_quality,
    evaluate,
)

pytestmark = pytest.mark.unit
METRICS_MD = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_ratios_are_computed_once_and_null_without_records():
    counts = {
        "records": 8,
        "duplicates": 2,
        "late": 0,
        "dead_letters:schema": 3,
        "dead_letters:invalid_json": 1,
    }
    out = evaluate(counts, {"events.behavioral": 1_000}, now_ms=4_500)
    assert out["dead_letters"] == {"total": 4, "by_reason": {"invalid_json": 1, "schema": 3}}
    assert out["duplicate_rate"] == {"value": 0.25, "duplicates": 2, "records": 8}
    assert out["late_event_rate"]["value"] == 0
    assert out["attributed_order_share"] == {"value": None, "attributed_orders": 0, "orders": 0}
    assert out["seconds_since_last_event"] == {"events.behavioral": 3.5}


def test_orders_and_attribution_are_the_catalogs_filters():
    orders, attributed = CATALOG[ORDER_METRIC].filter, CATALOG[ATTRIBUTED_METRIC].filter
    assert orders.event_types == attributed.event_types == ("order_placed",)
    assert attributed.non_null == ("campaign_id",)


def test_docs_metrics_md_lists_every_figure_with_its_window():
    text = METRICS_MD.read_text().split("## Data quality", 1)[1]
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| .+ \| ([a-z ]+) \|$", text, flags=re.M))
    assert set(documented) == {m.name for m in QUALITY}
    for m in QUALITY:
        assert documented[m.name] == ("all time" if m.window == "all time" else "arrival hours"), m.name
    assert [d["name"] for d in describe_quality()] == [m.name for m in QUALITY]
