"""Writes batch view versions to Delta and publishes them with their watermark in one manifest commit.

Delta commits one table at a time, so a *view version* (all views + the offset watermark W they cover)
is published by a final append to the ``_manifest`` table naming the Delta version of every view table.
Readers (serving) read the newest manifest row and each view **at the version it names** (time travel),
so they never see a mix of runs: a run that dies before its manifest commit leaves the previous version
serving, and each table commit is itself atomic, so no table is ever observed half-written.

**The newest manifest in O(1).** Serving polls every 2 s, and reading the ``_manifest`` table costs its
whole log and every row. So each publish, *after* its Delta commit, also writes the row it appended and
the ``_manifest`` table version holding it to ``views/_manifest.latest.json`` (temp file + fsync +
rename: a reader sees the old pointer or the new one, never a torn one). The Delta table stays the
truth: :func:`read_manifest` trusts the pointer only while the log has no commit after the version it
names (one ``stat``), and reads the table otherwise — the pointer missing, unreadable, or stale
because a publish died between its commit and the pointer write.

**One writer of the views at a time**: :func:`exclusive`, an OS file lock every batch run, backfill and
view retention (``batch.compaction``) holds, so two of them cannot claim the same batch version or
vacuum files a run is about to publish.

Protocol: plain Parquet types with UTC timestamps, no deletion vectors or column mapping, so the
tables stay at reader 1 / writer 2, readable by delta-rs and by Spark's native Delta source.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lambdalytics.schemas.views import Watermark, decode_offsets, encode_offsets

__all__ = [
    "BatchBusyError",
    "Manifest",
    "ViewWriter",
    "exclusive",
    "read_manifest",
    "read_manifests",
    "repoint",
    "views_dir",
    "write_pointer",
]

MANIFEST = "_manifest"
POINTER = "_manifest.latest.json"
MANIFEST_SCHEMA = pa.schema(
    [
        ("batch_version", pa.int64()),
        ("run_id", pa.string()),
        ("kind", pa.string()),  # run | backfill
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("watermark", pa.string()),  # JSON {"topic:partition": offset}: the batch covers offset < W
        ("block_size", pa.int64()),  # B the watermark was cut with (null in manifests written before B was)
        ("watermark_time", pa.timestamp("ms", tz="UTC")),  # newest broker time of an event covered
        ("master_version", pa.int64()),
        ("events", pa.int64()),  # deduplicated events covered
        ("views", pa.string()),  # JSON {view name: Delta version}
    ]
)


def views_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "views"


@dataclass(frozen=True)
class Manifest:
    batch_version: int
    run_id: str
    kind: str
    created_at: dt.datetime
    watermark: Watermark
    watermark_time: dt.datetime | None
    master_version: int
    events: int
    views: dict[str, int]
    block_size: int | None = None
    """The block size B that W was cut with; the speed side refuses to merge with another B."""

    def table(self, data_dir: Path, name: str) -> DeltaTable:
        """The view table at exactly the version this manifest published."""
        return DeltaTable(str(views_dir(data_dir) / name), version=self.views[name])


class BatchBusyError(RuntimeError):
    """Another batch run, backfill or view retention holds this data dir's lock (one views writer)."""


@contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """An OS file lock: two runs publishing at once could both claim the next batch version, and
    retention must not vacuum the files of a run that is about to publish them."""
    path = Path(data_dir) / "run" / "batch.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchBusyError(f"another batch run is in progress ({path})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _manifest_of(row: dict[str, Any]) -> Manifest:
    return Manifest(
        batch_version=row["batch_version"],
        run_id=row["run_id"],
        kind=row["kind"],
        created_at=row["created_at"],
        watermark=decode_offsets(row["watermark"]),
        watermark_time=row["watermark_time"],
        master_version=row["master_version"],
        events=row["events"],
        views=orjson.loads(row["views"]),
        block_size=row.get("block_size"),
    )


def _log_entry(table_path: Path, version: int) -> Path:
    return table_path / "_delta_log" / f"{version:020d}.json"


def _read_pointer(root: Path) -> Manifest | None:
    """The manifest the pointer names, or None when it is missing, unreadable or stale."""
    try:
        pointer = orjson.loads((root / POINTER).read_bytes())
        table_version, row = int(pointer["table_version"]), dict(pointer["row"])
        for name in ("created_at", "watermark_time"):
            row[name] = dt.datetime.fromisoformat(row[name]) if row[name] is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    log = root / MANIFEST
    if not _log_entry(log, table_version).exists() or _log_entry(log, table_version + 1).exists():
        return None  # a table that is gone, or a commit after the one it names: stale
    return _manifest_of(row)


def write_pointer(data_dir: Path, table_version: int, row: dict[str, Any]) -> None:
    """Atomically point at ``row``, the newest manifest, held by ``_manifest`` at ``table_version``.

    ``row`` must be as Delta returns it (timestamps UTC, ms), so both read paths give equal manifests.
    Call it after the Delta commit, under :func:`exclusive`.
    """
    root = views_dir(data_dir)
    body = orjson.dumps({"table_version": table_version, "row": row})
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".pointer-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, root / POINTER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def _manifest_rows(data_dir: Path) -> tuple[int, list[dict[str, Any]]] | None:
    """Every row of ``_manifest`` and the table version read, or None before the first publish."""
    path = views_dir(data_dir) / MANIFEST
    if not DeltaTable.is_deltatable(str(path)):
        return None
    table = DeltaTable(str(path))
    return table.version(), table.to_pyarrow_table().to_pylist()


def repoint(data_dir: Path) -> Manifest | None:
    """Rewrite the pointer from the ``_manifest`` table (after its own compaction, under :func:`exclusive`)."""
    found = _manifest_rows(data_dir)
    if not found or not found[1]:
        return None
    version, rows = found
    row = max(rows, key=lambda r: r["batch_version"])
    write_pointer(data_dir, version, row)
    return _manifest_of(row)


def read_manifests(data_dir: Path) -> list[Manifest]:
    """Every published view version, newest first (reads the whole ``_manifest`` table)."""
    found = _manifest_rows(data_dir)
    rows = found[1] if found else []
    return [_manifest_of(r) for r in sorted(rows, key=lambda r: r["batch_version"], reverse=True)]


def read_manifest(data_dir: Path) -> Manifest | None:
    """The newest published view version, or None before the first batch run.

    O(1) through the pointer; the ``_manifest`` table when the pointer is missing or stale.
    """
    pointed = _read_pointer(views_dir(data_dir))
    if pointed is not None:
        return pointed
    newest = read_manifests(data_dir)
    return newest[0] if newest else None


class ViewWriter:
    """Stages view tables for one run; :meth:`publish` makes them visible together."""

    def __init__(self, data_dir: Path, *, kind: str = "run", run_id: str | None = None):
        self.root = views_dir(data_dir)
        self.data_dir = Path(data_dir)
        self.kind = kind
        self.run_id = run_id or uuid.uuid4().hex
        self.versions: dict[str, int] = {}

    def write(self, name: str, table: pa.Table, *, unchanged_from: Manifest | None = None) -> int:
        """Overwrite one view table; returns its new Delta version.

        With ``unchanged_from``, a table whose content equals that manifest's version is not rewritten
        (its version is reused), which is what makes backfills idempotent.
        """
        path = self.root / name
        if unchanged_from is not None and name in unchanged_from.views:
            current = unchanged_from.table(self.data_dir, name).to_pyarrow_table()
            if _same_rows(current, table):
                self.versions[name] = unchanged_from.views[name]
                return self.versions[name]
        write_deltalake(
            str(path),
            table,
            mode="overwrite",
            schema_mode="overwrite",
            commit_properties=CommitProperties(
                custom_metadata={"lambdalytics.run_id": self.run_id, "lambdalytics.view": name}
            ),
        )
        self.versions[name] = DeltaTable(str(path)).version()
        return self.versions[name]

    def publish(
        self,
        *,
        previous: Manifest | None,
        watermark: Watermark,
        block_size: int | None = None,
        watermark_time: dt.datetime | None,
        master_version: int,
        events: int,
    ) -> Manifest:
        """One append to ``_manifest``: from this commit on, readers see the new version.

        ``block_size`` is the B that ``watermark`` was cut with; it is published beside W because the
        speed side can only merge at a W cut with its own B (None only when re-publishing the W of a
        manifest written before B was recorded).
        """
        batch_version = (previous.batch_version if previous else 0) + 1
        row = {
            "batch_version": batch_version,
            "run_id": self.run_id,
            "kind": self.kind,
            "created_at": dt.datetime.now(dt.UTC),
            "watermark": encode_offsets(watermark),
            "block_size": block_size,
            "watermark_time": watermark_time,
            "master_version": master_version,
            "events": events,
            "views": orjson.dumps(self.versions).decode(),
        }
        # the row exactly as Delta will return it (UTC, ms), so the pointer and the table agree
        stored = pa.Table.from_pylist([row], schema=MANIFEST_SCHEMA)
        path = self.root / MANIFEST
        write_deltalake(
            str(path),
            stored,
            mode="append",
            schema_mode="merge",  # a manifest table from before the block_size column gains it
            commit_properties=CommitProperties(
                custom_metadata={"lambdalytics.batch_version": str(batch_version)}
            ),
        )
        version = DeltaTable(str(path)).version()
        row = stored.to_pylist()[0]
        write_pointer(self.data_dir, version, row)
        return _manifest_of(row)

    def publish_at(self, previous: Manifest) -> Manifest:
        """Publish at what ``previous`` covers — its W, block size, master version and event count: a
        backfill changes views, never the events they cover."""
        return self.publish(
            previous=previous,
            watermark=previous.watermark,
            block_size=previous.block_size,
            watermark_time=previous.watermark_time,
            master_version=previous.master_version,
            events=previous.events,
        )


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    if a.schema.names != b.schema.names or a.num_rows != b.num_rows:
        return False
    keys = [
        (n, "ascending") for n, t in zip(a.schema.names, a.schema.types, strict=True) if not _is_nested(t)
    ]
    return a.sort_by(keys).cast(b.schema, safe=False).equals(b.sort_by(keys))


def _is_nested(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
