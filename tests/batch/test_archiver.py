"""The archiver against a real Kafka-protocol broker: exact landing, dead letters, kill -9 at random.

The session broker is shared and the archiver always consumes the fixed event topics from the
beginning (each test has its own data dir), so assertions are about this test's events, selected by a
unique tenant_id, compared with what the producer got acknowledged (RecordMetadata) — never with
``end_offsets`` (wrong on Tansu, see infra/broker.py).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from kafka import KafkaConsumer, TopicPartition

from lambdalytics.batch.archiver import GAPS_KEY, Archiver, lost_ranges, run_archiver
from lambdalytics.batch.master import (
    MASTER_SCHEMA,
    OFFSETS_KEY,
    NoMasterDataset,
    Progress,
    append_batch,
    master_path,
    read_progress,
    rows_to_table,
    snapshot,
)
from lambdalytics.infra.event_index import EventIndex, event_index_path
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics, read_dead_letter
from lambdalytics.schemas.events import validate_event
from lambdalytics.schemas.topics import DEADLETTER_TOPIC
from lambdalytics.schemas.views import Gap, decode_offsets

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _events(tenant: str, n: int, start: int = 0) -> list[dict]:
    """A mix of the three families, some on the day before T0 (two event_date partitions)."""
    out: list[dict] = []
    for i in range(start, start + n):
        base = {"event_id": f"{tenant}-{i}", "tenant_id": tenant, "customer_id": f"c{i % 7}"}
        t = T0 + (i - n // 3) * 1000
        if i % 3 == 0:
            out.append({**base, "event_type": "page_view", "event_time": t, "properties": {"i": i}})
        elif i % 3 == 1:
            out.append(
                {
                    **base,
                    "event_type": "order_paid",
                    "event_time": t,
                    "order_id": f"o{i}",
                    "amount": 12.5,
                    "currency": "EUR",
                }
            )
        else:
            out.append(
                {**base, "event_type": "csat_submitted", "event_time": t, "ticket_id": f"k{i}", "score": 4}
            )
    return out


def _master_rows(data_dir: Path, tenant: str) -> list[dict]:
    table = DeltaTable(str(master_path(data_dir))).to_pyarrow_table()
    return table.filter(pc.equal(table["tenant_id"], tenant)).to_pylist()


def _dead_letters_from(bootstrap: str, keys: set[bytes], expect: int, timeout_s: float = 15.0) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = consumer.partitions_for_topic(DEADLETTER_TOPIC)
    consumer.assign([TopicPartition(DEADLETTER_TOPIC, p) for p in parts])
    consumer.seek_to_beginning()
    found: list = []
    deadline = time.monotonic() + timeout_s
    while len(found) < expect and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=300).values():
            found.extend(read_dead_letter(r) for r in batch if r.key in keys)
    consumer.close()
    return found


def _assert_indexed(data_dir: Path) -> int:
    """The event-id index holds every master event at its lowest copy and covers the archived offsets."""
    table = DeltaTable(str(master_path(data_dir))).to_pyarrow_table(
        columns=["tenant_id", "event_id", "topic", "partition", "offset"]
    )
    lowest: dict[tuple[str, str], tuple[str, int, int]] = {}
    for r in table.to_pylist():
        key, position = (r["tenant_id"], r["event_id"]), (r["topic"], r["partition"], r["offset"])
        lowest[key] = min(lowest.get(key, position), position)
    with EventIndex.open(event_index_path(data_dir), create=False) as index:
        assert index.uncovered(read_progress(master_path(data_dir)).offsets) is None
        assert len(index) == len(lowest)
        wrong = {key: index.lowest(*key) for key, pos in lowest.items() if index.lowest(*key) != pos}
        assert not wrong, f"{len(wrong)} events indexed at another copy, e.g. {list(wrong.items())[:3]}"
    return len(lowest)


def test_archives_each_valid_event_once_with_position_and_types(kafka_bootstrap, unique, tmp_path):
    ensure_topics(kafka_bootstrap, 3)
    tenant = f"arch-{unique}"
    objs = _events(tenant, 60)
    bad_key = f"{tenant}:bad".encode()
    with EventProducer(kafka_bootstrap) as producer:
        futures = [(obj, producer.send_obj(obj)) for obj in objs]
        bad = [
            producer.send_raw("events.behavioral", b"\xff not utf-8", key=bad_key),
            producer.send_raw("events.support", b'{"event_id": "x"', key=bad_key),
            producer.send_raw(
                "events.transaction", orjson.dumps({**objs[0], "event_id": "wrong"}), key=bad_key
            ),
        ]
    acked = {(f.get(10).topic, f.get(10).partition, f.get(10).offset): obj for obj, f in futures}
    bad_positions = {(m.topic, m.partition, m.offset) for m in (f.get(10) for f in bad)}

    assert read_progress(master_path(tmp_path)) == Progress(version=None, batch_seq=0, offsets={})
    stats = run_archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5, idle_exit_seconds=3.0)
    assert stats.rows >= len(objs) and stats.dead_lettered >= len(bad)

    path = master_path(tmp_path)
    table = DeltaTable(str(path))
    protocol = table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert table.metadata().partition_columns == ["event_date"]
    assert [f.name for f in table.schema().to_arrow()] == MASTER_SCHEMA.names

    rows = _master_rows(tmp_path, tenant)
    positions = Counter((r["topic"], r["partition"], r["offset"]) for r in rows)
    assert max(positions.values()) == 1 and set(positions) == set(acked)  # each valid event exactly once
    for row in rows:
        obj = acked[(row["topic"], row["partition"], row["offset"])]
        event = validate_event(obj)
        assert row["raw"] == event.to_json()
        assert row["event_id"] == obj["event_id"]
        assert int(row["event_time"].timestamp() * 1000) == obj["event_time"]
        assert row["event_date"] == row["event_time"].strftime("%Y-%m-%d")
        assert row["broker_time"] is not None
        if obj["event_type"] == "order_paid":
            assert (row["amount_micros"], row["currency"]) == (12_500_000, "EUR")
        if obj["event_type"] == "csat_submitted":
            assert row["score"] == 4
        if obj["event_type"] == "page_view":
            assert orjson.loads(row["properties"]) == obj["properties"]
    assert {r["event_date"] for r in rows} == {"2025-12-31", "2026-01-01"}

    # progress: the next offset after everything this test produced (nothing else produced since)
    progress = read_progress(path)
    assert progress.version == table.version() and progress.batch_seq == stats.batches
    expected: dict[tuple[str, int], int] = {}
    for topic, partition, offset in set(acked) | bad_positions:
        expected[(topic, partition)] = max(expected.get((topic, partition), 0), offset + 1)
    assert {tp: progress.offsets[tp] for tp in expected} == expected
    # mirrored to the consumer group for lag tools (informational; Delta stays the source of truth)
    group = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id="lambdalytics-archiver")
    try:
        assert {tp: group.committed(TopicPartition(*tp)) for tp in expected} == expected
    finally:
        group.close()
    version, offsets, snap = snapshot(path)
    assert (version, offsets) == (progress.version, progress.offsets) and snap.version() == version

    # the invalid records went to the dead-letter topic with their source position
    letters = _dead_letters_from(kafka_bootstrap, {bad_key}, expect=len(bad))
    from_archiver = {(d.source_topic, d.source_partition, d.source_offset) for d in letters}
    assert from_archiver == bad_positions
    assert {d.reason for d in letters} == {"invalid_utf8", "invalid_json", "wrong_topic"}

    # resuming from the Delta progress archives nothing twice
    again = run_archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.3, idle_exit_seconds=0.6)
    assert again.records == 0 and read_progress(path).batch_seq == progress.batch_seq

    # every landed row was indexed; a missing index is rebuilt from the master when the archiver starts
    indexed = _assert_indexed(tmp_path)
    shutil.rmtree(event_index_path(tmp_path))
    run_archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.3, idle_exit_seconds=0.6)
    assert _assert_indexed(tmp_path) == indexed


def test_snapshot_and_progress_of_missing_table(tmp_path):
    with pytest.raises(NoMasterDataset):
        snapshot(master_path(tmp_path))
    assert read_progress(master_path(tmp_path)).version is None


def _row(tenant: str, offset: int, event_time: int = T0) -> dict:
    return {
        "event_id": f"e{offset}",
        "tenant_id": tenant,
        "customer_id": "c",
        "event_type": "page_view",
        "event_time": event_time,
        "topic": "events.behavioral",
        "partition": 0,
        "offset": offset,
        "broker_time": event_time,
        "raw": b"{}",
    }


def test_zero_row_batches_commit_offsets_and_snapshots_time_travel(tmp_path):
    path = master_path(tmp_path)
    b0 = ("events.behavioral", 0)
    # a first batch whose records were all dead-lettered still creates the table and the progress
    assert append_batch(path, rows_to_table([]), {b0: 3}, 1) == 0
    assert read_progress(path) == Progress(version=0, batch_seq=1, offsets={b0: 3})
    rows = [_row("t2", 3), _row("t1", 4, T0 - 1)]
    assert append_batch(path, rows_to_table(rows), {b0: 5, ("events.support", 1): 1}, 2) == 1
    assert append_batch(path, rows_to_table([]), {b0: 6, ("events.support", 1): 1}, 3) == 2
    table = DeltaTable(str(path))
    assert [h["operationMetrics"]["num_added_files"] for h in table.history()] == [0, 2, 0]
    assert read_progress(path).offsets == {b0: 6, ("events.support", 1): 1}
    # every version knows exactly which offsets its rows cover
    assert snapshot(path, 0)[:2] == (0, {b0: 3})
    version, offsets, old = snapshot(path, 1)
    assert (version, offsets) == (1, {b0: 5, ("events.support", 1): 1})
    assert sorted(old.to_pyarrow_table()["offset"].to_pylist()) == [3, 4]
    p = table.protocol()
    assert (p.min_reader_version, p.min_writer_version) == (1, 2)
    # a non-archiver commit (compaction) does not hide the progress
    table.optimize.compact()
    assert read_progress(path).offsets == {b0: 6, ("events.support", 1): 1}


def test_a_stale_writer_is_fenced_not_rebased(tmp_path):
    path = master_path(tmp_path)
    append_batch(path, rows_to_table([_row("t", 0)]), {("events.behavioral", 0): 1}, 1)
    mine, other = DeltaTable(str(path)), DeltaTable(str(path))
    append_batch(other, rows_to_table([_row("t", 1)]), {("events.behavioral", 0): 2}, 2)
    with pytest.raises(CommitFailedError):
        append_batch(mine, rows_to_table([_row("t", 1)]), {("events.behavioral", 0): 2}, 2)
    assert read_progress(path).batch_seq == 2 and DeltaTable(str(path)).version() == 1


def _spawn(
    bootstrap: str, data_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    env = {
        **os.environ,
        "LAMBDALYTICS_KAFKA_BOOTSTRAP": bootstrap,
        "LAMBDALYTICS_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    log = open(data_dir / "archiver.log", "ab")  # noqa: SIM115 - inherited by the child, closed below
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "lambdalytics.batch.archiver", *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _wait_for_log(data_dir: Path, text: str, count: int, proc: subprocess.Popen, timeout_s=120.0) -> None:
    """Until archiver.log holds ``text`` ``count`` times: a fixed sleep races start-up on a busy box."""
    deadline = time.monotonic() + timeout_s
    while (data_dir / "archiver.log").read_text().count(text) < count:
        assert proc.poll() is None, (data_dir / "archiver.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} #{count} in archiver.log after {timeout_s}s"
        time.sleep(0.05)


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(kafka_bootstrap, unique, tmp_path):
    ensure_topics(kafka_bootstrap, 3)
    tenant = f"kill-{unique}"
    rng = random.Random(unique)
    acked: list = []
    stop_producing = threading.Event()
    done = threading.Event()

    def produce() -> None:
        """Keeps producing until the last kill, so every instance dies with events in flight."""
        with EventProducer(kafka_bootstrap, linger_ms=2) as producer:
            chunk = 0
            while not stop_producing.is_set():
                futures = [producer.send_obj(obj) for obj in _events(tenant, 25, start=chunk * 25)]
                producer.flush()
                acked.extend(f.get(10) for f in futures)
                if chunk % 10 == 3:  # an invalid record now and then: dead-lettered, offsets still advance
                    producer.send_raw("events.behavioral", b"not json", key=f"{tenant}:bad".encode())
                chunk += 1
                time.sleep(0.1)
        done.set()

    producer_thread = threading.Thread(target=produce, daemon=True)
    producer_thread.start()
    for i in range(4):
        proc = _spawn(kafka_bootstrap, tmp_path, "--max-batch-records", "50", "--max-batch-seconds", "0.2")
        # start-up (imports, snapshot) takes 1-2 s and longer on a busy box: count from "resuming";
        # then it connects and commits every ~0.2 s
        _wait_for_log(tmp_path, "archiver resuming", i + 1, proc)
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    stop_producing.set()
    producer_thread.join(30)
    assert done.is_set() and len(acked) > 500

    # SIGTERM: the running batch is finished and committed, exit code 0
    proc = _spawn(kafka_bootstrap, tmp_path, "--max-batch-records", "50", "--max-batch-seconds", "0.2")
    _wait_for_log(tmp_path, "archiver assigned", 5, proc)  # connected: there is a batch to finish
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0

    final = _spawn(
        kafka_bootstrap,
        tmp_path,
        "--max-batch-records",
        "500",
        "--max-batch-seconds",
        "0.3",
        "--idle-exit-seconds",
        "1.5",
    )
    assert final.wait(60) == 0, (tmp_path / "archiver.log").read_text()[-3000:]

    log_text = (tmp_path / "archiver.log").read_text()
    assert log_text.count("archiver resuming") == 6
    assert "finishing the current batch" in log_text
    rows = _master_rows(tmp_path, tenant)
    positions = Counter((r["topic"], r["partition"], r["offset"]) for r in rows)
    duplicates = {p: n for p, n in positions.items() if n > 1}
    assert not duplicates, f"archived twice: {sorted(duplicates)[:10]}"
    assert set(positions) == {(m.topic, m.partition, m.offset) for m in acked}, "lost acknowledged events"

    # globally, not only for this tenant: the master dataset is unique by (topic, partition, offset)
    table = DeltaTable(str(master_path(tmp_path))).to_pyarrow_table(columns=["topic", "partition", "offset"])
    assert table.group_by(["topic", "partition", "offset"]).aggregate([]).num_rows == table.num_rows
    progress = read_progress(master_path(tmp_path))
    for m in acked:
        assert progress.offsets[(m.topic, m.partition)] > m.offset
    _assert_indexed(tmp_path)  # indexed before each commit: no kill left a master row out of the index


def _raw(obj: dict, field: str, raw: bytes) -> bytes:
    """``obj`` as JSON with ``field``'s value replaced by raw JSON text (what a foreign producer sends)."""
    return orjson.dumps({**obj, field: "@@"}).replace(b'"@@"', raw)


def test_no_record_stops_the_archiver_and_an_oversized_one_is_dead_lettered_by_reference(
    kafka_bootstrap, unique, tmp_path
):
    """1e22, year 1 with an offset, and a record over the dead-letter producer's request limit (2 × the
    1 MiB event limit) on a topic that takes it: each is dead-lettered, the last by reference, and the
    valid events around them are archived."""
    import hashlib

    from kafka import KafkaProducer

    ensure_topics(kafka_bootstrap, 3)
    tenant = f"arch-bad-{unique}"
    before, after = _events(tenant, 9), _events(tenant, 9, start=9)
    paid = next(e for e in before if e["event_type"] == "order_paid")
    view = next(e for e in before if e["event_type"] == "page_view")
    bad_key = f"{tenant}:bad".encode()
    oversized = orjson.dumps({**view, "event_id": "huge", "properties": {"blob": "x" * (3 * 1024 * 1024)}})
    bad = [
        ("events.transaction", _raw({**paid, "event_id": "e22"}, "amount", b"1e22"), "contract_violation"),
        (
            "events.transaction",
            _raw(paid, "event_time", b'"0001-01-01T00:00:00+01:00"'),
            "contract_violation",
        ),
        ("events.behavioral", _raw(view, "event_time", b'"9999-12-31T23:59:59-01:00"'), "contract_violation"),
        ("events.behavioral", oversized, "payload_too_large"),
    ]
    big = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    with EventProducer(kafka_bootstrap) as producer:
        acked = [producer.send_obj(obj) for obj in before]
        producer.flush()
        bad_positions = {}
        for topic, value, reason in bad:
            meta = big.send(topic, key=bad_key, value=value).get(30)
            bad_positions[(meta.topic, meta.partition, meta.offset)] = (reason, value)
        big.close()
        acked += [producer.send_obj(obj) for obj in after]
    acked_positions = {(m.topic, m.partition, m.offset) for m in (f.get(10) for f in acked)}

    stats = run_archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5, idle_exit_seconds=3.0)
    rows = _master_rows(tmp_path, tenant)
    assert {(r["topic"], r["partition"], r["offset"]) for r in rows} == acked_positions  # all 18 neighbours
    assert len(rows) == len(before) + len(after) and stats.dead_lettered >= len(bad)
    progress = read_progress(master_path(tmp_path))
    assert all(progress.offsets[(t, p)] > o for t, p, o in bad_positions)  # moved past each one

    letters = _dead_letters_from(kafka_bootstrap, {bad_key}, expect=len(bad), timeout_s=30)
    by_position = {(d.source_topic, d.source_partition, d.source_offset): d for d in letters}
    assert set(by_position) == set(bad_positions)
    for position, (reason, value) in bad_positions.items():
        letter = by_position[position]
        assert letter.reason == reason
        if value is oversized:  # by reference: size, hash and a bounded prefix; the original stays put
            assert letter.by_reference and letter.original_size == len(value)
            assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
            assert letter.value == value[:1024] and letter.key == bad_key
        else:
            assert not letter.by_reference and letter.value == value


def test_a_dead_letter_the_broker_refuses_is_resent_by_reference(kafka_bootstrap, unique, monkeypatch):
    """A broker whose dead-letter topic refuses the record for good (MESSAGE_TOO_LARGE, below the
    client's limit): confirm() does not resend it verbatim forever, it sends a reference."""
    from kafka.errors import MessageSizeTooLargeError
    from kafka.producer.future import FutureProduceResult, FutureRecordMetadata

    from lambdalytics.batch.archiver import _DeadLetterSender
    from lambdalytics.schemas.events import ContractViolation

    ensure_topics(kafka_bootstrap, 3)
    key = f"refused-{unique}:c".encode()
    value = b"x" * 5000
    sender = _DeadLetterSender(kafka_bootstrap)
    real_send = sender._producer.send

    def refusing_send(topic, *, key=None, value=None, headers=()):
        if any(name == "dlq.reference" for name, _ in headers):
            return real_send(topic, key=key, value=value, headers=headers)
        refused = FutureProduceResult(TopicPartition(topic, 0))
        future = FutureRecordMetadata(refused, -1, None, None, -1, -1, -1)
        refused.failure(MessageSizeTooLargeError("the broker's max.message.bytes is smaller"))
        return future

    monkeypatch.setattr(sender._producer, "send", refusing_send)
    try:
        sender.dead_letter(value, ContractViolation("invalid_json", "x"), topic="events.behavioral", key=key)
        assert sender.confirm(timeout_s=10) == 1  # the verbatim send failed for good; the reference landed
    finally:
        sender.close()
    [letter] = _dead_letters_from(kafka_bootstrap, {key}, expect=1)
    assert letter.by_reference and letter.original_size == len(value) and letter.value == value[:1024]


def test_kill_9_after_compactions_loses_and_duplicates_nothing(kafka_bootstrap, unique, tmp_path):
    """The archiver compacts (and vacuums) between its micro-batches; killed after that and resumed,
    it lands every acknowledged event exactly once: a compaction commit hides no progress."""
    ensure_topics(kafka_bootstrap, 3)
    tenant = f"compact-{unique}"
    maintenance = {"LAMBDALYTICS_COMPACT_INTERVAL_SECONDS": "0.5", "LAMBDALYTICS_VACUUM_RETENTION_HOURS": "0"}
    args = ("--max-batch-records", "40", "--max-batch-seconds", "0.2")
    acked: list = []
    with EventProducer(kafka_bootstrap, linger_ms=2) as producer:

        def send(start: int, n: int) -> None:
            futures = [producer.send_obj(obj) for obj in _events(tenant, n, start=start)]
            producer.flush()
            acked.extend(f.get(10) for f in futures)

        send(0, 300)
        proc = _spawn(kafka_bootstrap, tmp_path, *args, "--log-level", "INFO", env=maintenance)
        _wait_for_log(tmp_path, "maintenance: master", 2, proc)
        send(300, 200)  # in flight while it is killed
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        send(500, 100)
    final = _spawn(kafka_bootstrap, tmp_path, *args, "--idle-exit-seconds", "1.5", env=maintenance)
    assert final.wait(120) == 0, (tmp_path / "archiver.log").read_text()[-3000:]

    history = DeltaTable(str(master_path(tmp_path))).history()
    assert sum(h["operation"] == "OPTIMIZE" for h in history) >= 2
    rows = _master_rows(tmp_path, tenant)
    positions = Counter((r["topic"], r["partition"], r["offset"]) for r in rows)
    assert not {p: n for p, n in positions.items() if n > 1}, "archived twice"
    assert set(positions) == {(m.topic, m.partition, m.offset) for m in acked}, "lost acknowledged events"
    progress = read_progress(master_path(tmp_path))
    for m in acked:
        assert progress.offsets[(m.topic, m.partition)] > m.offset


def test_a_forward_jump_is_recorded_beside_the_offsets_and_reported_never_silent(tmp_path):
    """A private broker (one partition per topic, offsets ours): the second run's position is lost and
    reset 3 records past the archived offset, as a reset or a seek past data would do."""
    from lambdalytics.infra.broker import EmbeddedBroker

    tenant, tp = "jump", ("events.behavioral", 0)

    class Jumping(Archiver):
        def _refresh_partitions(self, force: bool = False) -> None:
            first = not self._assigned
            super()._refresh_partitions(force)
            if first and self._assigned:
                self._consumer.seek(TopicPartition(*tp), self._offsets[tp] + 3)

    page_views = [e for e in _events(tenant, 60) if e["event_type"] == "page_view"]
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        with EventProducer(broker.bootstrap) as producer:
            first = [producer.send_obj(e) for e in page_views[:10]]
        assert [f.get(10).offset for f in first] == list(range(10))
        run_archiver(broker.bootstrap, tmp_path, max_batch_seconds=0.5, idle_exit_seconds=2.0)
        with EventProducer(broker.bootstrap) as producer:
            for e in page_views[10:20]:
                producer.send_obj(e).get(10)
        archiver = Jumping(broker.bootstrap, tmp_path, max_batch_seconds=0.5)
        stats = archiver.run(idle_exit_seconds=2.0)

    lost = Gap(*tp, 10, 13)
    assert archiver.gaps == [lost] and stats.lost_offsets == 3
    assert lost_ranges(tmp_path) == [lost]
    commit = next(c for c in DeltaTable(str(master_path(tmp_path))).history() if GAPS_KEY in c)
    assert decode_offsets(commit[OFFSETS_KEY])[tp] == 20  # recorded beside the offsets that move past it
    offsets = sorted(r["offset"] for r in _master_rows(tmp_path, tenant))
    assert offsets == [*range(10), *range(13, 20)]  # what was lost is missing, and said so


def test_a_restarted_broker_lands_on_the_logical_line_and_moves_the_progress_to_its_base(tmp_path):
    """Two private brokers, each starting at offset 0, one data folder (B=10): the second broker's records
    land at base + offset, its epoch's zero-row commit moves the progress to the base at once, and a dead
    letter keeps its own Kafka position plus the epoch."""
    from lambdalytics.batch.archiver import EPOCH_KEY
    from lambdalytics.infra.broker import EmbeddedBroker
    from lambdalytics.infra.epochs import EpochTable

    tenant, tp = "epochs", ("events.behavioral", 0)
    page_views = [e for e in _events(tenant, 60) if e["event_type"] == "page_view"]
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        with EventProducer(broker.bootstrap) as producer:
            for e in page_views[:13]:
                producer.send_obj(e).get(10)
        Archiver(broker.bootstrap, tmp_path, block_size=10, max_batch_seconds=0.5).run(idle_exit_seconds=2.0)
    assert read_progress(master_path(tmp_path)).offsets[tp] == 13
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        archiver = Archiver(broker.bootstrap, tmp_path, block_size=10, max_batch_seconds=0.5)
        archiver.run(idle_exit_seconds=1.0)  # nothing produced yet: the progress still moves to the base
        assert read_progress(master_path(tmp_path)).offsets[tp] == 20
        (jump,) = [c for c in DeltaTable(str(master_path(tmp_path))).history() if EPOCH_KEY in c]
        assert jump[EPOCH_KEY] == 1 and decode_offsets(jump[OFFSETS_KEY])[tp] == 20
        with EventProducer(broker.bootstrap) as producer:
            for e in page_views[13:16]:
                producer.send_obj(e).get(10)
            producer.send_raw(tp[0], b"not json", key=b"epochs:bad").get(10)  # Kafka offset 3
            producer.send_obj(page_views[16]).get(10)
        stats = Archiver(broker.bootstrap, tmp_path, block_size=10, max_batch_seconds=0.5).run(
            idle_exit_seconds=2.0
        )
        (dead,) = _dead_letters_from(broker.bootstrap, {b"epochs:bad"}, expect=1)
    assert stats.lost_offsets == 0 and stats.dead_lettered == 1
    assert (dead.source_offset, dead.source_epoch) == (3, 1)  # the record's own position in epoch 1's log
    assert read_progress(master_path(tmp_path)).offsets[tp] == 25
    offsets = sorted(r["offset"] for r in _master_rows(tmp_path, tenant))
    assert offsets == [*range(13), 20, 21, 22, 24]  # unique on one line; [13, 20) never existed
    assert [e.number for e in EpochTable(tmp_path).epochs()] == [0, 1]


@pytest.mark.parametrize("drain_seconds", [0.0, 20.0], ids=["no-drain", "drain"])
def test_a_drain_after_the_stop_lands_everything_the_broker_holds(tmp_path, drain_seconds):
    """The embedded broker's log dies with it: stopped after its first micro-batch of 5, the archiver lands
    the other 45 records the broker already holds only when it drains (what ``up`` does)."""
    from lambdalytics.infra.broker import EmbeddedBroker

    tenant = "drain"
    stop = threading.Event()

    class StopsAfterFirstBatch(Archiver):
        def _commit(self, *args, **kwargs):
            version = super()._commit(*args, **kwargs)
            stop.set()
            return version

    page_views = [e for e in _events(tenant, 150) if e["event_type"] == "page_view"]
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        with EventProducer(broker.bootstrap) as producer:
            for e in page_views:
                producer.send_obj(e).get(10)
        archiver = StopsAfterFirstBatch(
            broker.bootstrap, tmp_path, max_batch_records=5, max_batch_seconds=0.5
        )
        stats = archiver.run(stop_event=stop, drain_seconds=drain_seconds)
    landed = len(_master_rows(tmp_path, tenant))
    if drain_seconds:
        assert landed == len(page_views) == 50 and stats.unlanded == 0
    else:
        assert landed == 5
