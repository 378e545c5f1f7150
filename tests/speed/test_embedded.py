"""What only the embedded store has: block sizes, dropping blocks, consumption positions (with the oracle).

Its reads are in the contract suite (``test_store_contract.py``) with Pinot's; here the hypothesis test
also varies the block size and whether blocks are dropped before or after ingestion.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.store import CoverageError

from .contract import typed
from .oracle import SpeedOracle
from .streams import end_offsets, stream

pytestmark = pytest.mark.unit
STREAMS = {seed: stream(seed) for seed in (1, 2)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(STREAMS)), block=st.sampled_from([1, 5, 16]), data=st.data())
def test_partials_after_any_block_cut_equal_direct_recomputation(seed, block, data):
    records = STREAMS[seed]
    end = end_offsets(records)
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
    oracle = SpeedOracle(records)
    for tenant, customer in {(r[0]["tenant_id"], r[0]["customer_id"]) for r in records}:
        for read in ("customer", "customer_hours"):
            args = (tenant, customer, watermark) + ((0, 2**62) if read == "customer_hours" else ())
            assert typed(getattr(store, read)(*args)) == typed(getattr(oracle, read)(*args)), (read, customer)


def test_dedup_spans_the_boundary_and_blocks_are_dropped():
    records = STREAMS[1]
    store = EmbeddedSpeedStore(block_size=10)
    for record in records:
        store.ingest(*record)
    status = store.status()
    assert status.duplicates > 0 and status.events + status.duplicates == len(records)
    before = store.memory_keys()
    end = end_offsets(records)
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
