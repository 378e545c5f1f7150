"""Compaction and retention: the master's small files merged, replaced files and old view versions removed.

Without it the archiver's micro-batches (one Delta commit every ~2 s) leave tens of thousands of small
master files a day that every batch run lists and opens, and every batch run leaves one more version of
each view table on disk (288 a day at ``up``'s 5-minute interval).

Who may do what, and why it is safe
-----------------------------------
- **Compaction of the master** (``optimize.compact``) deletes nothing: it commits new, larger files and
  marks the small ones removed. It runs in the archiver's loop *between micro-batches*
  (:class:`MaintenancePolicy`), because the archiver is the master's one writer: no race at all in the
  normal case. Run by hand (``lambdalytics batch compact``) beside a running archiver it is still safe:
  the compaction commit rebases over appends (they touch other files), and the archiver's append, made
  with ``max_commit_retries=0``, fails, sees that the competing commit is no archiver batch and retries.
  A compaction commit carries no ``txn`` action and no offsets, so the progress — the ``txn`` version in
  the table state plus that batch's commit info — reads the same after it (tested by killing and
  resuming the archiver after compactions).
- **Deleting files** (``vacuum``) happens only under the batch lock (:func:`~.writer.exclusive`), and is
  skipped while a batch run or backfill holds it: a running run has a master snapshot whose files Spark
  has not read yet, and writes view files it has not published yet. Under the lock:

  - view tables keep exactly the versions named by the newest ``keep`` manifests (``keep >= 2``, so
    there is always a version to roll back to) and their latest version; every other file goes;
  - the master keeps the snapshots of those kept manifests (a backfill re-reads its version's snapshot),
    its current files, and compacted-away files younger than ``retention_hours`` (for readers outside
    the lock: ad-hoc queries, time travel);
  - ``_manifest`` itself is compacted the same way, and the O(1) pointer re-written to the new version;
  - serving store files (``infra.serving_store``, derived) of versions older than the kept ones go.

Serving holds a loaded version in memory, so vacuuming its files does not disturb it; a load that loses
a race with retention fails, and the loader keeps its version and retries (``serving.loader``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deltalake import CommitProperties, DeltaTable

from lambdalytics.infra.serving_store import remove_below
from lambdalytics.infra.settings import Settings

from .master import WRITER_KEY, master_path
from .writer import MANIFEST, BatchBusyError, exclusive, read_manifests, repoint, views_dir

__all__ = [
    "COMPACTION_WRITER",
    "Footprint",
    "Maintenance",
    "MaintenancePolicy",
    "TableReport",
    "describe",
    "footprint",
    "maintain",
]

log = logging.getLogger(__name__)

COMPACTION_WRITER = "compaction"
"""``lambdalytics.writer`` of a compaction commit (an archiver commit carries its own writer id)."""


@dataclass(frozen=True)
class MaintenancePolicy:
    """How often and how much: ``keep`` view versions (>= 2), ``retention_hours`` for replaced files."""

    interval_seconds: float = 3600.0
    keep: int = 4
    retention_hours: int = 1

    def __post_init__(self) -> None:
        if self.keep < 2:
            raise ValueError(f"keep {self.keep} view versions: at least 2 are needed for a rollback")
        if self.interval_seconds <= 0 or self.retention_hours < 0:
            raise ValueError("interval_seconds must be > 0 and retention_hours >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> MaintenancePolicy:
        return cls(
            interval_seconds=settings.compact_interval_seconds,
            keep=settings.view_versions_kept,
            retention_hours=settings.vacuum_retention_hours,
        )


@dataclass(frozen=True)
class Footprint:
    """Data files of a table on disk (the Delta log not counted) and their bytes."""

    files: int
    bytes: int


def footprint(path: Path) -> Footprint:
    files = [p for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts]
    return Footprint(len(files), sum(p.stat().st_size for p in files))


@dataclass(frozen=True)
class TableReport:
    table: str
    before: Footprint
    after: Footprint
    compacted: int = 0  # small files a compaction commit replaced
    vacuumed: int = 0  # files deleted from disk


@dataclass(frozen=True)
class Maintenance:
    reports: tuple[TableReport, ...]
    skipped: str | None = None  # why retention did not run (a batch run held the lock)
    seconds: float = 0.0


def _compact(table: DeltaTable) -> int:
    metrics = table.optimize.compact(
        commit_properties=CommitProperties(custom_metadata={WRITER_KEY: COMPACTION_WRITER})
    )
    return int(metrics["numFilesRemoved"])


def _vacuum(table: DeltaTable, path: Path, *, retention_hours: int, keep_versions: set[int]) -> int:
    """Delete what retention allows; returns how many data files left the disk (vacuum's own list
    also names files an earlier vacuum already deleted: their tombstones stay in the log)."""
    before = footprint(path).files
    table.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=False,
        full=True,  # also files a crashed writer left unreferenced (older than the retention)
        keep_versions=sorted(keep_versions),
    )
    return before - footprint(path).files


def maintain(
    data_dir: str | Path,
    policy: MaintenancePolicy,
    *,
    master: DeltaTable | None = None,
    on_table: Callable[[TableReport], None] | None = None,
) -> Maintenance:
    """Compact the master, then — under the batch lock, unless a run holds it — apply retention.

    ``master`` is the archiver's own table object (its state then follows the maintenance commits);
    by default the table is opened here. ``on_table`` is told each table's report as it is done.
    """
    started = time.monotonic()
    data_dir = Path(data_dir)
    reports: list[TableReport] = []

    def done(report: TableReport) -> None:
        reports.append(report)
        if on_table is not None:
            on_table(report)

    path = master_path(data_dir)
    if master is None and DeltaTable.is_deltatable(str(path)):
        master = DeltaTable(str(path))
    master_before = footprint(path)
    compacted = _compact(master) if master is not None else 0
    try:
        with exclusive(data_dir):
            kept = read_manifests(data_dir)[: policy.keep]
            vacuumed = 0
            if master is not None:
                vacuumed = _vacuum(
                    master,
                    path,
                    retention_hours=policy.retention_hours,
                    keep_versions={m.master_version for m in kept},
                )
            done(TableReport("master", master_before, footprint(path), compacted, vacuumed))
            for table in _view_tables(data_dir):
                before = footprint(table)
                n = _vacuum(
                    DeltaTable(str(table)),
                    table,
                    retention_hours=0,
                    keep_versions={m.views[table.name] for m in kept if table.name in m.views},
                )
                done(TableReport(f"views/{table.name}", before, footprint(table), 0, n))
            manifest = views_dir(data_dir) / MANIFEST
            if DeltaTable.is_deltatable(str(manifest)):
                before, log_table = footprint(manifest), DeltaTable(str(manifest))
                n_compacted = _compact(log_table)
                n = _vacuum(log_table, manifest, retention_hours=policy.retention_hours, keep_versions=set())
                repoint(data_dir)
                done(TableReport(f"views/{MANIFEST}", before, footprint(manifest), n_compacted, n))
            if kept:  # serving stores are derived: none older than the oldest kept version stays
                remove_below(data_dir, min(m.batch_version for m in kept))
    except BatchBusyError as exc:
        done(TableReport("master", master_before, footprint(path), compacted, 0))
        return Maintenance(tuple(reports), skipped=str(exc), seconds=time.monotonic() - started)
    return Maintenance(tuple(reports), seconds=time.monotonic() - started)


def _view_tables(data_dir: Path) -> list[Path]:
    root = views_dir(data_dir)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(("_", ".")) and DeltaTable.is_deltatable(str(p))
    )


def describe(report: TableReport) -> str:
    """One line per table, for logs and the CLI."""
    mib = 1 << 20
    return (
        f"{report.table}: {report.before.files:,} → {report.after.files:,} files, "
        f"{report.before.bytes / mib:,.1f} → {report.after.bytes / mib:,.1f} MiB "
        f"({report.compacted:,} compacted, {report.vacuumed:,} vacuumed)"
    )
