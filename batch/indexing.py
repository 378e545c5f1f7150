"""Keeps the event-id index (``infra.event_index``) complete for the master dataset.

The archiver indexes each micro-batch before committing it, so the index normally covers the master
already. It is still a derived artifact: missing (a master from before it existed, a deleted folder) or
behind, it is rebuilt from a master snapshot with :func:`index_master` — on archiver start and before a
batch run publishes a W it does not cover (:func:`ensure_indexed`) — so no published W is ever served
with copies below it that the speed side cannot see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from deltalake import DeltaTable

from lambdalytics.infra.event_index import EventIndex, event_index_path
from lambdalytics.schemas.views import Watermark

__all__ = ["ensure_indexed", "index_master"]

log = logging.getLogger(__name__)

_COLUMNS = ["tenant_id", "event_id", "topic", "partition", "offset"]
_BATCH_ROWS = 100_000  # rows per LMDB write transaction while rebuilding


def _copies(table: DeltaTable) -> Iterator[list[tuple[str, str, str, int, int]]]:
    scanner = table.to_pyarrow_dataset().scanner(columns=_COLUMNS, batch_size=_BATCH_ROWS)
    for batch in scanner.to_batches():
        columns = [batch.column(name).to_pylist() for name in _COLUMNS]
        yield list(zip(*columns, strict=True))


def index_master(index: EventIndex, table: DeltaTable, offsets: Watermark) -> int:
    """Index every row of the master snapshot ``table``, whose rows are exactly those below ``offsets``;
    the index then covers ``offsets``. Idempotent. Returns the rows read."""
    started, rows = time.monotonic(), 0
    for copies in _copies(table):
        index.record(copies, covers={}, after={})  # entries first, coverage once all are in
        rows += len(copies)
    index.record((), covers=offsets, after=None)
    log.info(
        "event index rebuilt from master v%d: %d rows in %.1fs",
        table.version(),
        rows,
        time.monotonic() - started,
    )
    return rows


def ensure_indexed(
    data_dir: str | Path, table: DeltaTable, offsets: Watermark, *, need: Watermark | None = None
) -> EventIndex:
    """The index of ``data_dir``, rebuilt from the snapshot ``table`` (rows below ``offsets``) when it does
    not cover ``need`` (default: ``offsets``). The caller closes it."""
    index = EventIndex.open(event_index_path(data_dir))
    assert index is not None
    if reason := index.uncovered(offsets if need is None else need):
        log.warning("%s: rebuilding it from the master", reason)
        index_master(index, table, offsets)
    return index
