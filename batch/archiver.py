"""The archiver: Kafka event topics → the master dataset, exactly once.

Run it as ``python -m lambdalytics.batch.archiver`` (configuration from ``LAMBDALYTICS_*``, see
:class:`~lambdalytics.infra.settings.Settings`) or in-process with :func:`run_archiver`.

How exactly-once landing works
------------------------------
**The offsets in the Delta log are the source of truth.** Every micro-batch is one Delta commit that
holds the batch's rows *and* the full next-offset vector (see :mod:`lambdalytics.batch.master`). On
start the archiver reads that vector and ``seek()``\\ s each partition to it (``seek_to_beginning`` for
partitions it has never archived). Data and progress commit atomically, so a ``kill -9`` at any point
either loses the whole uncommitted batch *and* its progress (it is re-read and re-written on restart)
or keeps both: nothing is lost, nothing is duplicated. Committing offsets to Kafka after the Delta
commit (the other design ARCHITECTURE.md §2 allows) would leave a window between the two commits in
which a crash duplicates the batch.

The consumer uses ``assign()`` to every partition of the three event topics (re-discovered every
``partition_refresh_seconds``), never ``subscribe()``: no group rebalances, and one archiver owns all
partitions. It still has ``group_id="lambdalytics-archiver"`` and, after each Delta commit, commits the
same offsets to Kafka so that standard lag tools (``kafka-consumer-groups --describe``) show its
progress; those commits are informational — a failure is logged, never fatal, and they are never
read back.

Dead letters
------------
Records that break the contract go to ``events.deadletter`` through the shared
:class:`~lambdalytics.infra.kafka_io.EventDecoder` (original bytes, reason, and the source
topic/partition/offset in headers) and still advance the offsets. No record can stop the archiver: the
decoder raises nothing but the contract's violation (an unexpected failure is ``internal_error``), and
a record the dead-letter topic cannot take verbatim (over the producer's request limit, or refused by
the broker for a non-retriable reason) is dead-lettered *by reference* (size, SHA-256, a bounded
prefix; the original stays at its source position), so the archiver moves on past it. The
dead-letter producer is flushed, and every send confirmed, *before* the Delta commit, so an
acknowledged dead letter is never lost. A
crash between that flush and the Delta commit re-reads the batch and dead-letters its invalid records
again: dead letters are at-least-once; deduplicate them by ``(dlq.source.topic, dlq.source.partition,
dlq.source.offset)``.

Lost positions
--------------
The consumer resets a position the broker no longer has to the *earliest* offset that exists, and a
forward jump is never accepted silently: a record beyond the next expected offset of its partition
(the archived offset, or 0 for a partition never archived) means the offsets in between were lost
(retention deleted them before they landed, or the position was reset or seeked past them). Each such
range is a :class:`~lambdalytics.schemas.views.Gap`: logged as an error, counted in
:attr:`ArchiverStats.lost_offsets`, kept in :attr:`Archiver.gaps`, and recorded in the Delta commit that
moves the offsets past it (``commitInfo["lambdalytics.gaps"]``, beside ``lambdalytics.offsets``), so
:func:`lost_ranges` can list every range the master dataset is missing. Offsets are contiguous on the
event topics (no transactions, no compaction), so a hole is always a loss.

Operations
----------
- Micro-batches end at ``max_batch_records`` records or ``max_batch_seconds`` after their first
  record, whichever comes first (so ``max_batch_seconds`` bounds how long an event waits to land);
  each batch logs its size, its Delta commit time and its rate (events/s); the run logs totals.
- Broker unavailable: connecting, ``poll`` errors, a failing dead-letter flush, and — because an idle
  kafka-python ``poll()`` reconnects silently — a cheap ``beginning_offsets`` probe every 5 s while
  idle, are retried with exponential backoff (log line ``broker unavailable, retrying in Ns``). Nothing
  is committed for records whose dead letters are not confirmed.
- SIGTERM / ``stop_event``: the current batch is finished and committed, then the process exits 0.
- Only one archiver per master table: a commit that loses to another archiver's commit raises
  :class:`~lambdalytics.batch.master.ConcurrentArchiverError`.
- Erasures: an erased customer's records are consumed, not landed. Each micro-batch re-reads the erasure
  list first and records its highest seq in its commit (``lambdalytics.erasures_seq``); idle, the
  archiver commits a zero-row batch when the list gains an erasure; and it holds the data dir's archiver
  lock (shared) while it runs. That is the fence the purge's second pass waits for
  (:mod:`lambdalytics.infra.erasures`).
- Maintenance: with a :class:`~lambdalytics.batch.compaction.MaintenancePolicy` (``python -m`` and
  ``up`` pass the settings' one), every ``interval_seconds`` the archiver compacts the master between
  two micro-batches — as the master's one writer, so compaction never races its appends — and applies
  retention under the batch lock (see :mod:`lambdalytics.batch.compaction`). A failed maintenance is
  logged and retried at the next interval; it never stops archiving.
- A partition whose log went *backwards* under the same cluster id (a broker that lost its data
  without a new identity) raises :class:`OffsetRegressionError` instead of writing records whose
  (topic, partition, offset) is already taken in the master dataset. Caveat: this needs the broker to
  return those records; real Kafka answers a fetch past the log end with OFFSET_OUT_OF_RANGE (→ reset
  to earliest → detected).

Restart epochs
--------------
Offsets in the master are *logical* (:mod:`lambdalytics.infra.epochs`): a record at Kafka offset k of
epoch e lands as ``base_e[tp] + k``. When :meth:`Archiver.run` starts it asks the broker for its cluster
id and enters that cluster's epoch — beginning a new one when the id is new (the embedded broker gets a
fresh id at every start), with its base at the archived offsets rounded up to the block size. If the base
lies above the archived offsets, the archiver first commits a zero-row batch that moves its progress
there (``commitInfo["lambdalytics.epoch"]``): nothing exists in between, so the next batch run's W covers
the whole previous epoch even before the new one brings a record. Seeks and the informational Kafka
commits translate back to the epoch's own offsets; dead letters keep the Kafka position plus
``dlq.source.epoch``. The cluster id is read at every (re)start of the archiver: restart it after
pointing it at another cluster.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from lambdalytics.infra.client_logs import condense_client_errors
from lambdalytics.infra.epochs import IDENTITY, Epoch, EpochTable, cluster_id
from lambdalytics.infra.erasures import ErasureList, archiving
from lambdalytics.infra.event_index import EventIndex, event_index_path
from lambdalytics.infra.kafka_io import (
    EventDecoder,
    EventProducer,
    client_bytes,
    event_limit,
    refused_for_good,
)
from lambdalytics.infra.quality_ledger import QualityLedger, ledger_path
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.topics import EVENT_TOPICS
from lambdalytics.schemas.views import Gap, Watermark

from .compaction import MaintenancePolicy, describe, maintain
from .indexing import ensure_indexed
from .master import (
    APP_ID,
    BATCH_SEQ_KEY,
    ERASURES_SEQ_KEY,
    WRITER_KEY,
    ConcurrentArchiverError,
    NoMasterDataset,
    append_batch,
    batch_commit_info,
    master_path,
    recorded_fence,
    rows_to_table,
    snapshot,
)
from .quality import QualityBatch

__all__ = [
    "EPOCH_KEY",
    "GAPS_KEY",
    "Archiver",
    "ArchiverStats",
    "OffsetRegressionError",
    "lost_ranges",
    "main",
    "run_archiver",
]

log = logging.getLogger(__name__)

GROUP_ID = APP_ID
_MAX_BACKOFF_S = 10.0
_PROBE_INTERVAL_S = 5.0  # while idle, check the broker answers this often
GAPS_KEY = "lambdalytics.gaps"
"""Commit-info key of the lost ranges a master commit moved its offsets past (JSON list of Gap objects)."""
EPOCH_KEY = "lambdalytics.epoch"
"""Commit-info key of the zero-row commit that moves the progress to a new restart epoch's base."""


class OffsetRegressionError(RuntimeError):
    """A partition returned a record below the archived next offset: the broker lost its log."""


@dataclass
class ArchiverStats:
    batches: int = 0
    records: int = 0  # records consumed (valid + dead-lettered)
    rows: int = 0  # rows written to the master dataset
    dead_lettered: int = 0
    erased_skipped: int = 0  # events of erased customers not archived (infra.erasures)
    lost_offsets: int = 0  # offsets jumped over (lost positions), see "Lost positions"
    unlanded: int = 0  # records the broker held, not landed by the end of a drain (see Archiver.run)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Pending:
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]
    by_reference: bool
    future: Any  # None: not handed to the client yet (it raised at send)


class _DeadLetterSender(EventProducer):
    """An :class:`EventProducer` that remembers each dead letter until its send is confirmed."""

    def __init__(self, bootstrap: str, **kwargs: Any):
        super().__init__(bootstrap, **kwargs)
        self._pending: list[_Pending] = []

    def _send_dead_letter(  # type: ignore[override]
        self, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]], *, by_reference: bool = False
    ) -> Any:
        try:
            future = super()._send_dead_letter(value, key, headers, by_reference=by_reference)
        except KafkaError as exc:  # e.g. no metadata in time: confirm() sends it again
            log.warning("dead letter not sent yet (%s)", exc)
            future = None
        self._pending.append(_Pending(value, key, headers, by_reference, future))
        return future

    def confirm(self, timeout_s: float) -> int:
        """Flush and wait for every pending dead letter; resend the ones that failed — by reference
        when the broker or client refused the record itself (too large, invalid), so one record
        cannot block the archiver.

        Returns how many were confirmed; raises ``KafkaError`` while some are unconfirmed (they stay
        pending — failed ones resent — so a later call waits for them again).
        """
        if not self._pending:
            return 0
        deadline = time.monotonic() + timeout_s
        self.flush(timeout_s)  # raises KafkaTimeoutError when the broker does not answer in time
        pending, self._pending = self._pending, []
        in_flight: list[_Pending] = []
        confirmed, referenced = 0, False
        for entry in pending:
            by_reference = entry.by_reference
            if entry.future is not None:
                try:
                    entry.future.get(timeout=max(deadline - time.monotonic(), 0.01))
                    confirmed += 1
                    continue
                except Exception as exc:  # noqa: BLE001 - KafkaTimeoutError, or the send's own error
                    if not entry.future.is_done:
                        in_flight.append(entry)
                        continue
                    if refused_for_good(exc) and not by_reference:
                        log.warning(
                            "dead letter of %d bytes refused (%s): sending a reference", len(entry.value), exc
                        )
                        by_reference = referenced = True
            self._send_dead_letter(entry.value, entry.key, entry.headers, by_reference=by_reference)
        self._pending += in_flight
        if referenced and self._pending and time.monotonic() < deadline:  # the references just sent
            return confirmed + self.confirm(deadline - time.monotonic())
        if self._pending:
            raise KafkaError(f"{len(self._pending)} dead letters not acknowledged yet")
        return confirmed


class Archiver:
    """Consumes the event topics and appends micro-batches to ``<data_dir>/master``.

    Use :meth:`run` (blocking) and :meth:`stop` (from another thread or a signal handler).
    """

    def __init__(
        self,
        bootstrap: str,
        data_dir: str | Path,
        *,
        max_batch_records: int = 50_000,
        max_batch_seconds: float = 2.0,
        topics: tuple[str, ...] = EVENT_TOPICS,
        max_event_bytes: int | None = None,
        partition_refresh_seconds: float = 30.0,
        kafka_commit_timeout_s: float = 2.0,
        maintenance: MaintenancePolicy | None = None,
        block_size: int = Settings.model_fields["block_size"].default,
        erasures: ErasureList | None = None,
    ):
        if max_batch_records < 1 or max_batch_seconds <= 0:
            raise ValueError("max_batch_records must be >= 1 and max_batch_seconds > 0")
        self.bootstrap = bootstrap
        self.data_dir = Path(data_dir)
        self.path = master_path(data_dir)
        self.maintenance = maintenance
        self.max_batch_records = max_batch_records
        self.max_batch_seconds = max_batch_seconds
        self.topics = topics
        self.max_event_bytes = event_limit(max_event_bytes)
        self.partition_refresh_seconds = partition_refresh_seconds
        self.kafka_commit_timeout_s = kafka_commit_timeout_s
        self.block_size = block_size  # a new restart epoch's base is rounded up to it
        self.epochs = EpochTable(self.data_dir)
        self.epoch: Epoch = IDENTITY  # the epoch of the connected cluster, entered by run()
        self.entered_epoch = threading.Event()  # set once the progress stands in the broker's epoch
        self.writer_id = uuid.uuid4().hex
        self.stats = ArchiverStats()
        # events of erased customers are not archived again (infra.erasures); the data dir's own list
        self.erasures = erasures or ErasureList(Settings(data_dir=self.data_dir), component="archiver")
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._dead_letters: _DeadLetterSender | None = None
        self._decoder: EventDecoder | None = None
        self._table: DeltaTable | None = None
        self._index: EventIndex | None = None
        self._quality: QualityLedger | None = None  # data-quality counters (batch/quality.py)
        self._offsets: Watermark = {}
        self.gaps: list[Gap] = []  # lost ranges committed past by this run
        self._batch_seq = 0
        self._fenced = 0  # the erasure seq the last commit recorded (infra.erasures: the archiver's fence)
        self._fence = 0  # the erasure seq the current batch is checked against
        self._assigned: set[TopicPartition] = set()
        self._last_refresh = float("-inf")
        self._drain_until: float | None = None  # set while draining after a stop (see _drain)
        self._backoff = 0.5
        self._last_probe = time.monotonic()
        self._last_maintenance = time.monotonic()

    # ------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to finish and commit the current batch, then return."""
        self._stop.set()

    @property
    def connected(self) -> bool:
        """True once the Kafka clients exist (before that there is no batch to finish)."""
        return self._consumer is not None

    @property
    def offsets(self) -> Watermark:
        """The committed next-offset vector (a copy)."""
        return dict(self._offsets)

    def run(
        self,
        stop_event: threading.Event | None = None,
        idle_exit_seconds: float | None = None,
        *,
        drain_seconds: float = 0.0,
    ) -> ArchiverStats:
        """Archive until stopped (``stop()``, ``stop_event``) or, if ``idle_exit_seconds`` is given,
        until no record arrived for that long (caught up). ``drain_seconds``: once stopped, keep landing
        what the broker already holds for up to that long (for a log that dies with its broker)."""
        with archiving(self.data_dir):  # from before the first read of the erasure list
            return self._run(stop_event, idle_exit_seconds, drain_seconds)

    def _run(
        self, stop_event: threading.Event | None, idle_exit_seconds: float | None, drain_seconds: float
    ) -> ArchiverStats:
        started = time.monotonic()
        # The writer's own snapshot: its offsets are where to resume, and every commit is made
        # against it (no silent rebase over another writer's commit).
        try:
            version, offsets, self._table = snapshot(self.path)
            self._batch_seq = self._table.transaction_version(APP_ID) or 0
        except NoMasterDataset:
            version, offsets, self._table, self._batch_seq = None, {}, None, 0
        self._offsets = dict(offsets)
        self._fenced = recorded_fence(self.path)
        self._assigned, self._last_refresh = set(), float("-inf")  # a rerun (supervisor) assigns anew
        if self._table is not None:  # every master row indexed before the first new one lands
            self._index = ensure_indexed(self.data_dir, self._table, self._offsets)
        else:
            self._index = EventIndex.open(event_index_path(self.data_dir))
        self._quality = QualityLedger.open(ledger_path(self.data_dir))
        self._quality.begin(self._offsets)
        log.info(
            "archiver resuming %s at batch %d, version %s, %d partitions known",
            self.path,
            self._batch_seq,
            version,
            len(self._offsets),
        )
        try:
            self._connect(stop_event)
            self._enter_epoch(stop_event)
            idle_since = time.monotonic()
            while not self._stopping(stop_event):
                consumed = self._run_batch(stop_event)
                if not consumed:
                    self._commit_fence()
                self._maybe_maintain()
                now = time.monotonic()
                if consumed:
                    idle_since = now
                    self._last_probe = now
                elif idle_exit_seconds is not None and now - idle_since >= idle_exit_seconds:
                    log.info("archiver idle for %.1fs: caught up, exiting", now - idle_since)
                    break
                elif now - self._last_probe >= _PROBE_INTERVAL_S:
                    self._probe_broker(stop_event)
            if drain_seconds > 0 and self._consumer is not None and self._assigned:
                self._drain(drain_seconds)
        finally:
            self.stats.seconds = time.monotonic() - started
            self._close()
            log.info(
                "archiver totals: %d batches, %d records (%d rows, %d dead-lettered) in %.1fs = %.0f events/s",
                self.stats.batches,
                self.stats.records,
                self.stats.rows,
                self.stats.dead_lettered,
                self.stats.seconds,
                self.stats.rate,
            )
        return self.stats

    def _stopping(self, stop_event: threading.Event | None) -> bool:
        if self._drain_until is not None:  # stopped already: landing what the broker holds, until then
            return time.monotonic() >= self._drain_until
        return self._stop.is_set() or (stop_event is not None and stop_event.is_set())

    def _drain(self, budget_s: float) -> None:
        """After a stop: micro-batches until every position reached the high-water mark of its last
        fetch (all the broker held is landed) or ``budget_s`` passed. The embedded broker's log dies with
        it, so what is not landed by then is gone: said in the log (``ArchiverStats.unlanded``)."""
        self._drain_until = time.monotonic() + budget_s
        try:
            while True:
                behind = self._behind()
                if behind == {} or self._stopping(None):
                    break
                self._run_batch(None)
        finally:
            self._drain_until = None
        if behind != {}:
            self.stats.unlanded = sum((behind or {}).values())
            log.warning(
                "archiver stopped with records the broker holds not landed: %s",
                behind if behind is not None else "high-water marks unknown",
            )

    def _behind(self) -> dict[str, int] | None:
        """Records between each landed position and the high-water mark of its partition's last fetch
        (None: a partition was never fetched, so unknown)."""
        assert self._consumer is not None
        behind: dict[str, int] = {}
        for tp in sorted(self._assigned):
            high_water = self._consumer.highwater(tp)
            if high_water is None:
                return None
            position = self._offsets.get((tp.topic, tp.partition))
            landed = 0 if position is None else self.epoch.kafka(tp.topic, tp.partition, position)
            if high_water > landed:
                behind[f"{tp.topic}:{tp.partition}"] = high_water - landed
        return behind

    def _sleep_backoff(self, what: str, exc: BaseException, stop_event: threading.Event | None) -> None:
        log.warning("broker unavailable, retrying in %.1fs (%s: %s)", self._backoff, what, exc)
        deadline = time.monotonic() + self._backoff
        while time.monotonic() < deadline and not self._stopping(stop_event):
            time.sleep(0.05)
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)

    def _connect(self, stop_event: threading.Event | None) -> None:
        while self._consumer is None and not self._stopping(stop_event):
            try:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    client_id=f"lambdalytics-archiver-{self.writer_id[:8]}",
                    group_id=GROUP_ID,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    allow_auto_create_topics=False,
                    metadata_max_age_ms=int(self.partition_refresh_seconds * 1000),
                    max_partition_fetch_bytes=client_bytes(self.max_event_bytes),
                )
                self._dead_letters = _DeadLetterSender(self.bootstrap, max_event_bytes=self.max_event_bytes)
                self._decoder = EventDecoder(self._dead_letters, max_event_bytes=self.max_event_bytes)
                self._backoff = 0.5
            except KafkaError as exc:
                if self._consumer is not None:
                    self._consumer.close()
                    self._consumer = None
                self._sleep_backoff("connect", exc, stop_event)

    def _enter_epoch(self, stop_event: threading.Event | None) -> None:
        """Place the connected cluster on the logical offset line (see "Restart epochs")."""
        while not self._stopping(stop_event):
            try:
                cluster = cluster_id(self.bootstrap)
                break
            except KafkaError as exc:
                self._sleep_backoff("cluster id", exc, stop_event)
        else:
            return
        self.epoch = self.epochs.enter(cluster, self._offsets, self.block_size)
        assert self._decoder is not None
        self._decoder.epoch = self.epoch.number
        jumps = {tp: base for tp, base in self.epoch.base.items() if self._offsets.get(tp, 0) < base}
        if jumps:
            offsets = {**self._offsets, **jumps}
            version = self._commit([], offsets, [], extra={EPOCH_KEY: self.epoch.number})
            self._offsets = offsets
            log.info(
                "archiver: restart epoch %d (cluster %s) begins at %s; progress moved there in v%d",
                self.epoch.number,
                cluster,
                {f"{t}:{p}": o for (t, p), o in jumps.items()},
                version,
            )
        else:
            log.info("archiver: in restart epoch %d (cluster %s)", self.epoch.number, cluster)
        self.entered_epoch.set()

    def _probe_broker(self, stop_event: threading.Event | None) -> None:
        """An idle consumer's poll() cannot tell "no new events" from "broker down" (kafka-python
        reconnects silently), so ask the broker something cheap with a deadline."""
        assert self._consumer is not None
        self._last_probe = time.monotonic()
        if not self._assigned:
            return
        try:
            self._consumer.beginning_offsets(sorted(self._assigned)[:1], timeout_ms=2000)
            self._backoff = 0.5
        except KafkaError as exc:
            self._sleep_backoff("probe", exc, stop_event)

    def _close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._quality is not None:
            self._quality.close()
            self._quality = None
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("consumer close failed", exc_info=True)
            self._consumer = None
        if self._dead_letters is not None:
            try:
                self._dead_letters.close(5.0)
            except Exception:  # noqa: BLE001
                log.debug("dead-letter producer close failed", exc_info=True)
            self._dead_letters = None

    # ------------------------------------------------------------ partitions

    def _refresh_partitions(self, force: bool = False) -> None:
        """Assign every partition of the event topics; seek new ones to the archived offsets.

        Called only between batches, when every consumer position equals the committed offsets.
        """
        if not force and time.monotonic() - self._last_refresh < self.partition_refresh_seconds:
            return
        assert self._consumer is not None
        wanted: set[TopicPartition] = set()
        try:
            for topic in self.topics:
                partitions = self._consumer.partitions_for_topic(topic)
                wanted.update(TopicPartition(topic, p) for p in partitions or ())
        except KafkaError as exc:
            log.warning("broker unavailable, partition discovery deferred (%s)", exc)
            return
        # partitions never shrink in Kafka; keep ones a metadata hiccup did not report
        wanted |= self._assigned
        self._last_refresh = time.monotonic()
        new = wanted - self._assigned
        if not new:
            return
        self._consumer.assign(sorted(wanted))
        for tp in sorted(new):
            offset = self._offsets.get((tp.topic, tp.partition))
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, self.epoch.kafka(tp.topic, tp.partition, offset))
        self._assigned = wanted
        log.info("archiver assigned %d partitions (%d new)", len(wanted), len(new))

    # ------------------------------------------------------------ one micro-batch

    def _run_batch(self, stop_event: threading.Event | None) -> int:
        """Consume up to one micro-batch and commit it. Returns the number of records consumed.

        The batch closes ``max_batch_seconds`` after its first record (or at ``max_batch_records``);
        a poll that finds nothing returns 0 at once, so the caller can notice idleness.
        """
        assert self._consumer is not None and self._decoder is not None
        self._fence = fence = self.erasures.fence()  # every row of this batch is checked against it
        self._refresh_partitions(force=not self._assigned)
        started = time.monotonic()
        closes_at: float | None = None  # set by the first record
        if not self._assigned:  # topics do not exist yet
            time.sleep(min(0.5, self.max_batch_seconds))
            self._last_refresh = float("-inf")
            return 0
        rows: list[dict[str, Any]] = []
        advanced: Watermark = {}
        gaps: list[Gap] = []
        quality = QualityBatch()
        consumed = 0
        dead_before = sum(self._decoder.dead_lettered.values())
        while consumed < self.max_batch_records and not self._stopping(stop_event):
            if closes_at is None:
                timeout_ms = int(min(self.max_batch_seconds, 0.5) * 1000)
            else:
                timeout_ms = int((closes_at - time.monotonic()) * 1000)
                if timeout_ms <= 0:
                    break
            try:
                polled = self._consumer.poll(
                    timeout_ms=min(timeout_ms, 500), max_records=self.max_batch_records - consumed
                )
                self._backoff = 0.5
            except KafkaError as exc:
                self._sleep_backoff("poll", exc, stop_event)
                if closes_at is None:
                    return 0
                continue
            if not polled:
                if closes_at is None:
                    return 0  # nothing new: let run() check idleness and broker health
                if self._drain_until is not None:
                    break  # draining: commit what the broker held now, do not wait for more
                continue
            if closes_at is None:
                started = time.monotonic()
                closes_at = started + self.max_batch_seconds
            for tp, records in polled.items():
                key = (tp.topic, tp.partition)
                for record in records:
                    # the master holds logical offsets: base of this epoch + Kafka offset
                    offset = self.epoch.logical(tp.topic, tp.partition, record.offset)
                    if gap := self._check_position(key, offset, advanced):
                        gaps.append(gap)
                    row = self._decoder.row(record)  # None: dead-lettered (no record raises here)
                    if row is not None and self.erasures.skips(row):
                        self.stats.erased_skipped += 1  # its offset still advances: consumed, not landed
                    elif row is not None:
                        row["topic"] = record.topic
                        row["partition"] = record.partition
                        row["offset"] = offset
                        row["broker_time"] = record.timestamp if record.timestamp >= 0 else None
                        row["raw"] = record.value
                        rows.append(row)
                        quality.valid(row)
                    else:
                        quality.dead_lettered(record, offset, self._decoder.last_reason or "unknown")
                    advanced[key] = offset + 1
                consumed += len(records)
        if not consumed:
            return 0
        dead = sum(self._decoder.dead_lettered.values()) - dead_before
        if not self._confirm_dead_letters(stop_event):
            return consumed  # stopping during an outage: nothing committed, re-read on restart
        offsets = {**self._offsets, **advanced}
        self._index_rows(rows, advanced)
        assert self._quality is not None and self._index is not None
        quality.commit(self._quality, self._index, advanced)  # before the Delta commit, like the index
        commit_started = time.monotonic()
        version = self._commit(rows, offsets, gaps, extra={ERASURES_SEQ_KEY: fence})
        self._fenced = fence
        commit_s = time.monotonic() - commit_started
        self._offsets = offsets
        self.gaps += gaps
        self.stats.lost_offsets += sum(g.size for g in gaps)
        self._commit_to_kafka(advanced)
        elapsed = time.monotonic() - started
        self.stats.batches += 1
        self.stats.records += consumed
        self.stats.rows += len(rows)
        self.stats.dead_lettered += dead
        log.info(
            "batch %d → v%d: %d records (%d rows, %d dead-lettered) in %.2fs (Delta commit %.2fs) = %.0f events/s",
            self._batch_seq,
            version,
            consumed,
            len(rows),
            dead,
            elapsed,
            commit_s,
            consumed / elapsed if elapsed > 0 else 0.0,
        )
        return consumed

    def _index_rows(self, rows: list[dict[str, Any]], advanced: Watermark) -> None:
        """Every row into the event-id index *before* the Delta commit that lands it (a replay after a
        crash writes the same entries), so each master row is indexed once it can be in a batch view."""
        assert self._index is not None
        copies = ((r["tenant_id"], r["event_id"], r["topic"], r["partition"], r["offset"]) for r in rows)
        self._index.record(copies, covers=advanced, after=self._offsets)

    def _maybe_maintain(self) -> None:
        """Between micro-batches, when due: compaction and retention (see the module docstring)."""
        policy = self.maintenance
        if policy is None or self._table is None:
            return
        if time.monotonic() - self._last_maintenance < policy.interval_seconds:
            return
        try:
            result = maintain(self.data_dir, policy, master=self._table)
        except Exception as exc:  # noqa: BLE001 - maintenance must never stop archiving
            log.warning("maintenance failed, retrying in %.0fs: %s", policy.interval_seconds, exc)
            self._table = DeltaTable(str(self.path))
        else:
            for report in result.reports:
                log.info("maintenance: %s", describe(report))
            if result.skipped:
                log.info("maintenance: retention skipped (%s)", result.skipped)
        finally:
            self._last_maintenance = time.monotonic()
        # the maintenance commits moved the writer's snapshot forward over whatever else was committed;
        # an archiver batch among those is another archiver, which the next append would no longer see
        if (self._table.transaction_version(APP_ID) or 0) != self._batch_seq:
            raise ConcurrentArchiverError(
                f"another archiver committed to {self.path} (batch {self._table.transaction_version(APP_ID)}, "
                f"this one is at {self._batch_seq}); only one may run"
            )

    def _check_position(self, key: tuple[str, int], offset: int, advanced: Watermark) -> Gap | None:
        """Refuse a record below the next expected offset; return the lost range when it is above."""
        expected = advanced.get(key, self._offsets.get(key, 0))
        if offset < expected:
            raise OffsetRegressionError(
                f"{key[0]}:{key[1]} returned (logical) offset {offset} but {self.path} already covers "
                f"offsets < {expected}: the broker lost this partition's log without a new cluster id "
                f"(epoch {self.epoch.number}). Archive to a new data dir (or reset the master dataset) for "
                f"the new log."
            )
        if offset == expected:
            return None
        gap = Gap(key[0], key[1], expected, offset)
        log.error("archiver: %s (%d offsets never landed in %s)", gap, gap.size, self.path)
        return gap

    def _commit_fence(self) -> None:
        """Idle, with an erasure newer than the last commit's: a zero-row commit records it, so the purge's
        second pass learns that nothing this archiver lands from now on is of an erased customer."""
        fence = self._fence
        if fence <= self._fenced:
            return
        version = self._commit([], dict(self._offsets), [], extra={ERASURES_SEQ_KEY: fence})
        self._fenced = fence
        log.info("archiver: erasure list seq %d recorded in v%d", fence, version)

    def _confirm_dead_letters(self, stop_event: threading.Event | None) -> bool:
        assert self._dead_letters is not None
        while True:
            try:
                self._dead_letters.confirm(timeout_s=10.0)
                return True
            except KafkaError as exc:
                if self._stopping(stop_event):
                    log.warning("stopping with unconfirmed dead letters: batch not committed (%s)", exc)
                    return False
                self._sleep_backoff("dead-letter flush", exc, stop_event)

    def _commit(
        self, rows: list[dict[str, Any]], offsets: Watermark, gaps: list[Gap], *, extra: dict | None = None
    ) -> int:
        """One Delta commit of rows + offsets (+ the lost ranges they move past), as batch
        ``batch_seq + 1``. Returns the table version."""
        seq = self._batch_seq + 1
        table = rows_to_table(rows)
        extra = dict(extra or {})
        if gaps:
            extra[GAPS_KEY] = orjson.dumps([g.to_json() for g in gaps]).decode()
        for attempt in range(5):
            target: str | Path | DeltaTable = self._table if self._table is not None else self.path
            try:
                version = append_batch(
                    target, table, offsets, seq, writer_id=self.writer_id, extra_metadata=extra or None
                )
                break
            except (CommitFailedError, OSError) as exc:
                # Did it land anyway (e.g. a post-commit hook failed), or did someone else commit?
                self._table = DeltaTable(str(self.path))
                current = self._table.transaction_version(APP_ID) or 0
                if current >= seq:
                    info = batch_commit_info(self.path, seq)
                    if info.get(WRITER_KEY) == self.writer_id and info.get(BATCH_SEQ_KEY) == seq:
                        version = self._table.version()
                        log.warning("commit of batch %d reported %r but landed", seq, exc)
                        break
                    raise ConcurrentArchiverError(
                        f"another archiver committed batch {seq} to {self.path}; only one may run"
                    ) from exc
                log.warning("commit of batch %d failed (%s), retry %d", seq, exc, attempt + 1)
                time.sleep(0.2 * (attempt + 1))
        else:
            raise RuntimeError(f"could not commit batch {seq} to {self.path}")
        if self._table is None:
            self._table = DeltaTable(str(self.path))
        self._batch_seq = seq
        return version

    def _commit_to_kafka(self, advanced: Watermark) -> None:
        """Mirror the committed offsets to the consumer group, for lag tools only."""
        assert self._consumer is not None
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(
                self.epoch.kafka(t, p, o), f"delta batch {self._batch_seq}", -1
            )
            for (t, p), o in advanced.items()
        }
        try:
            self._consumer.commit(offsets, timeout_ms=int(self.kafka_commit_timeout_s * 1000))
        except Exception as exc:  # noqa: BLE001 - informational only
            log.warning("Kafka offset commit failed (informational, Delta holds the progress): %s", exc)


def lost_ranges(data_dir: str | Path) -> list[Gap]:
    """Every lost range the archiver recorded in the master dataset's commits, oldest first."""
    history = DeltaTable(str(master_path(data_dir))).history()
    return [Gap(**g) for commit in reversed(history) for g in orjson.loads(commit.get(GAPS_KEY) or "[]")]


def _archiver(
    settings: Settings | str,
    data_dir: str | Path | None,
    max_batch_records: int,
    max_batch_seconds: float,
) -> Archiver:
    if isinstance(settings, Settings):
        from lambdalytics.infra.runtime import find_bootstrap

        bootstrap = find_bootstrap(settings)
        data_dir = data_dir if data_dir is not None else settings.data_dir
        max_event_bytes = settings.max_event_bytes
        maintenance: MaintenancePolicy | None = MaintenancePolicy.from_settings(settings)
        block_size: int | None = settings.block_size
    else:
        bootstrap, max_event_bytes, maintenance = settings, None, None  # the environment's limit
        block_size = None
    if data_dir is None:
        raise ValueError("data_dir is required when settings is a bootstrap string")
    return Archiver(
        bootstrap,
        data_dir,
        block_size=Settings().block_size if block_size is None else block_size,
        max_batch_records=max_batch_records,
        max_batch_seconds=max_batch_seconds,
        max_event_bytes=max_event_bytes,
        maintenance=maintenance,
        erasures=ErasureList(settings, component="archiver") if isinstance(settings, Settings) else None,
    )


def run_archiver(
    settings: Settings | str,
    data_dir: str | Path | None = None,
    *,
    max_batch_records: int = 50_000,
    max_batch_seconds: float = 2.0,
    stop_event: threading.Event | None = None,
    idle_exit_seconds: float | None = None,
) -> ArchiverStats:
    """Run an :class:`Archiver` until stopped or idle. ``settings`` is a Settings or a bootstrap
    string; ``data_dir`` defaults to the settings' data dir."""
    archiver = _archiver(settings, data_dir, max_batch_records, max_batch_seconds)
    return archiver.run(stop_event=stop_event, idle_exit_seconds=idle_exit_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambdalytics.batch.archiver",
        description="Archive the event topics into the master dataset (<data_dir>/master), exactly once.",
    )
    parser.add_argument("--max-batch-records", type=int, default=50_000)
    parser.add_argument("--max-batch-seconds", type=float, default=2.0)
    parser.add_argument("--idle-exit-seconds", type=float, default=None, help="exit when caught up")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # kafka-python logs every failed reconnect at ERROR; the archiver says it once per retry
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    condense_client_errors()
    archiver = _archiver(Settings(), None, args.max_batch_records, args.max_batch_seconds)

    def _on_signal(signum: int, _frame: object) -> None:
        if not archiver.connected:  # still connecting: no batch to finish
            log.info("signal %d before connecting: exiting", signum)
            raise SystemExit(0)
        log.info("signal %d: finishing the current batch", signum)
        archiver.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    archiver.run(idle_exit_seconds=args.idle_exit_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
