"""The erasure log and the erasure list: which customers were erased, and how far each erasure got.

An erasure (``DELETE /v1/customers/{id}``, ``lambdalytics erase``) is recorded here *first*, as
``pending``; then every store is purged idempotently (``batch.erasure``, ``serving.erasure``), each
purge writing what it removed and when into the record; then it is marked ``complete``. A crash leaves
it pending, and running it again completes it — nothing is lost by stopping half-way.

**No personal data beyond a keyed hash.** A customer is named by its *subject*,
``HMAC-SHA256(erasure_secret, tenant_id \\0 customer_id)``; the secret is configured
(``LAMBDALYTICS_ERASURE_SECRET``) or, in dev, generated once into ``$DATA_DIR/run/erasure.secret``
(``infra.secret_keys``). A *pending* record must also hold the plain ids of the component it purges
(a crashed purge needs them to finish); completing it removes them, so a complete record holds only
subjects, counts and times.

**The list** (:class:`ErasureList`) is what the archiver and the speed consumer consult for every record:
an event whose (tenant, customer) subject is on it — pending or complete — is not counted again,
however late it comes (still in Kafka until retention, or re-sent). Such events are skipped, not
dead-lettered (a dead letter would copy the personal data the erasure removes), and counted in
``lambdalytics_erased_events_skipped_total{component}``. The list is re-read from SQLite at most every
``refresh_s`` (and on demand), so every process sees an erasure within that bound; the purge's second
pass (``batch.erasure``) removes what raced it.

**The archiver's fence.** The archiver re-reads the list at the start of every micro-batch and records
its highest erasure seq in the batch's Delta commit (``lambdalytics.erasures_seq``; an idle archiver
commits a zero-row batch for a new seq). Its commits are sequential, so once one carries seq ≥ N every
later one was checked against erasure N: the purge's second pass waits for that commit (or for no
archiver to be running: :func:`archiver_running`, a lock every running archiver holds shared), not for a
time.

Stored in ``$DATA_DIR/run/erasures.sqlite`` (mode 0600), shared by every process like the audit log.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter

from . import private_files
from .secret_keys import configured_secret
from .settings import Settings

__all__ = [
    "ERASED_EVENTS_SKIPPED",
    "Erasure",
    "ErasureList",
    "ErasureLog",
    "REMAINS",
    "archiver_running",
    "archiving",
    "erasures_path",
]

ERASED_EVENTS_SKIPPED = Counter(
    "lambdalytics_erased_events_skipped",
    "Events of an erased customer not counted again (skipped, not dead-lettered)",
    ["component"],
    registry=None,  # registered into each /metrics registry that shows it (serving.telemetry)
)
REMAINS = (
    "The raw Kafka topics still hold the customer's records until their retention expires (the broker's "
    "retention.ms); they are not counted again: the archiver and the speed consumer skip every event of an "
    "erased customer. The Delta log keeps per-file column statistics (minimum/maximum values) of the "
    "removed files until log retention. The Pinot speed store, when used, cannot delete rows of its realtime "
    "tables: they stay in its segments (on its servers and in its deep store) until Pinot's retention deletes "
    "each segment, 7 days after the newest event time it holds; its answers leave the customer out, also "
    "after a restart (the exclusion is read from this erasure log)."
)
"""What an erasure cannot remove, stated in every receipt."""
SUBJECT_CACHE = 65_536
"""Subjects an erasure list keeps computed, most recently asked first (in memory only, never written)."""
REFRESH_S = 1.0
"""How stale a process's copy of the list may be: an erasure reaches every archiver and consumer within it."""


def erasures_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "run" / "erasures.sqlite"


def _archiver_lock_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "run" / "archiver.lock"


@contextmanager
def archiving(data_dir: str | Path) -> Iterator[None]:
    """Held (shared) while an archiver runs over ``data_dir``, from before its first read of the list."""
    path = _archiver_lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def archiver_running(data_dir: str | Path) -> bool:
    """Is an archiver running over ``data_dir``? One that starts later reads the list before it lands a
    row, so it never lands an erased customer's row."""
    path = _archiver_lock_path(data_dir)
    if not path.exists():
        return False
    with path.open("a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


@dataclass(frozen=True)
class Erasure:
    """One erasure's record: the receipt ``GET /v1/erasures/{id}`` shows."""

    seq: int
    erasure_id: str
    tenant_id: str
    subject: str  # the keyed hash of the customer asked for
    subjects: tuple[str, ...]  # the keyed hash of every id of its identity component
    state: Literal["pending", "complete"]
    requested_at: float
    completed_at: float | None
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)  # store -> what its purge removed, when
    customer_ids: tuple[str, ...] = ()  # plain ids, only while pending (the purge needs them)


class ErasureLog:
    """The records, in one SQLite file every process opens."""

    def __init__(self, path: Path, secret: str):
        self._key = secret.encode()
        self._db = private_files.sqlite(path)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS erasures (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "erasure_id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL, subject TEXT NOT NULL, "
                "subjects TEXT NOT NULL, state TEXT NOT NULL, requested_at REAL NOT NULL, "
                "completed_at REAL, stores TEXT NOT NULL, customer_ids TEXT)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS erasures_subject ON erasures (tenant_id, subject)")

    @classmethod
    def open(cls, settings: Settings) -> ErasureLog:
        secret = configured_secret(settings, "erasure_secret", settings.erasure_secret)
        return cls(erasures_path(settings.data_dir), secret)

    def subject(self, tenant_id: str, customer_id: str) -> str:
        """The keyed hash naming one customer of one tenant (the only form the list keeps)."""
        message = f"{tenant_id}\0{customer_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def request(self, tenant_id: str, customer_id: str, component: list[str]) -> tuple[Erasure, bool]:
        """Record a pending erasure of ``component`` (the ids of the customer's identity), or return the
        erasure already recorded for this customer; (erasure, created)."""
        subject = self.subject(tenant_id, customer_id)
        ids = sorted({customer_id, *component})
        with self._lock, self._db:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM erasures WHERE tenant_id = ? AND subject = ? ORDER BY seq DESC",
                (tenant_id, subject),
            ).fetchone()
            if row is not None:
                return _erasure(row), False
            self._db.execute(
                "INSERT INTO erasures (erasure_id, tenant_id, subject, subjects, state, requested_at, stores, "
                "customer_ids) VALUES (?, ?, ?, ?, 'pending', ?, '{}', ?)",
                (
                    uuid.uuid4().hex,
                    tenant_id,
                    subject,
                    json.dumps([self.subject(tenant_id, c) for c in ids]),
                    time.time(),
                    json.dumps(ids),
                ),
            )
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM erasures WHERE seq = last_insert_rowid()"
            ).fetchone()
        return _erasure(row), True

    def get(self, erasure_id: str) -> Erasure | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM erasures WHERE erasure_id = ?", (erasure_id,)
            ).fetchone()
        return _erasure(row) if row is not None else None

    def after(self, seq: int = 0) -> list[Erasure]:
        """Every erasure recorded after ``seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM erasures WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
        return [_erasure(r) for r in rows]

    def pending(self) -> list[Erasure]:
        return [e for e in self.after() if e.state == "pending"]

    def purged(self, erasure_id: str, store: str, **facts: Any) -> None:
        """One store's purge is done: what it removed (and when) goes into the receipt. The first report
        of a store stays: a re-run, which finds nothing left to remove, does not overwrite its counts."""
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT stores FROM erasures WHERE erasure_id = ?", (erasure_id,)
            ).fetchone()
            if row is None:
                raise KeyError(erasure_id)
            stores = json.loads(row[0])
            stores.setdefault(store, {"at": time.time(), **facts})
            self._db.execute(
                "UPDATE erasures SET stores = ? WHERE erasure_id = ?", (json.dumps(stores), erasure_id)
            )

    def complete(self, erasure_id: str) -> None:
        """Every store is purged: mark it complete and drop the plain ids."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE erasures SET state = 'complete', completed_at = ?, customer_ids = NULL "
                "WHERE erasure_id = ? AND state = 'pending'",
                (time.time(), erasure_id),
            )

    def subjects(self) -> frozenset[str]:
        """Every erased subject, pending or complete."""
        return frozenset(s for subjects in self.subjects_by_tenant().values() for s in subjects)

    def subjects_by_tenant(self) -> dict[str, frozenset[str]]:
        """Every erased subject, pending or complete, per tenant (one read of the log)."""
        return self.listing()[1]

    def listing(self) -> tuple[int, dict[str, frozenset[str]]]:
        """(the highest erasure seq, every erased subject per tenant), read together: a process holding
        this copy checks records against every erasure up to that seq."""
        with self._lock:
            rows = self._db.execute("SELECT seq, tenant_id, subjects FROM erasures").fetchall()
        out: dict[str, set[str]] = {}
        for _, tenant_id, text in rows:
            out.setdefault(tenant_id, set()).update(json.loads(text))
        seq = max((row[0] for row in rows), default=0)
        return seq, {tenant_id: frozenset(subjects) for tenant_id, subjects in out.items()}

    def close(self) -> None:
        self._db.close()


_COLUMNS = (
    "seq, erasure_id, tenant_id, subject, subjects, state, requested_at, completed_at, stores, customer_ids"
)


def _erasure(row: tuple) -> Erasure:
    return Erasure(
        seq=row[0],
        erasure_id=row[1],
        tenant_id=row[2],
        subject=row[3],
        subjects=tuple(json.loads(row[4])),
        state=row[5],
        requested_at=row[6],
        completed_at=row[7],
        stores=json.loads(row[8]),
        customer_ids=tuple(json.loads(row[9])) if row[9] else (),
    )


class ErasureList:
    """What the archiver, the speed consumer and the Pinot store ask about every record: is its customer
    erased?

    One HMAC and one set lookup per record; the set is re-read at most every ``refresh_s``. Until the
    first erasure creates the log, nothing is erased and no secret is needed. ``component`` labels the
    skip counter (``archiver``, ``speed``). Read from the log, so a process started after an erasure —
    complete, its plain ids gone — knows it from its first record.
    """

    def __init__(self, settings: Settings, *, component: str, refresh_s: float = REFRESH_S):
        self.settings = settings
        self.component = component
        self.refresh_s = refresh_s
        self.skipped = 0
        self._log: ErasureLog | None = None
        self._subjects: dict[str, frozenset[str]] = {}  # tenant -> erased subjects
        self.seq = 0  # the highest erasure seq of this copy of the list
        self._read_at = float("-inf")
        self._lock = threading.Lock()  # the Pinot store asks from every serving thread
        self._subject = None  # ErasureLog.subject behind a bounded cache, once the log is open

    def refresh(self) -> None:
        with self._lock:
            self._read_at = time.monotonic()
            if self._log is None:
                if not erasures_path(self.settings.data_dir).exists():
                    return
                self._log = ErasureLog.open(self.settings)
                # the Pinot store asks again for the same customers at every read: hash each once
                self._subject = functools.lru_cache(maxsize=SUBJECT_CACHE)(self._log.subject)
            self.seq, self._subjects = self._log.listing()

    def fence(self) -> int:
        """Re-read the list now and return its highest erasure seq: every record checked after this call
        is checked against every erasure up to that seq (the archiver records it in each Delta commit,
        which lets the purge's second pass know when no raced row can land any more)."""
        self.refresh()
        return self.seq

    def _current(self) -> dict[str, frozenset[str]]:
        if time.monotonic() - self._read_at >= self.refresh_s:
            self.refresh()
        return self._subjects

    def has_erasures(self, tenant_id: str) -> bool:
        """Has any customer of this tenant been erased (pending or complete)?"""
        return tenant_id in self._current()

    def erased(self, tenant_id: str, customer_id: str) -> bool:
        """Is this customer of this tenant erased (pending or complete)? Not counted as a skip."""
        subjects = self._current().get(tenant_id)
        if not subjects or self._log is None:
            return False
        return self._subject(tenant_id, customer_id) in subjects

    def skips(self, row: dict[str, Any]) -> bool:
        """True (and counted) when ``row`` (a ``to_row`` dict) is an erased customer's event."""
        if not self.erased(row["tenant_id"], row["customer_id"]):
            return False
        self.skipped += 1
        ERASED_EVENTS_SKIPPED.labels(self.component).inc()
        return True
