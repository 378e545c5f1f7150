"""Feeds the embedded speed store from Kafka, in a background thread.

Partitions are ``assign()``ed (no consumer-group join: starts at once, and every serving worker keeps
its own full copy). It starts at the beginning of each partition, or — on a cluster with long
retention — at ``min(W[tp], first offset at from_time_ms)``, so the store covers every event at or above
W. Copies of events below W are recognised through the event-id index the store is configured with (an
index-less store retains, for its window, the ids of the records below W it consumed). Records that break the contract
are skipped and counted by reason; the archiver is the one that dead-letters them. No record stops the
thread or is retried at its offset: a valid record the store fails to apply is counted as
``internal_error``, logged with its position and opens a one-offset Gap (reads below it fail closed until
a batch covers it; the archiver lands it). The event size limit is the archiver's
(``Settings.max_event_bytes``), so both sides accept the same records.

Stream faults, none silent (docs/reliability.md, "Stream faults"):

- **Coverage.** The store is told every partition the topics' metadata names (``track``) and the
  position consumption begins at in each (``move_to``), so a partition not assigned or not reached is
  uncovered (a read at W fails closed) rather than empty.
- **New partitions** are rediscovered every ``partition_refresh_s`` (the client's metadata refresh) and
  assigned from their beginning, without a restart.
- **Lost positions.** ``auto_offset_reset="earliest"``: a position the broker no longer has resumes where
  data exists, never at the log end. Any forward jump — a fetched record beyond the next expected
  offset, or a position beyond it after a poll — is handed to the store as a lost range
  (:class:`~lambdalytics.schemas.views.Gap`: logged, counted, refused until a batch W passes it).
- **Caught up** means the position in every partition reached the high-water mark of the broker's last
  fetch response for it (``KafkaConsumer.highwater``), not "a short poll" and not ListOffsets (the
  embedded broker's ListOffsets(latest) is unreliable).

Restart epochs (``infra.epochs``): the store holds *logical* offsets, the master's. Given the data
folder's :class:`~lambdalytics.infra.epochs.EpochTable`, ``connect`` looks up the epoch of the broker's
cluster id (the archiver begins it; until then the consumer waits and says why) and feeds the store
``base + Kafka offset``, seeks to ``logical - base`` and reports high-water marks on the same line. After a
broker restart the served W stops below the new epoch's base, which only the master holds: the store,
consuming from the base, cannot cover it, and :meth:`SpeedConsumer.coverage_reason` says so (serving
fails closed with that reason, ``/readyz`` shows it) until a batch run over the master publishes a W at
or above the base. Without a table (tests, benchmarks) logical offsets are Kafka offsets.

The loop is a supervised worker (``infra.supervisor``): an unexpected exception is logged, counted and
the loop restarted with backoff, continuing from the store's positions. :meth:`SpeedConsumer.staleness`
says when it has made no progress for longer than its bound; serving then fails closed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from lambdalytics.infra.epochs import IDENTITY, Epoch, EpochTable, cluster_id
from lambdalytics.infra.erasures import ErasureList
from lambdalytics.infra.kafka_io import EventDecoder, client_bytes
from lambdalytics.infra.supervisor import Supervised
from lambdalytics.schemas.events import ContractViolation
from lambdalytics.schemas.topics import EVENT_TOPICS

from .embedded import EmbeddedSpeedStore
from .store import Watermark

log = logging.getLogger(__name__)

__all__ = ["Metadata", "SpeedConsumer", "topic_partitions"]


# A broker may hold a fetch this long before answering even when data is there (Tansu does): it bounds
# freshness. 100 ms roughly halved p90/p99 against kafka-python's 500 ms default (bench/freshness.py).
FETCH_MAX_WAIT_MS = 100
# kafka-python's poll() returns empty, not an error, while the broker is down: an idle consumer asks the
# broker something cheap this often, and only an answer (or records) counts as progress.
PROBE_INTERVAL_S = 1.0
POSITION_TIMEOUT_MS = 5_000  # a position lookup (ListOffsets earliest) longer than this: reconnect

Metadata = Callable[[KafkaConsumer], dict[str, set[int] | None]]
"""Where partitions are discovered: topic → its partitions (None: not known yet)."""


def topic_partitions(consumer: KafkaConsumer) -> dict[str, set[int] | None]:
    """The event topics' partitions from the client's cached metadata (refreshed every metadata max age)."""
    return {topic: consumer.partitions_for_topic(topic) for topic in EVENT_TOPICS}


class SpeedConsumer:
    def __init__(
        self,
        store: EmbeddedSpeedStore,
        bootstrap: str,
        *,
        watermark: Watermark | None = None,
        from_time_ms: int | None = None,
        max_poll_records: int = 2000,
        max_event_bytes: int | None = None,
        partition_refresh_s: float = 30.0,
        metadata: Metadata = topic_partitions,
        stale_after_s: float = 5.0,
        epochs: EpochTable | None = None,
        erasures: ErasureList | None = None,
    ):
        self.store = store
        self.erasures = erasures  # events of erased customers are consumed, never counted (infra.erasures)
        self.bootstrap = bootstrap
        self.watermark = watermark or {}
        self.from_time_ms = from_time_ms
        self.max_poll_records = max_poll_records
        self.partition_refresh_s = partition_refresh_s
        self.metadata = metadata
        self.decoder = EventDecoder(None, max_event_bytes=max_event_bytes)
        self.epochs = epochs
        self.epoch: Epoch | None = None if epochs is not None else IDENTITY  # None: not looked up yet
        self._epoch_wait: str | None = None  # why the epoch is not known yet
        self._assigned: set[TopicPartition] = set()
        self._expected: dict[TopicPartition, int] = {}  # next offset per partition, as the store has it
        self._refreshed = float("-inf")
        self.stale_after_s = stale_after_s
        self.worker = Supervised("speed-consumer", self._run)
        self._progress_at = time.monotonic()  # the last poll that brought records or a broker answer
        self._last_probe = float("-inf")
        store.track(None)  # fed by this consumer: nothing is covered until it has read the metadata

    def start(self) -> SpeedConsumer:
        # the bound runs from the start: a consumer that never connects goes stale like one that stopped
        self._progress_at = time.monotonic()
        self.worker.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.worker.stop(timeout_s)

    def staleness(self) -> str | None:
        """Why the store's answers may be frozen (no progress for longer than ``stale_after_s``), or
        None. Serving fails closed on it: a stopped consumer must not keep answering 200."""
        idle = time.monotonic() - self._progress_at
        if idle <= self.stale_after_s:
            return None
        status = self.worker.status()
        reason = (
            f"speed consumer made no progress for {idle:.1f}s (bound {self.stale_after_s:g}s), {status.state}"
        )
        if status.last_error:
            reason += f"; {status.restarts} restarts, last error {status.last_error}"
        return reason

    def coverage_reason(self, watermark: Watermark) -> str | None:
        """Why this consumer's store cannot cover ``watermark`` because of a restart epoch, or None:
        the epoch of the broker is not recorded yet, or W stops below the epoch's base (the offsets
        in between are the previous epochs', which only the master and a batch run over it hold)."""
        if self.epoch is None:
            return self._epoch_wait or "the speed consumer has not looked up the broker's restart epoch yet"
        if below := self.epoch.below_base(watermark):
            tp, base = next(iter(below.items()))
            return (
                f"the broker restarted: epoch {self.epoch.number} begins {tp[0]}:{tp[1]} at offset {base}, "
                f"the batch version covers only up to W={watermark.get(tp, 0)} there ({len(below)} partitions "
                "behind); waiting for a batch run over the previous epochs"
            )
        return None

    def _enter_epoch(self) -> Epoch:
        """The epoch of the broker's cluster id in the table (the archiver begins it); a KafkaError while
        it is not recorded yet, so the loop retries."""
        if self.epochs is None:
            return IDENTITY
        cluster = cluster_id(self.bootstrap)
        epoch = self.epochs.for_cluster(cluster)
        if epoch is None:
            self._epoch_wait = (
                f"Kafka cluster {cluster} has no restart epoch in {self.epochs.path} yet (the archiver "
                "records it when it connects)"
            )
            raise KafkaError(self._epoch_wait)
        if self.epoch is not None and self.epoch.base != epoch.base:
            raise RuntimeError(
                f"the broker changed from epoch {self.epoch.number} to {epoch.number} under a running "
                "consumer: its store holds the old epoch's positions; restart the API"
            )
        self._epoch_wait = None
        return epoch

    def _progressed(self, consumer: KafkaConsumer, records: int) -> None:
        """Records prove the broker answered; an empty poll does not (kafka-python hides an outage), so
        while idle a probe with a deadline does, at most every PROBE_INTERVAL_S (a KafkaError from it
        reconnects)."""
        if not records:
            if time.monotonic() - self._last_probe < PROBE_INTERVAL_S:
                return
            self._last_probe = time.monotonic()
            if assigned := sorted(consumer.assignment()):
                consumer.beginning_offsets(assigned[:1], timeout_ms=2000)
        self._progress_at = time.monotonic()

    def connect(self) -> KafkaConsumer:
        """A client assigned every partition of the event topics, each at its starting position."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a lost position resumes where data exists; the jump is reported
            metadata_max_age_ms=max(int(self.partition_refresh_s * 1000), 1),
            max_poll_records=self.max_poll_records,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            client_id="lambdalytics-speed",
            max_partition_fetch_bytes=client_bytes(self.decoder.max_event_bytes),
        )
        self._assigned, self._expected = set(), {}
        try:
            self.epoch = self._enter_epoch()
            self._refresh(consumer)
        except Exception:
            consumer.close()
            raise
        return consumer

    def _refresh(self, consumer: KafkaConsumer) -> None:
        """Assign partitions the metadata names that are not assigned yet, from their start."""
        self._refreshed = time.monotonic()
        found = self.metadata(consumer)
        if not self._assigned and not all(found.get(t) for t in EVENT_TOPICS):
            # no metadata yet: assigning without it would never read this topic
            missing = [t for t in EVENT_TOPICS if not found.get(t)]
            raise KafkaError(f"no partitions known for {', '.join(missing)}")
        known = {TopicPartition(t, p) for t, parts in found.items() for p in parts or ()}
        wanted = self._assigned | known  # partitions never shrink; keep ones a metadata hiccup missed
        self.store.track((tp.topic, tp.partition) for tp in wanted)
        new = sorted(wanted - self._assigned)
        if not new:
            return
        consumer.assign(sorted(wanted))
        self._seek(consumer, new)
        for tp in new:
            position = consumer.position(tp, timeout_ms=POSITION_TIMEOUT_MS)
            if position is None:
                raise KafkaError(f"no position for {tp.topic}:{tp.partition} in time")
            position = self._logical(tp, position)
            self._expected[tp] = position
            self.store.move_to(tp.topic, tp.partition, position)
        self._assigned = wanted
        if len(new) < len(wanted):
            log.info("speed consumer: %d new partitions assigned from their beginning", len(new))

    def _logical(self, tp: TopicPartition, kafka_offset: int) -> int:
        assert self.epoch is not None
        return self.epoch.logical(tp.topic, tp.partition, kafka_offset)

    def _seek(self, consumer: KafkaConsumer, new: list[TopicPartition]) -> None:
        assert self.epoch is not None
        kafka = self.epoch.kafka
        consumer.seek_to_beginning(*new)
        if self.from_time_ms is not None:
            found = consumer.offsets_for_times({tp: self.from_time_ms for tp in new})
            for tp in new:
                by_time = found.get(tp)
                start = min(
                    self.watermark.get((tp.topic, tp.partition), 0),
                    self._logical(tp, by_time.offset) if by_time else 0,
                )
                consumer.seek(tp, kafka(tp.topic, tp.partition, start))
        positions = self.store.status().positions
        for tp in new:
            if (tp.topic, tp.partition) in positions:  # reconnect: continue where we were
                consumer.seek(tp, kafka(tp.topic, tp.partition, positions[(tp.topic, tp.partition)]))

    def poll_once(self, consumer: KafkaConsumer, timeout_ms: int = 200) -> int:
        """One poll: apply its records, report jumps and the high-water marks. Returns records applied."""
        if time.monotonic() - self._refreshed >= self.partition_refresh_s:
            self._refresh(consumer)
        started = time.time()
        batches = consumer.poll(timeout_ms=timeout_ms)
        n = 0
        for tp, records in batches.items():
            run: list = []  # consecutive records, applied together (one hold of the store's lock)
            for record in records:
                offset = self._logical(tp, record.offset)
                if offset != self._expected.get(tp):  # a hole in what the broker returned
                    self._apply(tp, run)
                    run = []
                    self.store.move_to(tp.topic, tp.partition, offset)
                run.append((record, offset))
                self._expected[tp] = offset + 1
                n += 1
            self._apply(tp, run)
        marks = {}
        for tp in self._assigned:
            position = consumer.position(tp, timeout_ms=POSITION_TIMEOUT_MS)
            if position is not None:
                position = self._logical(tp, position)
            if position is not None and position != self._expected.get(tp):  # reset past data, a seek
                self.store.move_to(tp.topic, tp.partition, position)
                self._expected[tp] = position
            if (high_water := consumer.highwater(tp)) is not None:
                marks[(tp.topic, tp.partition)] = self._logical(tp, high_water)
        self.store.mark_caught_up(started, high_water=marks)
        return n

    def _run(self, stop: threading.Event) -> None:
        """The loop the supervisor runs, and runs again after an unexpected exception: the client is
        closed on the way out, and the next ``connect`` continues from the store's positions."""
        consumer = None
        try:
            while not stop.is_set():
                try:
                    if consumer is None:
                        consumer = self.connect()
                    self._progressed(consumer, self.poll_once(consumer))
                except KafkaError as exc:
                    log.warning(
                        "speed consumer: %s, retrying in 1s",
                        self._epoch_wait or f"broker unavailable ({exc})",
                    )
                    if consumer is not None:  # start over: connect() seeks to the store's positions
                        with contextlib.suppress(Exception):
                            consumer.close()
                        consumer = None
                    stop.wait(1)
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):
                    consumer.close()

    def _apply(self, tp: TopicPartition, run: list) -> None:
        """Ingest consecutive ``(record, logical offset)`` pairs of one partition, or account for each;
        whatever they hold, never raise.

        A record that breaks the contract is skipped (the archiver dead-letters it, so neither side
        counts it). A valid record the store fails to apply is *not* skipped silently: the archiver lands
        it, so it opens a one-offset :class:`~lambdalytics.schemas.views.Gap` (``store.fail``) — reads
        below its end fail closed until a batch W passes it — and is counted as ``internal_error``.
        """
        if not run:
            return
        items = []
        for record, offset in run:
            row = self.decoder.row(record)
            if row is not None and self.erasures is not None and self.erasures.skips(row):
                row = None
            items.append((row, offset, record.timestamp))

        def failed(i: int, exc: Exception) -> None:
            record, offset = run[i]
            log.exception("speed store failed on %s:%d@%d", record.topic, record.partition, record.offset)
            reason = f"ingest failed: {type(exc).__name__}"
            self.decoder.reject(record, ContractViolation("internal_error", reason), decoded=True)
            self.store.fail(record.topic, record.partition, offset, reason)

        self.store.ingest_many(tp.topic, tp.partition, items, on_error=failed)
