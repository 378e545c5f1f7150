"""The event-id index: an entry keeps the lowest copy, coverage advances only over indexed ranges, and
every handle (in this process or another) sees each commit."""

from __future__ import annotations

import multiprocessing

import pytest

from lambdalytics.infra.event_index import EventIndex, index_key

pytestmark = pytest.mark.unit
TP = ("events.transaction", 0)


def test_an_entry_keeps_the_lowest_copy_whatever_the_order_it_is_written_in(tmp_path):
    with EventIndex.open(tmp_path) as index:
        assert index.record([("t", "e", *TP, 7)], covers={TP: 8}, after={}) == 1
        assert index.record([("t", "e", *TP, 9), ("t", "e", *TP, 7)], covers={}, after={}) == 0  # replay
        assert index.lowest("t", "e") == (*TP, 7)
        assert index.record([("t", "e", *TP, 3)], covers={}, after={}) == 1
        assert index.lowest("t", "e") == (*TP, 3)
        assert index.lowest("other-tenant", "e") is None  # the idempotency key is scoped to the tenant
        assert len(index) == 1


def test_coverage_advances_only_from_where_it_stands(tmp_path):
    with EventIndex.open(tmp_path) as index:
        index.record([("t", "a", *TP, 0)], covers={TP: 10}, after={})
        assert index.covered() == {TP: 10} and index.uncovered({TP: 10}) is None
        index.record([("t", "b", *TP, 25)], covers={TP: 30}, after={TP: 20})  # 10..20 never indexed
        assert index.covered() == {TP: 10}
        assert "covers ('events.transaction', 0) only below 10" in index.uncovered({TP: 20})
        index.record([], covers={TP: 30}, after=None)  # a rebuild: every master row below 30 is in
        index.record([], covers={TP: 5}, after=None)  # never backwards
        assert index.covered() == {TP: 30}


def test_an_id_with_copies_on_two_partitions_is_marked_spread_in_any_order(tmp_path):
    other = ("events.behavioral", 1)
    with EventIndex.open(tmp_path) as index:
        assert index.tracks_spread()  # created empty: every mark is made from its first entry
        index.record([("t", "same", *TP, 4), ("t", "same", *TP, 2)], covers={}, after={})  # a re-send
        index.record([("t", "up", *TP, 9)], covers={}, after={})
        index.record([("t", "up", *other, 1)], covers={}, after={})  # lower, on another partition
        index.record([("t", "down", *other, 1)], covers={}, after={})
        index.record([("t", "down", *TP, 9)], covers={}, after={})  # higher: the entry stays, still marked
        assert index.spread_of([("t", "same"), ("t", "up"), ("t", "down"), ("t", "never")]) == [
            False,
            True,
            True,
            False,
        ]
        assert index.lowest("t", "down") == (*other, 1)


def test_an_index_written_before_spread_marks_does_not_claim_them_until_rebuilt(tmp_path):
    import lmdb

    env = lmdb.open(str(tmp_path), max_dbs=2)  # the layout without the spread database
    with env.begin(write=True) as txn:
        txn.put(index_key("t", "e"), b"\x93\xa1x\x00\x01", db=env.open_db(b"entries", txn=txn))
        env.open_db(b"meta", txn=txn)
    env.close()
    with EventIndex.open(tmp_path) as index:
        assert index.lowest("t", "e") == ("x", 0, 1)
        assert not index.tracks_spread()
        index.track_spread()  # what a rebuild from the master declares
        assert index.tracks_spread()


def test_ids_too_long_for_a_key_are_kept_by_digest(tmp_path):
    long_id = "é" * 128  # 256 bytes: with a 64-byte tenant still a plain key
    longer = "😀" * 128  # 512 bytes: beyond LMDB's 511-byte key limit on its own
    assert len(index_key("t" * 64, longer)) < 511 and index_key("t", "a") == b"t\0a"
    with EventIndex.open(tmp_path) as index:
        index.record(
            [("t" * 64, longer, *TP, 1), ("t" * 64, long_id, *TP, 2), ("t" * 64, longer[:-1] + "x", *TP, 3)],
            covers={},
            after={},
        )
        assert index.lowest("t" * 64, longer) == (*TP, 1)
        assert index.lowest("t" * 64, long_id) == (*TP, 2)
        assert index.lowest("t" * 64, longer[:-1] + "x") == (*TP, 3)


def test_absent_index_is_not_created_by_a_reader(tmp_path):
    assert EventIndex.open(tmp_path / "nothing", create=False) is None
    assert not (tmp_path / "nothing").exists()


def test_handles_share_one_environment_and_see_each_commit(tmp_path):
    writer, reader = EventIndex.open(tmp_path), EventIndex.open(tmp_path, create=False)
    assert reader is not None
    writer.record([("t", "e", *TP, 4)], covers={TP: 5}, after={})
    writer.close()  # the other handle stays usable
    assert reader.lowest("t", "e") == (*TP, 4) and reader.covered() == {TP: 5}
    reader.close()


def _write_in_child(path: str) -> None:
    with EventIndex.open(path) as index:
        index.record([("t", "child", *TP, 11)], covers={TP: 12}, after={})


def test_another_process_writes_what_an_open_handle_then_reads(tmp_path):
    with EventIndex.open(tmp_path) as index:
        assert index.lowest("t", "child") is None
        child = multiprocessing.get_context("spawn").Process(target=_write_in_child, args=(str(tmp_path),))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert index.lowest("t", "child") == (*TP, 11) and index.covered() == {TP: 12}
