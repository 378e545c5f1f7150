"""Keeps the event-id index (``infra.event_index``) complete for the master dataset.

The archiver indexes each micro-batch before committing it, so the index normally covers the master
already. It is still a derived artifact: missing (a master from before it existed, a deleted folder) or
behind, it is rebuilt from a master snapshot with :func:`index_master` — on archiver start and before a
batch run publishes a W it does not cover (:func:`ensure_indexed`) — so no published W is ever served
with copies below it that the speed side cannot see. An index that covers a prefix of every partition
only needs the rows above it: :func:`ensure_indexed` reads just those (the master's files are pruned by
their offset statistics), so a run over a master written without the archiver (the batch benchmark)
pays for its new rows, not the history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
from deltalake import DeltaTable

from lambdalytics.infra.event_index import EventIndex, event_index_path
from lambdalytics.schemas.views import Watermark

__all__ = ["ensure_indexed", "index_master"]

log = logging.getLogger(__name__)

_COLUMNS = ["tenant_id", "event_id", "topic", "partition", "offset"]
_BATCH_ROWS = 100_000  # rows per LMDB write transaction while rebuilding


def _copies(
    table: DeltaTable, above: Watermark | None = None
) -> Iterator[list[tuple[str, str, str, int, int]]]:
    """The (tenant, event id, position) of the snapshot's rows; with ``above``, only those at or above it."""
    where = None
    if above is not None:
        topic, partition, offset = (ds.field(c) for c in _COLUMNS[2:])
        seen = [(topic == t) & (partition == p) & (offset < o) for (t, p), o in sorted(above.items()) if o]
        where = ~_any(seen) if seen else None
    scanner = table.to_pyarrow_dataset().scanner(columns=_COLUMNS, filter=where, batch_size=_BATCH_ROWS)
    for batch in scanner.to_batches():
        columns = [batch.column(name).to_pylist() for name in _COLUMNS]
        yield list(zip(*columns, strict=True))


def _any(conditions: list[ds.Expression]) -> ds.Expression:
    out = conditions[0]
    for condition in conditions[1:]:
        out = out | condition
    return out


def index_master(
    index: EventIndex, table: DeltaTable, offsets: Watermark, *, above: Watermark | None = None
) -> int:
    """Index every row of the master snapshot ``table``, whose rows are exactly those below ``offsets``;
    the index then covers ``offsets``. With ``above`` (what the index covers already), only the rows at
    or above it are read. Idempotent. Returns the rows read."""
    started, rows = time.monotonic(), 0
    for copies in _copies(table, above):
        index.record(copies, covers={}, after={})  # entries first, coverage once all are in
        rows += len(copies)
    index.record((), covers=offsets, after=above)
    if above is None:
        index.track_spread()  # every row was recorded again, so every spread id is marked
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
        covered = index.covered()
        if _prefix(covered, offsets):
            log.info("%s: indexing the master rows above it", reason)
            index_master(index, table, offsets, above=covered)
        else:
            log.warning("%s: rebuilding it from the master", reason)
            index_master(index, table, offsets)
    return index


def _prefix(covered: Watermark, offsets: Watermark) -> bool:
    """Whether ``covered`` is a non-empty prefix of the snapshot's ``offsets`` in every partition."""
    return (
        any(covered.values())
        and all(covered.get(tp, 0) <= o for tp, o in offsets.items())
        and all(tp in offsets for tp in covered)
    )
