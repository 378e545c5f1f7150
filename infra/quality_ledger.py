"""The quality ledger: per tenant, counters of records as they arrived, per arrival hour and all time.

Why a counter store of its own, not a batch view ⊕ speed: the figures count *records* — copies, late
ones and the ones that broke the contract, which never reach the master or a view — and the archiver is
the one consumer that decodes every record and dead-letters it (docs/metrics.md "Data quality").

- **Exactly once.** Beside the counters the ledger keeps, per partition, the (logical) offset below
  which every record is counted; :meth:`QualityLedger.record` skips a record below it, in the same LMDB
  write transaction that adds the others. The archiver records a micro-batch before its Delta commit, so
  a crash in between replays records the ledger already holds and adds nothing.
- **Coverage.** It also keeps the offset it began counting at per partition (:meth:`QualityLedger.begin`):
  above 0 (a ledger created on a data folder that already had a master), answers say ``complete: false``
  and from where.
- **Cost follows the answer.** Hourly keys are ``tenant \\0 hour counter``: a window reads its hours,
  an all-time total is one key per (tenant, counter). Memory-mapped, shared by every worker like the
  event index (``<data_dir>/quality_ledger``).

A record without a parsable tenant is kept under :data:`UNKNOWN_TENANT` (the empty string, never a
tenant id).

- **Marked subjects.** An observation may name a *subject* (a customer id), *mark* it (an ``identify``
  or the survivor of an ``alias``) and name counters it adds only when its subject is marked — by a
  record of the same :meth:`~QualityLedger.record` call (a micro-batch: marks apply first, so topics
  consumed in any order within it agree) or of an earlier one. Like lateness, it is fixed when the
  record is counted; a replay counts nothing again. Marks live in the same transaction as the counters,
  keyed ``tenant \0 subject``; an erasure removes them (:meth:`QualityLedger.forget`).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import lmdb

from lambdalytics.schemas.catalog.model import HOUR_MS
from lambdalytics.schemas.views import Watermark, decode_offsets, encode_offsets

from . import lmdb_envs

__all__ = ["QUALITY_LEDGER_DIR", "UNKNOWN_TENANT", "Coverage", "Observation", "QualityLedger", "ledger_path"]

QUALITY_LEDGER_DIR = "quality_ledger"
UNKNOWN_TENANT = ""
MAP_SIZE = 1 << 32  # 4 GiB of address space; the file grows with its pages (tenants × counters × hours)
_DBS = (b"hours", b"totals", b"last", b"meta", b"marked")
_COUNTED, _FROM = b"counted", b"from"
_U64 = struct.Struct(">Q")


class Observation(NamedTuple):
    """One consumed record: its logical position, tenant (None: not parsable), Kafka timestamp and the
    counters it adds 1 to. A record counted as ``records`` also moves its topic's last-event time."""

    topic: str
    partition: int
    offset: int
    tenant_id: str | None
    arrived_ms: int
    counters: tuple[str, ...]
    subject: str | None = None  # the customer id the record is about (None: no subject)
    marks: bool = False  # the record marks its subject (for its own batch and every later one)
    if_marked: tuple[str, ...] = ()  # counters added when the subject is marked


class Coverage(NamedTuple):
    counted: Watermark  # every record below is counted
    started: Watermark  # counting began here (0: from the start of the partition)

    @property
    def complete(self) -> bool:
        return all(offset == 0 for offset in self.started.values())


def ledger_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / QUALITY_LEDGER_DIR


def _prefix(tenant: str) -> bytes:
    return tenant.encode() + b"\0"


class QualityLedger:
    """A handle on one LMDB environment (one per file per process, shared by the handles on it)."""

    def __init__(self, env: lmdb.Environment, path: Path):
        self._env, self.path, self._closed = env, path, False
        self._hours, self._totals, self._last, self._meta, self._marked = (
            env.open_db(n, create=False) for n in _DBS
        )

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> QualityLedger | None:
        """The ledger at ``path``; created when absent if ``create``, else None when absent."""
        path = Path(path)
        if not create and not (path / "data.mdb").exists():
            return None
        path = path.resolve()
        return cls(lmdb_envs.acquire(path, map_size=MAP_SIZE, dbs=_DBS), path)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            lmdb_envs.release(self.path)

    def __enter__(self) -> QualityLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def begin(self, archived: Watermark) -> None:
        """The archiver resumes at ``archived``: a partition the ledger never counted begins there (a
        ledger created beside an older master has not seen what lies below)."""
        with self._env.begin(write=True) as txn:
            started = self._offsets(txn, _FROM)
            for tp, offset in archived.items():
                started.setdefault(tp, offset)
            txn.put(_FROM, encode_offsets(started).encode(), db=self._meta)

    def record(self, observations: Iterable[Observation], *, covers: Watermark) -> int:
        """Count the observations not counted yet, in one transaction; ``covers``: the offsets the batch
        of records ends at (every record below them was consumed). Returns how many were counted."""
        seen: Counter[tuple[str, int, tuple[str, ...]]] = Counter()  # (tenant, hour, counters) → records
        last: dict[tuple[str, str], int] = {}
        fresh: list[Observation] = []
        counted = 0
        with self._env.begin(write=True) as txn:
            marks = self._offsets(txn, _COUNTED)
            started = self._offsets(txn, _FROM)
            for o in observations:
                tp = (o.topic, o.partition)
                if tp not in started:
                    started[tp] = marks.get(tp, o.offset)
                if o.offset < marks.get(tp, 0):
                    continue  # a replay: counted before
                fresh.append(o)
            for o in fresh:  # marks first: a batch's records see every mark of the batch
                if o.marks and o.subject is not None:
                    txn.put(_prefix(o.tenant_id or UNKNOWN_TENANT) + o.subject.encode(), b"", db=self._marked)
            for o in fresh:
                counted += 1
                tenant = o.tenant_id or UNKNOWN_TENANT
                counters = o.counters
                subject = None if o.subject is None else _prefix(tenant) + o.subject.encode()
                if o.if_marked and subject is not None and txn.get(subject, db=self._marked) is not None:
                    counters += o.if_marked
                seen[(tenant, o.arrived_ms // HOUR_MS, counters)] += 1
                if "records" in o.counters and last.get((tenant, o.topic), -1) < o.arrived_ms:
                    last[(tenant, o.topic)] = o.arrived_ms
            hours: Counter[bytes] = Counter()
            totals: Counter[bytes] = Counter()
            for (tenant, hour, counters), n in seen.items():
                prefix = _prefix(tenant)
                for name in counters:
                    hours[prefix + _U64.pack(hour) + name.encode()] += n
                    totals[prefix + name.encode()] += n
            for db, deltas in ((self._hours, hours), (self._totals, totals)):
                for key, n in deltas.items():
                    raw = txn.get(key, db=db)
                    txn.put(key, _U64.pack((_U64.unpack(raw)[0] if raw else 0) + n), db=db)
            for (tenant, topic), ms in last.items():
                key = _prefix(tenant) + topic.encode()
                raw = txn.get(key, db=self._last)
                if raw is None or _U64.unpack(raw)[0] < ms:
                    txn.put(key, _U64.pack(ms), db=self._last)
            for tp, offset in covers.items():
                marks[tp] = max(marks.get(tp, 0), offset)
                started.setdefault(tp, offset)
            txn.put(_COUNTED, encode_offsets(marks).encode(), db=self._meta)
            txn.put(_FROM, encode_offsets(started).encode(), db=self._meta)
        return counted

    def forget(self, tenant_id: str, subjects: Iterable[str]) -> int:
        """Remove the marks of ``subjects`` (an erasure's ids); how many there were. Counters stay: they
        are counts per hour, not about anyone."""
        removed = 0
        with self._env.begin(write=True) as txn:
            for subject in subjects:
                removed += txn.delete(_prefix(tenant_id) + subject.encode(), db=self._marked)
        return removed

    def marked(self, tenant_id: str, subject: str) -> bool:
        with self._env.begin(db=self._marked) as txn:
            return txn.get(_prefix(tenant_id) + subject.encode()) is not None

    # ------------------------------------------------------------------ reads

    def window(self, tenant_id: str, since_ms: int, until_ms: int) -> dict[str, int]:
        """Counters of the arrival hours overlapping [since_ms, until_ms] (reads only those hours)."""
        prefix = _prefix(tenant_id)
        first, last = prefix + _U64.pack(since_ms // HOUR_MS), _U64.pack(until_ms // HOUR_MS)
        out: Counter[str] = Counter()
        with self._env.begin(db=self._hours) as txn:
            cursor = txn.cursor()
            if cursor.set_range(first):
                for key, value in cursor:
                    if not key.startswith(prefix) or key[len(prefix) : len(prefix) + 8] > last:
                        break
                    out[key[len(prefix) + 8 :].decode()] += _U64.unpack(value)[0]
        return dict(out)

    def last_events(self, tenant_id: str) -> dict[str, int]:
        """Per topic, the newest Kafka timestamp (ms) of a valid record of the tenant."""
        return {topic: ms for (tenant, topic), ms in self._scan(self._last, _prefix(tenant_id)).items()}

    def totals(self) -> dict[tuple[str, str], int]:
        """All-time counters, per (tenant, counter): what Prometheus exports."""
        return self._scan(self._totals, b"")

    def all_last_events(self) -> dict[tuple[str, str], int]:
        return self._scan(self._last, b"")

    def coverage(self) -> Coverage:
        with self._env.begin(db=self._meta) as txn:
            return Coverage(self._offsets(txn, _COUNTED), self._offsets(txn, _FROM))

    def _scan(self, db, prefix: bytes) -> dict[tuple[str, str], int]:
        out = {}
        with self._env.begin(db=db) as txn:
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    tenant, _, name = key.partition(b"\0")
                    out[(tenant.decode(), name.decode())] = _U64.unpack(value)[0]
        return out

    def _offsets(self, txn, key: bytes) -> dict[tuple[str, int], int]:
        raw = txn.get(key, db=self._meta)
        return decode_offsets(raw.decode()) if raw is not None else {}
