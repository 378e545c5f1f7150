"""The quality ledger counts each position once (a replay adds nothing), sums a window from its arrival
hours only, keeps the newest record per topic, and says when it began counting after a partition's start."""

from __future__ import annotations

import pytest

from lambdalytics.infra.quality_ledger import UNKNOWN_TENANT, Observation, QualityLedger
from lambdalytics.schemas.catalog import HOUR_MS

pytestmark = pytest.mark.unit
TOPIC = "events.transaction"
TP = (TOPIC, 0)
T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS


def seen(offset: int, tenant: str | None, at: int, *counters: str) -> Observation:
    return Observation(TOPIC, 0, offset, tenant, at, counters)


def test_a_replayed_batch_adds_nothing_and_a_new_one_adds_its_records(tmp_path):
    batch = [seen(0, "t", T0, "records"), seen(1, "t", T0, "records", "duplicates")]
    with QualityLedger.open(tmp_path) as ledger:
        assert ledger.record(batch, covers={TP: 2}) == 2
        assert ledger.record(batch, covers={TP: 2}) == 0  # the crash-before-Delta-commit replay
        assert ledger.record([*batch, seen(2, "t", T0, "records")], covers={TP: 3}) == 1
        assert ledger.window("t", T0, T0) == {"records": 3, "duplicates": 1}
        assert ledger.totals() == {("t", "records"): 3, ("t", "duplicates"): 1}
        assert ledger.coverage().complete and ledger.coverage().counted == {TP: 3}


def test_a_window_reads_the_hours_it_overlaps_and_only_its_tenant(tmp_path):
    with QualityLedger.open(tmp_path) as ledger:
        ledger.record(
            [
                seen(0, "t", T0 - 3 * HOUR_MS, "records"),
                seen(1, "t", T0 - HOUR_MS + 5, "records", "late"),
                seen(2, "t", T0 + 10, "records"),
                seen(3, "u", T0 + 10, "records"),
                seen(4, None, T0 + 10, "dead_letters:invalid_json"),
            ],
            covers={TP: 5},
        )
        assert ledger.window("t", T0 - HOUR_MS, T0 + 1) == {"records": 2, "late": 1}
        assert ledger.window("t", T0 - 4 * HOUR_MS, T0 - 2 * HOUR_MS) == {"records": 1}
        assert ledger.window("u", T0, T0) == {"records": 1}
        assert ledger.window(UNKNOWN_TENANT, T0, T0) == {"dead_letters:invalid_json": 1}
        assert ledger.window("nobody", T0 - 9 * HOUR_MS, T0 + 9 * HOUR_MS) == {}


def test_the_newest_valid_record_per_topic_is_kept(tmp_path):
    with QualityLedger.open(tmp_path) as ledger:
        ledger.record([seen(0, "t", T0 + 50, "records"), seen(1, "t", T0 + 20, "records")], covers={TP: 2})
        ledger.record([seen(2, "t", T0 + 90, "dead_letters:schema")], covers={TP: 3})  # invalid: not a source
        ledger.record(
            [Observation("events.support", 0, 0, "t", T0 + 5, ("records",))],
            covers={("events.support", 0): 1},
        )
        assert ledger.last_events("t") == {TOPIC: T0 + 50, "events.support": T0 + 5}
        assert ledger.last_events("u") == {}


def test_a_ledger_begun_after_the_start_of_a_partition_says_so(tmp_path):
    with QualityLedger.open(tmp_path) as ledger:
        ledger.record([seen(1000, "t", T0, "records")], covers={TP: 1001})
        coverage = ledger.coverage()
        assert not coverage.complete and coverage.started == {TP: 1000}


def test_the_archivers_resume_offsets_begin_the_partitions_it_never_counted(tmp_path):
    other = ("events.support", 1)
    with QualityLedger.open(tmp_path) as ledger:
        ledger.begin({})  # a new data folder
        ledger.record([seen(0, "t", T0, "records")], covers={TP: 1})
        assert ledger.coverage().complete
        ledger.begin({TP: 1, other: 40})  # support:1 was archived before this ledger existed
        assert ledger.coverage().started == {TP: 0, other: 40} and not ledger.coverage().complete


def test_every_handle_sees_each_commit(tmp_path):
    with QualityLedger.open(tmp_path) as writer:
        reader = QualityLedger.open(tmp_path, create=False)
        assert reader is not None
        writer.record([seen(0, "t", T0, "records")], covers={TP: 1})
        assert reader.window("t", T0, T0) == {"records": 1}
        reader.close()
    assert QualityLedger.open(tmp_path / "absent", create=False) is None


def marked(offset: int, customer: str, *, marks: bool = False) -> Observation:
    return Observation(
        TOPIC,
        0,
        offset,
        "t",
        T0,
        ("records", "events"),
        subject=customer,
        marks=marks,
        if_marked=("identified_events",),
    )


def test_a_mark_counts_its_batch_and_later_ones_once_and_an_erasure_forgets_it(tmp_path):
    with QualityLedger.open(tmp_path) as ledger:
        ledger.record([marked(0, "a"), marked(1, "b")], covers={TP: 2})  # nobody identified yet
        first = [marked(2, "a"), marked(3, "a", marks=True), marked(4, "b")]  # a is, from this batch on
        assert ledger.record(first, covers={TP: 5}) == 3
        assert ledger.record(first, covers={TP: 5}) == 0  # a replay counts nothing again
        ledger.record([marked(5, "a"), marked(6, "b")], covers={TP: 7})
        assert ledger.window("t", T0, T0) == {"records": 7, "events": 7, "identified_events": 3}
        assert ledger.marked("t", "a") and not ledger.marked("t", "b") and not ledger.marked("u", "a")
        assert ledger.forget("t", ["a", "b"]) == 1
        assert not ledger.marked("t", "a")
        ledger.record([marked(7, "a")], covers={TP: 8})
        assert ledger.window("t", T0, T0)["identified_events"] == 3  # counters stay, the mark is gone
