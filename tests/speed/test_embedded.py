"""The embedded speed store against a direct recomputation, at random watermarks (hypothesis)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.store import CoverageError

pytestmark = pytest.mark.unit
PARTITIONS = 3


def stream(seed: int) -> list[tuple[dict, str, int, int, int]]:
    """(row, topic, partition, offset, broker_ms) in consumption order, with duplicates and late events."""
    cfg = GeneratorConfig(
        seed=seed, rate=0.01, duration_s=2 * 86_400, duplicates=0.08, late=0.1, customers_per_tenant=15
    )
    offsets: dict[tuple[str, int], int] = {}
    out, clock = [], cfg.start_ms
    for obj in generate(cfg):
        event = validate_event(obj)
        tp = (event.topic, zlib.crc32(event.key) % PARTITIONS)
        offset = offsets.get(tp, 0)
        offsets[tp] = offset + 1
        clock = max(clock + 1, event.event_time)
        out.append((to_row(event), tp[0], tp[1], offset, clock))
    return out


STREAMS = {seed: stream(seed) for seed in (1, 2)}


def expected_after(records, watermark):
    """Direct recomputation: first copy of each (tenant, event_id) in consumption order, offset >= W."""
    seen, kept = set(), []
    for row, topic, partition, offset, _ in records:
        key = (row["tenant_id"], row["event_id"])
        if key in seen:
            continue
        seen.add(key)
        if offset >= watermark.get((topic, partition), 0):
            kept.append(row)
    by_customer: dict[tuple[str, str], dict] = {}
    for row in kept:
        c = by_customer.setdefault(
            (row["tenant_id"], row["customer_id"]),
            {
                "events_total": 0,
                "orders": 0,
                "revenue": None,
                "last_seen": None,
                "sessions": set(),
                "hours": {},
            },
        )
        c["events_total"] += 1
        c["orders"] += row["event_type"] == "order_placed"
        if row["event_type"] == "order_paid":
            c["revenue"] = (c["revenue"] or 0) + row["amount_micros"]
        c["last_seen"] = max(c["last_seen"] or 0, row["event_time"])
        if row["session_id"] and row["event_type"] in (
            "session_start",
            "page_view",
            "app_event",
            "search",
            "add_to_cart",
        ):
            c["sessions"].add(row["session_id"])
        hour = row["event_time"] // 3_600_000 * 3_600_000
        c["hours"][hour] = c["hours"].get(hour, 0) + 1
    return by_customer


def offsets_of(records):
    end: dict[tuple[str, int], int] = {}
    for _, topic, partition, offset, _ in records:
        end[(topic, partition)] = offset + 1
    return end


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(STREAMS)), block=st.sampled_from([1, 5, 16]), data=st.data())
def test_partials_after_any_block_cut_equal_direct_recomputation(seed, block, data):
    records = STREAMS[seed]
    end = offsets_of(records)
    # a random block-aligned cut per partition, as the batch layer would choose
    watermark = {tp: data.draw(st.integers(0, o // block), label=str(tp)) * block for tp, o in end.items()}
    store = EmbeddedSpeedStore(block_size=block)
    drop_first = data.draw(st.booleans(), label="drop before ingest")
    if drop_first:
        store.drop_below(watermark)
    for record in records:
        store.ingest(*record)
    if not drop_first:
        store.drop_below(watermark)
    expected = expected_after(records, watermark)
    customers = {(r[0]["tenant_id"], r[0]["customer_id"]) for r in records}
    for tenant, customer in customers:
        got = store.customer(tenant, customer, watermark)
        want = expected.get((tenant, customer))
        if want is None:
            assert got["events_total"] == 0
            continue
        assert got["events_total"] == want["events_total"]
        assert got["orders"] == want["orders"]
        assert got["revenue"] == want["revenue"]
        assert got["last_seen"] == want["last_seen"]
        assert got["sessions"] == want["sessions"]
        hours = store.customer_hours(tenant, customer, watermark, 0, 2**62)
        assert {h: p["events_total"] for h, p in hours.items()} == want["hours"]


def test_dedup_spans_the_boundary_and_blocks_are_dropped():
    records = STREAMS[1]
    store = EmbeddedSpeedStore(block_size=10)
    for record in records:
        store.ingest(*record)
    status = store.status()
    assert status.duplicates > 0 and status.events + status.duplicates == len(records)
    before = store.memory_keys()
    end = offsets_of(records)
    watermark = {tp: o // 10 * 10 for tp, o in end.items()}
    store.drop_below(watermark)
    assert store.memory_keys() < before / 5  # only the last, partial blocks remain
    with pytest.raises(CoverageError):  # an older watermark can no longer be answered: fail closed
        store.customer("demo-food", "food-c00000", {tp: 0 for tp in end})


def test_consumption_that_started_above_the_watermark_is_refused():
    store = EmbeddedSpeedStore(block_size=10)
    row, topic, partition, _, broker = STREAMS[1][0]
    store.ingest(row, topic, partition, 50, broker)
    with pytest.raises(CoverageError):
        store.customer(row["tenant_id"], row["customer_id"], {(topic, partition): 40})
    assert store.customer(row["tenant_id"], row["customer_id"], {(topic, partition): 50})["events_total"] == 1


def test_a_skipped_first_record_still_counts_as_consumed():
    """A contract-breaking record at offset 0 is skipped, not applied: consumption still began at 0."""
    store = EmbeddedSpeedStore(block_size=10)
    row, topic, partition, _, broker = STREAMS[1][0]
    store.skip(topic, partition, 0)
    store.ingest(row, topic, partition, 1, broker)
    assert store.customer(row["tenant_id"], row["customer_id"], {})["events_total"] == 1
    assert store.status().positions == {(topic, partition): 2}


def test_entities_straddle_the_boundary():
    """A ticket opened below W and answered above it: speed holds only the later milestone."""
    base = {
        c: None
        for c in (
            "session_id",
            "campaign_id",
            "order_id",
            "amount_micros",
            "currency",
            "cost_micros",
            "score",
            "channel",
            "priority",
            "promised_at",
            "properties",
        )
    }
    opened = {
        **base,
        "event_id": "a",
        "tenant_id": "t",
        "customer_id": "c",
        "event_type": "ticket_opened",
        "event_time": 1_000,
        "ticket_id": "k",
    }
    replied = {**opened, "event_id": "b", "event_type": "agent_replied", "event_time": 61_000}
    store = EmbeddedSpeedStore(block_size=2)
    store.ingest(opened, "events.support", 0, 0, 1_000)
    store.ingest(replied, "events.support", 0, 2, 61_000)
    w = {("events.support", 0): 2}
    assert store.customer_entities("t", "c", "ticket", w) == {
        "k": {"opened": None, "first_reply": 61_000, "resolved": None}
    }
    assert store.customer_entities("t", "c", "ticket", {("events.support", 0): 0})["k"]["opened"] == 1_000
