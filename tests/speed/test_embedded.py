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


# ------------------------------------------------------------------------------ stream faults


def _events_of_one_customer(n: int) -> list[dict]:
    row = STREAMS[1][0][0]
    return [{**row, "event_id": f"e{i}", "customer_id": "one"} for i in range(n)]


def test_a_store_fed_by_a_consumer_refuses_reads_until_the_metadata_is_read():
    store = EmbeddedSpeedStore(block_size=10)
    store.track(None)  # what SpeedConsumer does when it is created
    with pytest.raises(CoverageError, match="has not read the topics' partitions"):
        store.customer("t", "c", {})


def test_a_partition_known_from_metadata_but_not_reached_is_uncovered_not_empty():
    store = EmbeddedSpeedStore(block_size=10)
    first, second = ("events.behavioral", 0), ("events.behavioral", 1)
    store.track([first, second])
    store.move_to(*first, 0)  # assigned, at its beginning, no record yet
    row = _events_of_one_customer(1)[0]
    with pytest.raises(CoverageError, match=r"'events.behavioral', 1\).*not consumed"):
        store.customer(row["tenant_id"], "one", {})
    assert store.status().unassigned == (second,)
    store.move_to(*second, 0)  # the consumer reaches it: covered, though no record arrived
    store.ingest(row, *first, 0, 1)
    assert store.customer(row["tenant_id"], "one", {})["events_total"] == 1
    assert store.status().positions == {first: 1, second: 0}


def test_a_lost_position_is_a_gap_refused_until_a_batch_version_passes_it():
    tp = ("events.transaction", 0)
    store = EmbeddedSpeedStore(block_size=10)
    rows = _events_of_one_customer(30)
    tenant = rows[0]["tenant_id"]
    for offset in range(12):
        store.ingest(rows[offset], *tp, offset, offset)
    gap = store.move_to(*tp, 17)  # the position jumped: offsets 12..16 were never consumed
    assert (gap.start, gap.end, gap.size) == (12, 17, 5)
    for offset in range(17, 30):
        store.ingest(rows[offset], *tp, offset, offset)
    status = store.status()
    assert status.gaps == (gap,) and status.lost_offsets == 5
    for w in (0, 10):  # inside or below the lost range: an answer would silently miss it
        with pytest.raises(CoverageError, match=r"\[12, 17\) lost"):
            store.customer(tenant, "one", {tp: w})
    store.on_batch_published({tp: 20}, block_size=10)  # a batch version whose W passes the gap
    assert store.customer(tenant, "one", {tp: 20})["events_total"] == 10
    assert store.status().gaps == () and store.status().lost_offsets == 5


def test_a_batch_cut_with_another_block_size_is_refused_not_undercounted():
    """The reproduction: 2000 events, a batch cut with B=1000 at W=1000, served by a store with B=300,
    answered 800 (blocks 900–1199 lie below W for the store) instead of the 1000 above W."""
    tp = ("events.behavioral", 0)
    rows = _events_of_one_customer(2000)
    tenant = rows[0]["tenant_id"]
    w = {tp: 1000}
    answers = {}
    for block in (300, 500, 1000):
        store = EmbeddedSpeedStore(block_size=block)
        for offset, row in enumerate(rows):
            store.ingest(row, *tp, offset, offset)
        store.on_batch_published(w, block_size=1000)
        try:
            answers[block] = store.customer(tenant, "one", w)["events_total"]
        except CoverageError as exc:
            answers[block] = str(exc)
    assert answers[1000] == 1000
    assert (
        answers[300] == "the batch version was cut with block size 1000, the speed side keeps blocks of 300"
    )
    assert answers[500].startswith("the batch version was cut with block size 1000")
    unrecorded = EmbeddedSpeedStore(block_size=300)  # a manifest from before B was recorded
    unrecorded.ingest(rows[0], *tp, 0, 0)
    unrecorded.on_batch_published({tp: 0}, block_size=None)
    with pytest.raises(CoverageError, match="W=1000 is not a multiple of the block size 300"):
        unrecorded.customer(tenant, "one", w)


def test_caught_up_means_every_position_reached_its_high_water_mark():
    first, second = ("events.behavioral", 0), ("events.behavioral", 1)
    store = EmbeddedSpeedStore(block_size=10)
    store.track([first, second])
    store.move_to(*first, 0)
    store.move_to(*second, 0)
    assert not store.status().caught_up  # no fetch response yet
    store.mark_caught_up(high_water={first: 0})
    assert not store.status().caught_up  # the second partition has no mark yet
    store.mark_caught_up(high_water={first: 2, second: 0})
    assert not store.status().caught_up  # two records on the first partition not applied
    row = _events_of_one_customer(1)[0]
    store.ingest(row, *first, 0, 1)
    store.skip(*first, 1)
    assert store.status().caught_up
    assert store.status().high_water == {first: 2, second: 0}


def _runs(records, sizes):
    """The records as a consumer's polls hand them over: per partition, runs of the drawn sizes (cycled)."""
    by_tp: dict[tuple[str, int], list] = {}
    for row, topic, partition, offset, broker in records:
        by_tp.setdefault((topic, partition), []).append((row, offset, broker))
    polls, i = [], 0
    for tp, items in by_tp.items():
        while items:
            size, i = sizes[i % len(sizes)], i + 1
            polls.append((tp, items[:size]))
            items = items[size:]
    return polls


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(sorted(STREAMS)),
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=5),
    data=st.data(),
)
def test_a_poll_applied_as_runs_equals_direct_recomputation(seed, sizes, data):
    """``ingest_many`` (what the consumer calls per partition and poll) answers as the oracle does, for
    any run lengths, with a block-aligned cut published before the runs arrive."""
    records, block = STREAMS[seed], 5
    end = end_offsets(records)
    watermark = {tp: data.draw(st.integers(0, o // block), label=str(tp)) * block for tp, o in end.items()}
    store = EmbeddedSpeedStore(block_size=block)
    store.drop_below(watermark)
    duplicates = sum(store.ingest_many(*tp, items) for tp, items in _runs(records, sizes))
    assert duplicates == store.status().duplicates
    assert store.status().positions == end
    oracle = SpeedOracle(records)
    tenants = {r[0]["tenant_id"] for r in records}
    for tenant, customer in {(r[0]["tenant_id"], r[0]["customer_id"]) for r in records}:
        for read, extra in (("customer", ()), ("customer_hours", (0, 2**62))):
            args = (tenant, customer, watermark, *extra)
            assert typed(getattr(store, read)(*args)) == typed(getattr(oracle, read)(*args)), (read, customer)
        for entity in ("order", "ticket"):
            args = (tenant, customer, entity, watermark)
            assert store.customer_entities(*args) == oracle.customer_entities(*args), (entity, customer)
    for tenant, campaign in {
        (r[0]["tenant_id"], r[0]["campaign_id"]) for r in records if r[0]["campaign_id"]
    }:
        args = (tenant, campaign, watermark, 0, 2**62)
        assert typed(store.campaign_hours(*args)) == typed(oracle.campaign_hours(*args)), campaign
    assert tenants


class _FailsOn(EmbeddedSpeedStore):
    def __init__(self, event_id: str, **kwargs):
        super().__init__(**kwargs)
        self.event_id = event_id

    def _aggregate(self, row, *args):
        if row["event_id"] == self.event_id:
            raise ValueError("injected apply fault")
        return super()._aggregate(row, *args)


def test_a_run_hands_a_failing_record_over_and_applies_the_rest_or_raises_after_the_ones_before():
    row, topic, partition, _, broker = STREAMS[1][0]
    items = [(dict(row, event_id=f"e{i}"), i, broker) for i in range(6)]
    items[4] = (None, 4, broker)  # consumed, not applied (a record that breaks the contract)
    handed: list[tuple[int, str]] = []
    store = _FailsOn("e2", block_size=10)
    store.ingest_many(topic, partition, items, on_error=lambda i, exc: handed.append((i, str(exc))))
    assert handed == [(2, "injected apply fault")]
    status = store.status()
    assert status.events == 4 and status.positions == {(topic, partition): 6}  # e0, e1, e3, e5
    assert store.customer(row["tenant_id"], row["customer_id"], {})["events_total"] == 4

    store = _FailsOn("e2", block_size=10)
    with pytest.raises(ValueError, match="injected"):
        store.ingest_many(topic, partition, items)
    assert store.status().events == 2 and store.status().positions == {(topic, partition): 3}
