"""Compaction and retention, and the O(1) manifest pointer, on real Delta tables (no Spark, no Kafka).

View versions are published through the real :class:`ViewWriter` with small tables; the master gets
archiver commits through the archiver's own commit path (``Archiver._commit``, retries included).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pydantic import ValidationError

from lambdalytics.batch import writer
from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.compaction import COMPACTION_WRITER, MaintenancePolicy, footprint, maintain
from lambdalytics.batch.master import (
    WRITER_KEY,
    ConcurrentArchiverError,
    append_batch,
    master_path,
    read_progress,
    rows_to_table,
    snapshot,
)
from lambdalytics.batch.writer import (
    MANIFEST,
    MANIFEST_SCHEMA,
    POINTER,
    ViewWriter,
    exclusive,
    read_manifest,
    read_manifests,
    views_dir,
)
from lambdalytics.infra.settings import Settings
from tests.batch.test_archiver import T0
from tests.batch.test_archiver import _row as _archived_row

pytestmark = pytest.mark.unit

TP = ("events.behavioral", 0)


def _row(offset: int) -> dict:
    """An archived row; event times cross event_date partitions after a day of offsets."""
    return {**_archived_row(f"t{offset % 3}", offset, T0 + offset * 60_000), "customer_id": f"c{offset % 5}"}


def _archiver(data_dir: Path) -> Archiver:
    """An archiver that is never connected: its Delta commit path is what these tests drive."""
    return Archiver(
        "127.0.0.1:1",
        data_dir,
        maintenance=MaintenancePolicy(interval_seconds=1e-9, keep=2, retention_hours=0),
    )


def _archive(archiver: Archiver, first: int, n: int, per_batch: int = 3) -> None:
    for start in range(first, first + n, per_batch):
        end = min(start + per_batch, first + n)
        archiver._commit([_row(o) for o in range(start, end)], {TP: end}, [])


def _publish(data_dir: Path, i: int, master_version: int = 0):
    view = ViewWriter(data_dir)
    view.write("profile", pa.table({"customer_id": [f"c{j}" for j in range(i)], "n": list(range(i))}))
    view.write("series", pa.table({"hour": [i], "n": [i * 10]}))
    return view.publish(
        previous=read_manifest(data_dir),
        watermark={TP: i * 10},
        watermark_time=None,
        master_version=master_version,
        events=i,
    )


def _positions(data_dir: Path) -> list[int]:
    return sorted(
        DeltaTable(str(master_path(data_dir))).to_pyarrow_table(columns=["offset"])["offset"].to_pylist()
    )


# ---------------------------------------------------------------- the manifest pointer


def test_pointer_gives_the_newest_manifest_without_opening_the_table(tmp_path, monkeypatch):
    published = [_publish(tmp_path, i) for i in range(1, 4)]
    assert (views_dir(tmp_path) / POINTER).exists()
    assert read_manifest(tmp_path) == published[-1] == read_manifests(tmp_path)[0]
    assert [m.batch_version for m in read_manifests(tmp_path)] == [3, 2, 1]

    def no_table(*_a, **_k):
        raise AssertionError("the pointer is fresh: the Delta table must not be read")

    monkeypatch.setattr(writer, "DeltaTable", no_table)
    assert read_manifest(tmp_path) == published[-1]


def test_a_missing_corrupt_or_stale_pointer_falls_back_to_the_table(tmp_path):
    assert read_manifest(tmp_path) is None
    first = _publish(tmp_path, 1)
    pointer = views_dir(tmp_path) / POINTER
    pointer.unlink()
    assert read_manifest(tmp_path) == first
    pointer.write_bytes(b'{"table_version": 0, "row": {"batch')  # torn (cannot happen: rename)
    assert read_manifest(tmp_path) == first
    # a publish that died after its Delta commit, before its pointer: the table is the truth
    _publish(tmp_path, 2)
    stale = pointer.read_bytes()
    third = _publish(tmp_path, 3)
    pointer.write_bytes(stale)
    assert read_manifest(tmp_path) == third
    # a pointer left beside a table that is gone
    write_deltalake(
        str(views_dir(tmp_path) / MANIFEST),
        pa.Table.from_pylist([], schema=MANIFEST_SCHEMA),
        mode="overwrite",
    )
    assert read_manifest(tmp_path) is None


# ---------------------------------------------------------------- view retention


def test_retention_keeps_exactly_the_newest_n_view_versions(tmp_path):
    published = [_publish(tmp_path, i) for i in range(1, 7)]
    result = maintain(tmp_path, MaintenancePolicy(keep=2, retention_hours=0))
    assert result.skipped is None
    kept, gone = published[-2:], published[:-2]
    for m in kept:
        assert m.table(tmp_path, "profile").to_pyarrow_table()["n"].to_pylist() == list(range(m.events))
        assert m.table(tmp_path, "series").to_pyarrow_table()["hour"].to_pylist() == [m.events]
    for m in gone:
        with pytest.raises(FileNotFoundError):
            m.table(tmp_path, "profile").to_pyarrow_table()
    for name in ("profile", "series"):
        named = {f for m in kept for f in m.table(tmp_path, name).file_uris()}
        assert footprint(views_dir(tmp_path) / name).files == len(named)
    reports = {r.table: r for r in result.reports}
    assert reports["views/profile"].vacuumed == 4 and reports["views/profile"].after.files == 2
    # the manifest log was compacted and the pointer moved to its new version, still fresh
    assert reports[f"views/{MANIFEST}"].after.files == 1
    assert read_manifest(tmp_path) == published[-1] and read_manifests(tmp_path) == published[::-1]
    assert writer._read_pointer(views_dir(tmp_path)) == published[-1]


def test_fewer_than_two_kept_versions_is_refused():
    with pytest.raises(ValueError, match="rollback"):
        MaintenancePolicy(keep=1)
    with pytest.raises(ValidationError):
        Settings(view_versions_kept=1)


def test_retention_waits_while_a_batch_run_holds_the_lock(tmp_path):
    archiver = _archiver(tmp_path)
    _archive(archiver, 0, 12)
    published = [_publish(tmp_path, i) for i in range(1, 5)]
    before = footprint(master_path(tmp_path))
    with exclusive(tmp_path):
        result = maintain(tmp_path, MaintenancePolicy(keep=2, retention_hours=0))
    assert result.skipped and "batch run" in result.skipped
    (master,) = result.reports
    assert master.compacted == before.files and master.vacuumed == 0
    assert footprint(master_path(tmp_path)).files == before.files + 1  # nothing deleted yet
    assert published[0].table(tmp_path, "profile").to_pyarrow_table().num_rows == 1


# ---------------------------------------------------------------- master compaction


def test_compaction_keeps_rows_progress_and_kept_snapshots(tmp_path):
    archiver = _archiver(tmp_path)
    _archive(archiver, 0, 30)
    old_version, old_offsets, _ = snapshot(master_path(tmp_path))
    kept = [
        _publish(tmp_path, 1, master_version=old_version),
        _publish(tmp_path, 2, master_version=old_version),
    ]
    _archive(archiver, 30, 30)
    progress = read_progress(master_path(tmp_path))
    before = footprint(master_path(tmp_path))
    result = maintain(tmp_path, MaintenancePolicy(keep=2, retention_hours=0), master=archiver._table)
    master = result.reports[0]
    assert master.compacted == before.files and master.after.files < before.files
    assert _positions(tmp_path) == list(range(60))
    # a compaction commit carries no offsets: the progress reads the same, and so does the resume point
    assert read_progress(master_path(tmp_path)).offsets == progress.offsets == {TP: 60}
    assert read_progress(master_path(tmp_path)).batch_seq == progress.batch_seq
    infos = DeltaTable(str(master_path(tmp_path))).history()
    assert any(i.get(WRITER_KEY) == COMPACTION_WRITER and i["operation"] == "OPTIMIZE" for i in infos)
    # the master snapshot a kept view version was computed from is still readable (backfill needs it)
    version, offsets, table = snapshot(master_path(tmp_path), kept[0].master_version)
    assert (version, offsets) == (old_version, old_offsets)
    assert sorted(table.to_pyarrow_table(columns=["offset"])["offset"].to_pylist()) == list(range(30))
    # and the archiver carries on from its own (moved) snapshot
    _archive(archiver, 60, 6)
    assert _positions(tmp_path) == list(range(66))


def test_compaction_beside_a_running_archiver_loses_and_doubles_nothing(tmp_path):
    """``batch compact`` by hand while the archiver commits: one of two commits retries, none breaks."""
    archiver = _archiver(tmp_path)
    _archive(archiver, 0, 9)
    stop = threading.Event()
    landed = [9]

    def archive() -> None:
        while not stop.is_set():
            _archive(archiver, landed[0], 3)
            landed[0] += 3

    thread = threading.Thread(target=archive)
    thread.start()
    try:
        for _ in range(4):
            maintain(tmp_path, MaintenancePolicy(keep=2, retention_hours=0))
    finally:
        stop.set()
        thread.join(30)
    positions = _positions(tmp_path)
    assert positions == list(range(landed[0])), Counter(positions).most_common(3)
    assert read_progress(master_path(tmp_path)).offsets == {TP: landed[0]}


def test_scheduled_maintenance_in_the_archiver_still_fences_another_archiver(tmp_path):
    archiver = _archiver(tmp_path)
    _archive(archiver, 0, 6)
    archiver._maybe_maintain()  # due at once (interval ~0): compacts through the archiver's table
    assert archiver._table.history(1)[0]["operation"] == "VACUUM END"
    _archive(archiver, 6, 3)
    # a second archiver lands a batch; the first one's maintenance must not adopt it silently
    other = DeltaTable(str(master_path(tmp_path)))
    append_batch(other, rows_to_table([_row(9)]), {TP: 10}, archiver._batch_seq + 1, writer_id="other")
    with pytest.raises(ConcurrentArchiverError):
        archiver._maybe_maintain()
