"""Feeds the embedded speed store from Kafka, in a background thread.

Partitions are ``assign()``ed (no consumer-group join: starts at once, and every serving worker keeps
its own full copy). It starts at the beginning of each partition, or — on a cluster with long
retention — at ``min(W[tp], first offset within the dedup window)``, so the store covers every event
at or above W and has seen the recent ones below it for deduplication. Records that break the contract
are skipped and counted by reason; the archiver is the one that dead-letters them. No record stops the
thread or is retried at its offset: a record the store fails to apply is skipped as ``internal_error``
(logged with its position), and the event size limit is the archiver's (``Settings.max_event_bytes``),
so both sides accept the same records.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from lambdalytics.infra.kafka_io import EventDecoder, client_bytes
from lambdalytics.schemas.events import ContractViolation
from lambdalytics.schemas.topics import EVENT_TOPICS

from .embedded import EmbeddedSpeedStore
from .store import Watermark

log = logging.getLogger(__name__)

__all__ = ["SpeedConsumer"]


# A broker may hold a fetch this long before answering even when data is there (Tansu does): it bounds
# freshness. 100 ms roughly halved p90/p99 against kafka-python's 500 ms default (bench/freshness.py).
FETCH_MAX_WAIT_MS = 100


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
    ):
        self.store = store
        self.bootstrap = bootstrap
        self.watermark = watermark or {}
        self.from_time_ms = from_time_ms
        self.max_poll_records = max_poll_records
        self.decoder = EventDecoder(None, max_event_bytes=max_event_bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speed-consumer", daemon=True)

    def start(self) -> SpeedConsumer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _assign(self, consumer: KafkaConsumer) -> None:
        partitions = []
        for topic in EVENT_TOPICS:
            found = consumer.partitions_for_topic(topic)
            if not found:  # no metadata yet: assigning without it would never read this topic
                raise KafkaError(f"no partitions known for {topic}")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        if self.from_time_ms is not None:
            found = consumer.offsets_for_times({tp: self.from_time_ms for tp in partitions})
            for tp in partitions:
                by_time = found.get(tp)
                start = min(self.watermark.get((tp.topic, tp.partition), 0), by_time.offset if by_time else 0)
                consumer.seek(tp, start)
        for (topic, partition), position in self.store.status().positions.items():
            consumer.seek(TopicPartition(topic, partition), position)  # reconnect: continue where we were

    def _run(self) -> None:
        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = KafkaConsumer(
                        bootstrap_servers=self.bootstrap,
                        enable_auto_commit=False,
                        max_poll_records=self.max_poll_records,
                        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                        client_id="lambdalytics-speed",
                        max_partition_fetch_bytes=client_bytes(self.decoder.max_event_bytes),
                    )
                    self._assign(consumer)
                started = time.time()
                batches = consumer.poll(timeout_ms=200)
                n = 0
                for records in batches.values():
                    for record in records:
                        self._apply(record)
                        n += 1
                if n < self.max_poll_records:
                    self.store.mark_caught_up(started)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure
                if isinstance(exc, KafkaError):
                    log.warning("speed consumer: broker unavailable (%s), retrying in 1s", exc)
                else:
                    log.exception("speed consumer: unexpected failure, reconnecting in 1s")
                if consumer is not None:  # start over: _assign seeks to the store's positions
                    with contextlib.suppress(Exception):
                        consumer.close()
                    consumer = None
                time.sleep(1)
        if consumer is not None:
            consumer.close()

    def _apply(self, record) -> None:
        """Ingest one record or skip it with a reason; whatever it holds, never raise."""
        row = self.decoder.row(record)
        if row is not None:
            try:
                self.store.ingest(row, record.topic, record.partition, record.offset, record.timestamp)
                return
            except Exception as exc:  # noqa: BLE001 - one record must not stop the speed side
                log.exception("speed store failed on %s:%d@%d", record.topic, record.partition, record.offset)
                self.decoder.reject(
                    record,
                    ContractViolation("internal_error", f"ingest failed: {type(exc).__name__}"),
                    decoded=True,
                )
        self.store.skip(record.topic, record.partition, record.offset)
