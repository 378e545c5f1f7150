"""Restart epochs: the table in the data folder and the translation between Kafka and logical offsets."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalytics.infra.epochs import (
    EMBEDDED_CLUSTER_PREFIX,
    EPOCHS_FILE,
    UNRECORDED_CLUSTER,
    Epoch,
    EpochError,
    EpochTable,
    base_after,
)
from lambdalytics.schemas.views import block_of, cut

pytestmark = pytest.mark.unit

TP = ("events.transaction", 0)
EMBEDDED_A = EMBEDDED_CLUSTER_PREFIX + "a"
EMBEDDED_B = EMBEDDED_CLUSTER_PREFIX + "b"

partitions = st.tuples(st.sampled_from(["events.behavioral", "events.transaction"]), st.integers(0, 5))
archived_vectors = st.dictionaries(partitions, st.integers(0, 10**12), max_size=8)


@given(archived=archived_vectors, block_size=st.integers(1, 10_000))
def test_a_base_is_the_first_block_start_at_or_above_everything_archived(archived, block_size):
    base = base_after(archived, block_size)
    for tp, offset in archived.items():
        b = base.get(tp, 0)
        assert b % block_size == 0
        assert offset <= b < offset + block_size
    assert set(base) == {tp for tp, o in archived.items() if o > 0}


@given(
    archived=archived_vectors,
    block_size=st.integers(1, 1000),
    kafka_offsets=st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
)
def test_logical_offsets_continue_the_line_without_sharing_a_block_with_the_past(
    archived, block_size, kafka_offsets
):
    epoch = Epoch(number=1, cluster_id=EMBEDDED_B, base=base_after(archived, block_size))
    for tp in archived:
        previous_blocks = {block_of(o, block_size) for o in range(max(archived[tp] - 1, 0), archived[tp])}
        for k in kafka_offsets:
            logical = epoch.logical(*tp, k)
            assert logical >= archived[tp]  # above everything archived before the epoch
            assert epoch.kafka(*tp, logical) == k  # and back
            assert block_of(logical, block_size) not in previous_blocks
        # the batch cut of everything before the epoch plus nothing of it is exactly the base
        assert cut({tp: epoch.base.get(tp, 0)}, block_size) == {tp: epoch.base.get(tp, 0)}


def test_a_position_below_the_base_is_the_start_of_the_epochs_log():
    epoch = Epoch(number=1, cluster_id=EMBEDDED_B, base={TP: 2000})
    assert epoch.kafka(*TP, 1000) == 0
    assert epoch.kafka("other", 0, 17) == 17  # a partition without a base starts at 0
    assert epoch.below_base({TP: 1000}) == {TP: 2000}
    assert epoch.below_base({TP: 2000}) == {}


def test_the_first_embedded_cluster_over_a_master_begins_above_it(tmp_path):
    table = EpochTable(tmp_path)
    first = table.enter(EMBEDDED_A, {}, 1000)
    assert (first.number, first.base) == (0, {})
    assert table.enter(EMBEDDED_A, {TP: 1234}, 1000) == first  # the same cluster stays in its epoch
    second = table.enter(EMBEDDED_B, {TP: 1234}, 1000)
    assert (second.number, second.base, second.block_size) == (1, {TP: 2000}, 1000)
    assert EpochTable(tmp_path).epochs() == [first, second]  # read back from the file
    assert EpochTable(tmp_path).for_cluster(EMBEDDED_B) == second
    assert EpochTable(tmp_path).for_cluster("unknown") is None


def test_an_older_epochs_cluster_is_refused(tmp_path):
    table = EpochTable(tmp_path)
    table.enter(EMBEDDED_A, {}, 10)
    table.enter(EMBEDDED_B, {TP: 5}, 10)
    with pytest.raises(EpochError, match="came after it"):
        table.enter(EMBEDDED_A, {TP: 15}, 10)


def test_the_first_cluster_is_base_0_and_readers_agree_before_it_is_recorded(tmp_path):
    table = EpochTable(tmp_path)
    assumed = table.for_cluster("Hx3-real-cluster")  # the table is empty: nobody restarted here
    adopted = table.enter("Hx3-real-cluster", {TP: 1234}, 1000)  # a master from before epochs
    assert assumed.base == adopted.base == {}  # logical = Kafka offsets, as the master was archived
    assert table.for_cluster("another-cluster") is None  # a later cluster waits for the archiver
    moved = table.enter("another-cluster", {TP: 1500}, 1000)
    assert (moved.number, moved.base) == (1, {TP: 2000})  # a new cluster id is a new epoch


def test_an_unrecorded_log_under_a_master_is_sealed_before_an_embedded_broker_starts(tmp_path):
    table = EpochTable(tmp_path)
    assert table.seal_unrecorded(master_exists=False) is None and table.epochs() == []
    sealed = table.seal_unrecorded(master_exists=True)
    assert (sealed.number, sealed.cluster_id, sealed.base) == (0, UNRECORDED_CLUSTER, {})
    assert table.seal_unrecorded(master_exists=True) is None  # once
    assert table.for_cluster(EMBEDDED_A) is None  # the new broker waits for its epoch
    assert table.enter(EMBEDDED_A, {TP: 1234}, 1000).base == {TP: 2000}


def test_the_table_is_replaced_whole_and_a_torn_one_is_refused(tmp_path):
    table = EpochTable(tmp_path)
    table.enter(EMBEDDED_A, {}, 10)
    table.enter(EMBEDDED_B, {TP: 5}, 10)
    assert [e["number"] for e in json.loads((tmp_path / EPOCHS_FILE).read_text())] == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == [EPOCHS_FILE]  # no temporary file left behind
    (tmp_path / EPOCHS_FILE).write_text('[{"number": 0, "cluster')
    with pytest.raises(EpochError, match="not a valid epoch table"):
        table.epochs()
    os.unlink(tmp_path / EPOCHS_FILE)
    assert table.epochs() == []


@settings(max_examples=60, deadline=None)
@given(
    block_size=st.integers(1, 50),
    epochs=st.lists(st.dictionaries(partitions, st.integers(0, 120), max_size=4), min_size=1, max_size=5),
)
def test_restarts_keep_one_line_per_partition_with_whole_blocks_per_epoch(block_size, epochs):
    """Brokers restarting from offset 0 (each with its own records per partition) over one folder: every
    record gets a unique logical offset, later epochs lie above earlier ones, no block holds two epochs,
    and the cut at a new epoch's base covers everything before it and nothing after."""
    with tempfile.TemporaryDirectory() as folder:
        table = EpochTable(folder)
        archived: dict[tuple[str, int], int] = {}
        placed: dict[tuple[str, int], list[tuple[int, int]]] = {}  # tp -> (logical offset, epoch)
        for number, records in enumerate(epochs):
            epoch = table.enter(f"{EMBEDDED_CLUSTER_PREFIX}{number}", archived, block_size)
            assert epoch.number == number
            assert all(o <= epoch.base.get(tp, 0) for tp, o in archived.items())
            for tp, (offset, _) in ((tp, p) for tp, ps in placed.items() for p in ps):
                assert offset < epoch.base.get(tp, 0)  # everything before the restart lies below its base
            for tp, n in records.items():
                for k in range(n):  # Kafka offsets 0..n-1 of this broker
                    placed.setdefault(tp, []).append((epoch.logical(*tp, k), number))
                if n:
                    archived[tp] = epoch.logical(*tp, n - 1) + 1  # the archiver's next offset
            assert cut(epoch.base, block_size) == epoch.base
        for offsets in placed.values():
            assert [o for o, _ in offsets] == sorted({o for o, _ in offsets})  # unique, in arrival order
            by_block: dict[int, set[int]] = {}
            for offset, number in offsets:
                by_block.setdefault(block_of(offset, block_size), set()).add(number)
            assert all(len(numbers) == 1 for numbers in by_block.values())
