"""The event-id index: ``(tenant_id, event_id)`` → the position of its lowest copy in the master dataset.

Why it exists: the batch counts an event's lowest copy (``batch.views.dedup_events``), and the speed store
must not count a later copy of an event the batch already counts — however late that copy comes. A window
in time cannot promise that (a re-send after the window, or one record stamped far ahead that empties it);
this index can: the speed store asks it about ids it does not hold itself, without any clock
(``speed.embedded``, docs/architecture.md "Duplicates").

- **Written before the Delta commit.** The archiver records every row of a micro-batch here, then commits
  the rows to the master; a crash in between is replayed at the same positions and writes the same
  entries (an entry keeps the lowest position ever recorded, so writing twice changes nothing).
- **Covered offsets.** Beside the entries the index keeps the offset vector below which every master row
  is indexed (:meth:`EventIndex.covered`); it only advances over a contiguous range. The batch refuses to
  publish a W the index does not cover (it rebuilds the index from the master first,
  ``batch.indexing``), and the speed store refuses to merge with one.
- **Memory-mapped, shared.** LMDB: one file under ``<data_dir>/event_index``, read by every serving worker
  through the OS page cache (none of it in a Python heap), written by the archiver and the batch under
  LMDB's own writer lock. Each lookup is its own short read transaction, so it sees every commit before it.

- **Spread ids.** Beside the lowest copy, the index marks the ids it has seen copies of on *two or more*
  (topic, partition)s (:meth:`EventIndex.spread_of`) — an id reused on another topic or partition, not a
  re-send. An incremental batch run dedups its new events with the entries alone, and needs these marks
  for the one case the lowest position cannot settle: a copy below the previous watermark on another
  partition, sorting after the new one (``batch.incremental``). The marks are complete only for an index
  that has tracked them from its first entry (:meth:`EventIndex.tracks_spread`: created empty, or rebuilt
  from the master); a marked id stays marked (an erasure does not unmark it), which only costs a slower,
  still exact, dedup.

Keys are ``tenant \\0 event_id`` in UTF-8 (a tenant id has no NUL); an id too long for an LMDB key
(511 bytes) is stored by its BLAKE2b-256 digest after a ``\\xff`` byte, which no UTF-8 text begins with.
Values are msgpack ``[topic, partition, offset]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import lmdb
import msgspec

from lambdalytics.schemas.views import Watermark, decode_offsets, encode_offsets

from . import lmdb_envs

__all__ = ["EVENT_INDEX_DIR", "EventIndex", "Position", "event_index_path", "index_key"]

EVENT_INDEX_DIR = "event_index"
Position = tuple[str, int, int]
"""(topic, partition, offset) of one copy; tuples compare as the batch orders copies."""

MAP_SIZE = 1 << 36
"""Address space reserved for the file (64 GiB, ~600 M events); the file grows only with its pages."""
_MAX_KEY = 511  # LMDB's default key size limit
_COVERED = b"covered"
_TRACKS_SPREAD = b"tracks_spread"
_DBS = (b"entries", b"meta", b"spread")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(tuple[str, int, int]).decode


def event_index_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / EVENT_INDEX_DIR


def index_key(tenant_id: str, event_id: str) -> bytes:
    """The LMDB key of an idempotency key (scoped to its tenant)."""
    key = tenant_id.encode() + b"\0" + event_id.encode()
    if len(key) <= _MAX_KEY:
        return key
    return tenant_id.encode() + b"\0\xff" + hashlib.blake2b(event_id.encode(), digest_size=32).digest()


class EventIndex:
    """A handle on one LMDB environment, opened with :meth:`open` in the process that uses it (never
    across a fork). Handles on one path in one process share its environment (LMDB allows one)."""

    def __init__(self, env: lmdb.Environment, path: Path):
        self._env = env
        self.path = path
        self._entries = env.open_db(b"entries", create=False)
        self._meta = env.open_db(b"meta", create=False)
        self._spread = env.open_db(b"spread", create=False)
        self._closed = False

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> EventIndex | None:
        """The index at ``path``; created when absent if ``create``, else None when absent."""
        path = Path(path)
        if not create and not (path / "data.mdb").exists():
            return None
        path = path.resolve()
        index = cls(lmdb_envs.acquire(path, map_size=MAP_SIZE, dbs=_DBS), path)
        if create:
            index._track_if_empty()
        return index

    def _track_if_empty(self) -> None:
        """A new, empty index marks spread ids from its first entry, so its marks are complete."""
        with self._env.begin(write=True) as txn:
            if txn.stat(self._entries)["entries"] == 0 and txn.get(_COVERED, db=self._meta) is None:
                txn.put(_TRACKS_SPREAD, b"1", db=self._meta)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            lmdb_envs.release(self.path)

    def __enter__(self) -> EventIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def lowest(self, tenant_id: str, event_id: str) -> Position | None:
        """Where the lowest indexed copy of this event lies, or None when no copy is indexed."""
        with self._env.begin(db=self._entries, buffers=True) as txn:
            value = txn.get(index_key(tenant_id, event_id))
            return _decode(value) if value is not None else None

    def lowest_of(self, ids: Iterable[tuple[str, str]]) -> list[Position | None]:
        """:meth:`lowest` of each (tenant_id, event_id), in one read transaction."""
        with self._env.begin(db=self._entries, buffers=True) as txn:
            return [
                _decode(value) if (value := txn.get(index_key(t, e))) is not None else None for t, e in ids
            ]

    def spread_of(self, ids: Iterable[tuple[str, str]]) -> list[bool]:
        """Per (tenant_id, event_id): whether copies of it were indexed on two or more partitions."""
        with self._env.begin(db=self._spread, buffers=True) as txn:
            return [txn.get(index_key(t, e)) is not None for t, e in ids]

    def tracks_spread(self) -> bool:
        """Whether :meth:`spread_of` is complete: the index marked spread ids since its first entry."""
        with self._env.begin(db=self._meta) as txn:
            return txn.get(_TRACKS_SPREAD) is not None

    def track_spread(self) -> None:
        """Declare the marks complete: called after every master row was recorded again (a rebuild)."""
        with self._env.begin(write=True, db=self._meta) as txn:
            txn.put(_TRACKS_SPREAD, b"1")

    def covered(self) -> Watermark:
        """Per partition, the offset below which every master row is indexed (absent: 0)."""
        with self._env.begin(db=self._meta) as txn:
            raw = txn.get(_COVERED)
        return decode_offsets(raw.decode()) if raw is not None else {}

    def uncovered(self, watermark: Mapping[tuple[str, int], int]) -> str | None:
        """Why the index does not hold every master row below ``watermark``, or None when it does."""
        covered = self.covered()
        for tp, offset in sorted(watermark.items()):
            if covered.get(tp, 0) < offset:
                return f"the event index {self.path} covers {tp} only below {covered.get(tp, 0)}, W={offset}"
        return None

    def __len__(self) -> int:
        with self._env.begin(db=self._entries) as txn:
            return txn.stat(self._entries)["entries"]

    # ------------------------------------------------------------------ writes

    def record(
        self,
        copies: Iterable[tuple[str, str, str, int, int]],
        *,
        covers: Watermark,
        after: Watermark | None = None,
    ) -> int:
        """Index ``copies`` — (tenant_id, event_id, topic, partition, offset) — in one write transaction.

        Each entry keeps the lowest position it was ever given; an id given positions on two partitions
        is marked spread. ``covers`` is the offset vector the copies
        complete: every master row below it is indexed once they are, provided the index already covered
        ``after`` (the offsets the copies start at; None: the copies are every master row below
        ``covers``, a rebuild). Coverage never moves backwards nor across a range not indexed.
        Returns how many entries were new or lowered.
        """
        changed = 0
        with self._env.begin(write=True) as txn:
            for tenant_id, event_id, topic, partition, offset in copies:
                key, position = index_key(tenant_id, event_id), (topic, partition, offset)
                value = _encode(position)
                if txn.put(key, value, overwrite=False, db=self._entries):
                    changed += 1
                    continue
                held = _decode(txn.get(key, db=self._entries))
                if held[:2] != position[:2]:
                    txn.put(key, b"", db=self._spread)
                if position < held:
                    txn.put(key, value, db=self._entries)
                    changed += 1
            raw = txn.get(_COVERED, db=self._meta)
            covered = decode_offsets(raw.decode()) if raw is not None else {}
            for tp, offset in covers.items():
                if after is None or covered.get(tp, 0) >= after.get(tp, 0):
                    covered[tp] = max(covered.get(tp, 0), offset)
            txn.put(_COVERED, encode_offsets(covered).encode(), db=self._meta)
        return changed

    def forget(self, tenant_id: str, event_ids: Iterable[str]) -> int:
        """Remove the entries of ``event_ids`` (an erasure removed their rows from the master): the
        index stays what a rebuild from the master would give. Returns how many entries were removed.
        LMDB frees their pages; the bytes stay in the file until a later write reuses them."""
        with self._env.begin(write=True, db=self._entries) as txn:
            return sum(bool(txn.delete(index_key(tenant_id, e))) for e in set(event_ids))
