"""The master dataset: every valid event ever acknowledged, append-only, in one Delta table.

Location ``<data_dir>/master``. One row per Kafka record that passed the event contract, with the
typed :data:`~lambdalytics.schemas.events.ROW_COLUMNS`, the record's position (``topic``,
``partition``, ``offset``), its broker timestamp (``broker_time``), its original bytes (``raw``, so any
view can be recomputed from exactly what was sent) and the partition column ``event_date``.

Invariants
----------
- **Unique by (topic, partition, offset).** Rows land only through :func:`append_batch`, which commits
  the rows *and* the archiver's progress — the full next-offset vector — in one Delta commit. A
  crash before the commit leaves neither; after it, both. Resuming from :func:`read_progress` therefore
  neither skips nor repeats a record (exactly-once landing, ARCHITECTURE.md §2).
- **Progress lives in the Delta log.** Each archiver commit carries
  ``commitInfo["lambdalytics.offsets"]`` = JSON ``{"topic:partition": next_offset}`` covering every
  partition ever archived (not only the batch's), ``"lambdalytics.batch_seq"`` and an app transaction
  ``Transaction(app_id="lambdalytics-archiver", version=batch_seq)``. The ``txn`` action is part of
  the table *state* (it survives checkpoints and is time-travel consistent), so a snapshot at any
  version knows which archiver batch it ends with; the commit info of that batch holds the offsets.
  The offsets of a snapshot are exactly the records its rows cover: row ``(t, p, o)`` is in the table
  at version v iff ``o < offsets[t:p]`` and the record was valid. This is the W a batch view is cut at.
- **Zero-row batches still commit.** When every record of a batch was dead-lettered, the offsets still
  advance: delta-rs commits an append of an empty table as a real version (no ``add`` action, just
  ``commitInfo`` + ``txn``), verified with deltalake 1.6.
- **One writer.** Appends are made with ``max_commit_retries=0`` against the writer's own snapshot, so
  a commit that lost a race with another writer fails instead of silently rebasing; the archiver then
  checks whether the competing commit is a second archiver (fatal: :class:`ConcurrentArchiverError`)
  or, e.g., a compaction (retry).

Layout
------
Partitioned by ``event_date`` (UTC date of ``event_time``) only. Not by tenant as well: the number of
tenants is unbounded and most are small, so ``event_date × tenant`` directories would turn every
micro-batch into thousands of tiny files (the small-files problem; listing and opening them would
dominate every scan). Tenant pruning comes from Parquet/Delta per-file min/max statistics instead:
each batch is sorted by ``(tenant_id, customer_id)`` before it is written, so a file's
``tenant_id`` range is narrow and readers skip files whose range excludes the tenant. Periodic
compaction (``batch.compaction``: ``optimize.compact``, scheduled in the archiver's loop) bin-packs the
small files of each ``event_date``; it is a non-archiver commit (no ``txn``, no offsets) and does not
disturb the progress (read from the ``txn`` state). Bin-packing concatenates sorted runs, so a compacted
file's tenant range widens; ``optimize.z_order(["tenant_id", "customer_id"])`` would restore narrow
ranges at the cost of rewriting whole partitions, which the demo volumes do not need.

Timestamps are ``timestamp(ms, tz=UTC)`` in Arrow, which Delta stores as its ``timestamp`` type
(microseconds, UTC; read back as ``timestamp[us, tz=UTC]``). Timezone-naive timestamps would become
``timestamp_ntz`` and raise the protocol to reader 3 / writer 7; with tz-aware ones the table stays at
**reader 1 / writer 2**, readable by Spark's native Delta source.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lambdalytics.schemas.events import ROW_COLUMNS
from lambdalytics.schemas.views import Watermark, decode_offsets, encode_offsets

__all__ = [
    "APP_ID",
    "ERASURES_SEQ_KEY",
    "MASTER_SCHEMA",
    "OFFSETS_KEY",
    "PARTITION_BY",
    "ConcurrentArchiverError",
    "NoMasterDataset",
    "Progress",
    "append_batch",
    "master_path",
    "read_progress",
    "recorded_fence",
    "rows_to_table",
    "snapshot",
]

APP_ID = "lambdalytics-archiver"
"""Delta app-transaction id of the archiver; its version is the archiver's batch sequence number."""
OFFSETS_KEY = "lambdalytics.offsets"
BATCH_SEQ_KEY = "lambdalytics.batch_seq"
WRITER_KEY = "lambdalytics.writer"
ERASURES_SEQ_KEY = "lambdalytics.erasures_seq"  # the erasure list the batch was checked against
PARTITION_BY = ["event_date"]
_SORT_KEYS = [("event_date", "ascending"), ("tenant_id", "ascending"), ("customer_id", "ascending")]

_TS = pa.timestamp("ms", tz="UTC")
_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "int32": pa.int32()}
_TIMESTAMP_COLUMNS = frozenset({"event_time", "promised_at"})  # UTC epoch ms in ROW_COLUMNS

MASTER_SCHEMA = pa.schema(
    [
        pa.field(name, _TS if name in _TIMESTAMP_COLUMNS else _ARROW_TYPES[kind])
        for name, kind in ROW_COLUMNS.items()
    ]
    + [
        pa.field("topic", pa.string()),
        pa.field("partition", pa.int32()),
        pa.field("offset", pa.int64()),
        pa.field("broker_time", _TS),  # the Kafka record timestamp
        pa.field("raw", pa.binary()),  # the record value exactly as consumed
        pa.field("event_date", pa.string()),  # 'YYYY-MM-DD' of event_time in UTC; the partition column
    ]
)
"""Arrow schema of the master dataset (write side)."""
_ROW_SCHEMA = pa.schema([f for f in MASTER_SCHEMA if f.name != "event_date"])


class NoMasterDataset(LookupError):
    """The master table does not exist yet (nothing archived)."""


class ConcurrentArchiverError(RuntimeError):
    """Another archiver committed to the same master table: only one may run per table."""


@dataclass(frozen=True)
class Progress:
    """Where the archiver stands.

    ``version`` is the Delta version the offsets describe (None: no table yet); ``batch_seq`` the
    archiver's last committed batch (0: none); ``offsets`` the next offset to archive per
    ``(topic, partition)`` — every record below it is in the table (if valid) or dead-lettered.
    """

    version: int | None
    batch_seq: int
    offsets: Watermark = field(default_factory=dict)


def master_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "master"


# ---------------------------------------------------------------- rows → Arrow


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Row dicts (``to_row`` + ``topic/partition/offset/broker_time/raw``, epoch-ms ints for the
    timestamps) → a table in :data:`MASTER_SCHEMA`, ``event_date`` derived when absent."""
    return _with_event_date(pa.Table.from_pylist(rows, schema=_ROW_SCHEMA))


def _with_event_date(table: pa.Table) -> pa.Table:
    if "event_date" in table.column_names:
        return table
    event_time = table.column("event_time").cast(_TS)
    return table.append_column("event_date", pc.cast(pc.cast(event_time, pa.date32()), pa.string()))


def _conform(table: pa.Table) -> pa.Table:
    """Columns in schema order and types, sorted for tenant pruning by file statistics."""
    table = _with_event_date(table)
    missing = [name for name in MASTER_SCHEMA.names if name not in table.column_names]
    if missing:
        raise ValueError(f"rows lack master columns {missing}")
    table = table.select(MASTER_SCHEMA.names).cast(MASTER_SCHEMA)
    return table.sort_by(_SORT_KEYS) if table.num_rows > 1 else table


# ---------------------------------------------------------------- write


def append_batch(
    path: str | Path | DeltaTable,
    rows_table: pa.Table,
    offsets: Watermark,
    batch_seq: int,
    *,
    writer_id: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> int:
    """Append ``rows_table`` and the archiver progress in **one** Delta commit; returns its version.

    ``offsets`` must be the FULL next-offset vector after this batch (every partition ever archived).
    ``batch_seq`` must be the previous batch's + 1. ``rows_table`` may have zero rows: the commit then
    only advances the progress. Pass the writer's own :class:`DeltaTable` as ``path`` to commit
    against its snapshot; a concurrent commit then raises ``CommitFailedError`` (no silent rebase).
    """
    metadata: dict[str, Any] = {
        OFFSETS_KEY: encode_offsets(offsets),
        BATCH_SEQ_KEY: batch_seq,
        WRITER_KEY: writer_id or uuid.uuid4().hex,
        "lambdalytics.rows": rows_table.num_rows,
        **(extra_metadata or {}),
    }
    target = path if isinstance(path, DeltaTable) else str(path)
    write_deltalake(
        target,
        _conform(rows_table),
        mode="append",
        partition_by=PARTITION_BY,
        schema_mode="merge",  # a master from before a column was added (previous_id) gains it
        commit_properties=CommitProperties(
            custom_metadata=metadata,
            app_transactions=[Transaction(app_id=APP_ID, version=batch_seq)],
            max_commit_retries=0,
        ),
    )
    if isinstance(path, DeltaTable):
        return path.version()
    return DeltaTable(str(path)).version()


# ---------------------------------------------------------------- read


def _open(path: str | Path, version: int | None = None) -> DeltaTable:
    try:
        return DeltaTable(str(path), version=version)
    except TableNotFoundError as exc:
        raise NoMasterDataset(f"no master dataset at {path}") from exc


def batch_commit_info(path: str | Path, batch_seq: int) -> dict[str, Any]:
    """The commit info of the archiver batch ``batch_seq``.

    Found by the ``lambdalytics.batch_seq`` it carries, not by version number: ``DeltaTable.history``
    lists the newest commits on storage even for a time-travelled table and labels them relative to
    the loaded version (deltalake 1.6), so its ``version`` labels cannot be trusted under concurrent
    writes. Searches the newest commits first, widening the window.
    """
    latest = _open(path)
    limit = 8
    while True:
        history = latest.history(limit=limit)
        for info in history:
            if info.get(BATCH_SEQ_KEY) == batch_seq and OFFSETS_KEY in info:
                return info
        if len(history) < limit:
            raise LookupError(
                f"{path}: no commit info for archiver batch {batch_seq} (log files cleaned up?)"
            )
        limit *= 4


def _progress_of(path: str | Path, table: DeltaTable) -> Progress:
    seq = table.transaction_version(APP_ID)
    if seq is None:
        return Progress(version=table.version(), batch_seq=0, offsets={})
    info = batch_commit_info(path, seq)
    return Progress(version=table.version(), batch_seq=seq, offsets=decode_offsets(info[OFFSETS_KEY]))


def recorded_fence(path: str | Path) -> int:
    """The highest erasure seq the last archiver commit was checked against (``infra.erasures``: the
    archiver's fence); 0 with no table, no archiver commit or one from before the fence existed."""
    try:
        seq = _open(path).transaction_version(APP_ID)
    except NoMasterDataset:
        return 0
    return int(batch_commit_info(path, seq).get(ERASURES_SEQ_KEY, 0)) if seq else 0


def read_progress(path: str | Path) -> Progress:
    """The archiver's committed progress: ``Progress(None, 0, {})`` when there is no table yet."""
    try:
        table = _open(path)
    except NoMasterDataset:
        return Progress(version=None, batch_seq=0, offsets={})
    return _progress_of(path, table)


def snapshot(path: str | Path, version: int | None = None) -> tuple[int, Watermark, DeltaTable]:
    """A consistent read of the master dataset: ``(version, offsets, table)``.

    ``table`` is loaded at ``version`` (latest when None) and ``offsets`` is the next-offset vector
    its rows cover exactly — the watermark W a batch view computed from it is tagged with.
    Raises :class:`NoMasterDataset` when nothing was archived yet.
    """
    table = _open(path, version)
    progress = _progress_of(path, table)
    return table.version(), progress.offsets, table
