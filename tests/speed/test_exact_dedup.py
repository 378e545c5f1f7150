"""Exact deduplication in the embedded store, beyond any window and on no record's clock.

A copy is not counted when the store holds another one above its floor, or when the event-id index (what
the archiver writes before each master commit) names a lower copy or one the batch view counts. The
property test plays the archiver, the batch and the consumer over random streams whose duplicates arrive
at arbitrary broker times, and checks batch (an oracle of each event's lowest copy below W) ⊕ speed ==
the truth after every step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.infra.event_index import EventIndex, event_index_path
from lambdalytics.schemas import aggregates
from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.speed import embedded
from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.store import CoverageError

from .contract import typed
from .oracle import SpeedOracle
from .streams import stream

pytestmark = pytest.mark.unit
HOUR = 3_600_000
TP = ("events.transaction", 0)


def _events_of_one_customer(n: int) -> list[dict]:
    rows = [r[0] for r in stream(1) if r[1] == TP[0]]
    customer = rows[0]["customer_id"]
    distinct = {r["event_id"]: r for r in rows if r["customer_id"] == customer}
    assert len(distinct) >= n
    return list(distinct.values())[:n]


def _archive(index: EventIndex, records, before: dict, after: dict) -> None:
    """What the archiver does before each master commit."""
    copies = [(row["tenant_id"], row["event_id"], t, p, o) for row, t, p, o, _ in records]
    index.record(copies, covers=after, after=before)


def _total(store, row, watermark) -> int:
    return store.customer(row["tenant_id"], row["customer_id"], watermark)["events_total"]


@pytest.fixture(params=["without index", "with index"])
def store(request, tmp_path):
    if request.param == "with index":
        return EmbeddedSpeedStore(block_size=10, event_index=event_index_path(tmp_path))
    return EmbeddedSpeedStore(block_size=10)


def test_a_record_stamped_48h_ahead_does_not_make_later_copies_count(store):
    """On main the window expired by the record's own broker time: one record 48 h ahead emptied it."""
    a, future, b = _events_of_one_customer(3)
    t = 1_767_225_600_000
    assert store.ingest(a, *TP, 0, t)
    assert store.ingest(future, *TP, 1, t + 48 * HOUR)
    assert store.ingest(b, *TP, 2, t + 2)
    assert not store.ingest(a, *TP, 3, t + 3)  # a copy of a recent event: counted once
    assert not store.ingest(future, *TP, 4, t - 30 * 24 * HOUR)  # nor does a timestamp far behind matter
    assert _total(store, a, {}) == 3 and store.status().duplicates == 2


@pytest.mark.parametrize("consumed_the_original", [True, False])
def test_a_resend_25h_after_an_original_the_batch_covers_counts_once(tmp_path, consumed_the_original):
    """The original at offset 0 is in the batch view (W=10); its re-send comes 25 h later in broker time,
    beyond any 24 h window, to a store that consumed the original and dropped its block — or that began
    at W and never saw it."""
    a, b = _events_of_one_customer(2)
    t = 1_767_225_600_000
    path = event_index_path(tmp_path)
    with EventIndex.open(path) as index:
        _archive(index, [(a, *TP, 0, t), (b, *TP, 1, t + 1)], {}, {TP: 2})
        store = EmbeddedSpeedStore(block_size=10, event_index=path)
        if consumed_the_original:
            store.ingest(a, *TP, 0, t)
            store.ingest(b, *TP, 1, t + 1)
            store.skip(*TP, 9)
            _archive(index, [], {TP: 2}, {TP: 10})
        else:
            store.move_to(*TP, 10)  # the consumer's start, at W
            _archive(index, [], {}, {TP: 10})
        store.on_batch_published({TP: 10}, block_size=10)
        assert not store.ingest(a, *TP, 15, t + 25 * HOUR)
        assert not store.ingest(a, *TP, 16, t + 49 * HOUR)
        assert _total(store, a, {TP: 10}) == 0  # the batch view's 2 events, nothing more
        assert store.ingest(b | {"event_id": "fresh"}, *TP, 17, t + 25 * HOUR)
        assert _total(store, a, {TP: 10}) == 1


def test_a_copy_of_an_event_archived_above_w_counts_once_across_the_next_cut(tmp_path):
    """The first copy is above W when the second arrives (the store holds it); then a batch covers only
    the first: the second is still nothing, and the first is the batch view's."""
    (a,) = _events_of_one_customer(1)
    path = event_index_path(tmp_path)
    with EventIndex.open(path) as index:
        store = EmbeddedSpeedStore(block_size=10, event_index=path)
        store.move_to(*TP, 0)
        assert store.ingest(a, *TP, 3, 0)
        assert not store.ingest(a, *TP, 12, 25 * HOUR)  # not archived yet: the store's own copy
        _archive(index, [(a, *TP, 3, 0), (a, *TP, 12, 25 * HOUR)], {}, {TP: 13})
        store.on_batch_published({TP: 10}, block_size=10)
        assert not store.ingest(a, *TP, 14, 50 * HOUR)
        assert _total(store, a, {TP: 10}) == 0


def test_an_event_id_reused_in_another_partition_is_not_counted_beside_the_batch_copy(tmp_path):
    """Not a re-send (that keeps its key, so its partition): an id reused under another key. The batch
    counts its copy in partition 1; the copy in partition 0 lies lower in Kafka order, yet it is nothing
    while the batch's copy is below W."""
    (a,) = _events_of_one_customer(1)
    other = (TP[0], 1)
    path = event_index_path(tmp_path)
    with EventIndex.open(path) as index:
        _archive(index, [(a, *other, 0, 0)], {}, {other: 10, TP: 10})
        store = EmbeddedSpeedStore(block_size=10, event_index=path)
        for tp in (TP, other):
            store.move_to(*tp, 10)
        store.on_batch_published({TP: 10, other: 10}, block_size=10)
        assert not store.ingest(a, *TP, 15, 0)
        assert _total(store, a, {TP: 10, other: 10}) == 0


@pytest.mark.parametrize("unconsumed", ["lost range", "late start"])
def test_a_copy_applied_above_offsets_never_consumed_fails_closed_once_the_batch_counts_the_original(
    tmp_path, unconsumed
):
    """The original lies where the store never read (a lost position, or consumption that began above
    it) and the archiver had not indexed it when its copy came: the copy was applied. Once a batch
    counts the original, the copy's offset fails closed until a batch passes it — never a double count."""
    a, b = _events_of_one_customer(2)
    path = event_index_path(tmp_path)
    with EventIndex.open(path) as index:
        store = EmbeddedSpeedStore(block_size=10, event_index=path)
        if unconsumed == "lost range":
            store.move_to(*TP, 0)
            store.ingest(b, *TP, 0, 0)
            store.move_to(*TP, 8)  # offsets 1..7 lost; the original is at 5
        else:
            store.move_to(*TP, 8)  # began at 8, above the original
        assert store.ingest(a, *TP, 12, 25 * HOUR)
        _archive(index, [(b, *TP, 0, 0), (a, *TP, 5, 0), (a, *TP, 12, 25 * HOUR)], {}, {TP: 13})
        store.on_batch_published({TP: 10}, block_size=10)
        with pytest.raises(CoverageError, match=r"\[12, 13\)"):
            _total(store, a, {TP: 10})
        store.skip(*TP, 19)
        _archive(index, [], {TP: 13}, {TP: 20})
        store.on_batch_published({TP: 20}, block_size=10)
        assert _total(store, a, {TP: 20}) == 0 and store.status().gaps == ()


def test_without_an_index_dropped_ids_are_retained_by_the_stores_clock_not_the_records(tmp_path):
    a, b = _events_of_one_customer(2)
    store = EmbeddedSpeedStore(block_size=10, dedup_window_ms=24 * HOUR)
    now = [1000.0]
    store.clock = lambda: now[0]
    store.ingest(a, *TP, 0, 0)
    store.drop_below({TP: 10})
    store.ingest(b, *TP, 10, 400 * HOUR)  # a record far ahead moves nothing
    assert not store.ingest(a, *TP, 11, 25 * HOUR)
    now[0] += 24 * 3600 + 1  # a day of the store's own time: the id is forgotten (why serving has an index)
    assert store.ingest(a, *TP, 12, 25 * HOUR)


def test_a_w_the_index_does_not_cover_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "INDEX_RETRY_S", 0)  # look for the index at every read
    (a,) = _events_of_one_customer(1)
    path = event_index_path(tmp_path)
    store = EmbeddedSpeedStore(block_size=10, event_index=path)
    store.move_to(*TP, 0)
    store.ingest(a, *TP, 12, 0)
    assert _total(store, a, {}) == 1  # W zero needs no index
    with pytest.raises(CoverageError, match="no event index"):
        _total(store, a, {TP: 10})
    with EventIndex.open(path) as index:
        _archive(index, [], {}, {TP: 5})
        with pytest.raises(CoverageError, match="only below 5"):
            _total(store, a, {TP: 10})
        _archive(index, [], {TP: 5}, {TP: 10})
        assert _total(store, a, {TP: 10}) == 1


def test_a_record_the_store_cannot_apply_opens_a_gap_until_a_batch_passes_it():
    a, b = _events_of_one_customer(2)
    store = EmbeddedSpeedStore(block_size=10)
    store.ingest(a, *TP, 0, 0)
    gap = store.fail(*TP, 1, "ingest failed: ValueError")
    store.ingest(b, *TP, 2, 0)
    assert (gap.start, gap.end) == (1, 2) and store.status().gaps == (gap,)
    assert store.status().positions == {TP: 3}
    with pytest.raises(CoverageError, match=r"\[1, 2\) lost"):
        _total(store, a, {})
    store.on_batch_published({TP: 10}, block_size=10)
    assert store.status().gaps == () and _total(store, a, {TP: 10}) == 0


# ------------------------------------------------------------------------------------- the property

_POOL = [r for r in {r[0]["event_id"]: r for r in stream(2)}.values()][
    :400
]  # distinct events, each in its partition


def _merged(batch: dict, speed: dict) -> dict:
    return {name: aggregates.merge(CATALOG[name], batch[name], speed[name]) for name in batch}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batch_plus_speed_equals_the_truth_for_copies_at_any_broker_time_and_any_cuts(data):
    block = data.draw(st.sampled_from([1, 2, 5]), label="block size")
    events = data.draw(
        st.lists(st.sampled_from(_POOL), min_size=1, max_size=12, unique_by=lambda r: r[0]["event_id"])
    )
    sends = data.draw(st.lists(st.sampled_from(range(len(events))), min_size=1, max_size=40), label="sends")
    records, next_offset = [], {}
    for i in sends:
        row, topic, partition, _, _ = events[i]
        offset = next_offset.get((topic, partition), 0)
        next_offset[(topic, partition)] = offset + 1
        broker_ms = data.draw(st.integers(0, 400 * HOUR), label="broker time")  # any order, any distance
        records.append((row, topic, partition, offset, broker_ms))
    with tempfile.TemporaryDirectory() as tmp:
        path = event_index_path(Path(tmp))
        index = EventIndex.open(path)
        store = EmbeddedSpeedStore(block_size=block, event_index=path)
        archived, consumed, w, lost = 0, 0, {}, set()
        begins_at_w = data.draw(st.booleans(), label="consumer begins at the first W")
        if not begins_at_w:
            for tp in next_offset:
                store.move_to(*tp, 0)
        try:
            for _ in range(data.draw(st.integers(1, 5), label="steps")):
                # the archiver lands a longer prefix, indexing it first
                upto = data.draw(st.integers(archived, len(records)), label="archived")
                ends = _ends(records[:archived])
                _archive(index, records[archived:upto], ends, _ends(records[:upto]))
                archived = upto
                # a batch cuts at block multiples of what is archived, never backwards
                landed = _ends(records[:archived])
                w = {
                    tp: data.draw(st.integers(w.get(tp, 0) // block, landed.get(tp, 0) // block)) * block
                    for tp in next_offset
                }
                if begins_at_w and not store.status().positions:
                    for tp in next_offset:
                        store.move_to(*tp, w[tp])
                    consumed = _first_at_or_above(records, w)
                store.on_batch_published(w, block_size=block)
                # the consumer reads on, ahead of the archiver or behind it
                more = data.draw(st.integers(consumed, len(records)), label="consumed")
                # now and then its position is lost past one record (a Gap, until a batch passes it)
                lose = (
                    data.draw(st.integers(consumed, max(more - 1, consumed)), label="lost")
                    if data.draw(st.booleans(), label="lose a record")
                    else None
                )
                for i in range(consumed, more):
                    record = records[i]
                    if record[3] < w.get(record[1:3], 0) and begins_at_w:
                        continue
                    if i == lose:
                        lost.add(i)
                        store.move_to(*record[1:3], record[3] + 1)
                    else:
                        store.ingest(*record)
                consumed = max(consumed, more)
                _check(store, records, w, consumed, lost)
        finally:
            index.close()


def _ends(records) -> dict:
    out: dict = {}
    for _, topic, partition, offset, _ in records:
        out[(topic, partition)] = offset + 1
    return out


def _first_at_or_above(records, w) -> int:
    """Where a consumer that begins at W starts in the send order: records before it lie below W."""
    for i, (_, topic, partition, offset, _) in enumerate(records):
        if offset >= w.get((topic, partition), 0):
            return i
    return len(records)


def _check(store, records, w, consumed, lost) -> None:
    """Batch ⊕ speed equals the truth over what both sides hold — or the store refuses, for a lost range."""
    if gaps := [g for g in store.status().gaps if g.end > w.get((g.topic, g.partition), 0)]:
        with pytest.raises(CoverageError, match="lost"):
            store.customer(records[0][0]["tenant_id"], records[0][0]["customer_id"], w)
        assert any(i in lost for i in range(len(records))) and gaps
        return
    below = [r for r in records if r[3] < w.get(r[1:3], 0)]
    seen = [r for i, r in enumerate(records) if i < consumed and i not in lost and r[3] >= w.get(r[1:3], 0)]
    batch, truth = SpeedOracle(below), SpeedOracle([r for r in records if r in below or r in seen])
    for tenant, customer in {(r[0]["tenant_id"], r[0]["customer_id"]) for r in records}:
        merged = _merged(batch.customer(tenant, customer, {}), store.customer(tenant, customer, w))
        assert typed(merged) == typed(truth.customer(tenant, customer, {})), (customer, w)
