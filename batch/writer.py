"""Writes batch view versions to Delta and publishes them with their watermark in one manifest commit.

Delta commits one table at a time, so a *view version* (all views + the offset watermark W they cover)
is published by a final append to the ``_manifest`` table naming the Delta version of every view table.
Readers (serving) read the newest manifest row and each view **at the version it names** (time travel),
so they never see a mix of runs: a run that dies before its manifest commit leaves the previous version
serving, and each table commit is itself atomic, so no table is ever observed half-written.

Protocol: plain Parquet types with UTC timestamps, no deletion vectors or column mapping, so the
tables stay at reader 1 / writer 2, readable by delta-rs and by Spark's native Delta source.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lambdalytics.schemas.views import Watermark, decode_offsets, encode_offsets

__all__ = ["Manifest", "ViewWriter", "read_manifest", "views_dir"]

MANIFEST = "_manifest"
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


def read_manifest(data_dir: Path) -> Manifest | None:
    """The newest published view version, or None before the first batch run."""
    path = views_dir(data_dir) / MANIFEST
    if not DeltaTable.is_deltatable(str(path)):
        return None
    rows = DeltaTable(str(path)).to_pyarrow_table().to_pylist()
    if not rows:
        return None
    row = max(rows, key=lambda r: r["batch_version"])
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
        block_size: int | None,
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
        write_deltalake(
            str(self.root / MANIFEST),
            pa.Table.from_pylist([row], schema=MANIFEST_SCHEMA),
            mode="append",
            schema_mode="merge",  # a manifest table from before the block_size column gains it
            commit_properties=CommitProperties(
                custom_metadata={"lambdalytics.batch_version": str(batch_version)}
            ),
        )
        manifest = read_manifest(self.data_dir)
        assert manifest is not None and manifest.batch_version == batch_version
        return manifest


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    if a.schema.names != b.schema.names or a.num_rows != b.num_rows:
        return False
    keys = [
        (n, "ascending") for n, t in zip(a.schema.names, a.schema.types, strict=True) if not _is_nested(t)
    ]
    return a.sort_by(keys).cast(b.schema, safe=False).equals(b.sort_by(keys))


def _is_nested(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
