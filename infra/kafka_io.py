"""Kafka I/O shared by every layer: topic setup, the validating producer, decoding with dead-lettering.

Dead letters keep the original bytes as the record value and the original key, and carry the context
in headers (the convention of Kafka Connect's DLQ), so a fixed consumer can replay them verbatim:

=====================  ==========================================================
``dlq.reason``         machine-readable code (see :class:`ContractViolation`)
``dlq.message``        human-readable explanation
``dlq.errors``         JSON list of ``{loc, type, msg}`` per failing field
``dlq.source.topic``   topic the record was read from (or meant for)
``dlq.source.partition`` / ``dlq.source.offset``  its position, ``-1`` if it never reached a topic
``dlq.source.timestamp``  broker timestamp of the source record (ms), ``-1`` if none
=====================  ==========================================================
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.producer.future import FutureRecordMetadata

from lambdalytics.schemas.events import (
    FAMILY_BY_EVENT_TYPE,
    MAX_EVENT_BYTES,
    ContractViolation,
    Event,
    decode_event,
    validate_event,
)
from lambdalytics.schemas.topics import ALL_TOPICS, DEADLETTER_TOPIC, FAMILY_BY_TOPIC, TOPIC_BY_FAMILY

log = logging.getLogger(__name__)

__all__ = ["DeadLetter", "EventDecoder", "EventProducer", "ensure_topics", "read_dead_letter"]


def ensure_topics(
    bootstrap: str, partitions: int = 6, topics: Iterable[str] = ALL_TOPICS, timeout_s: float = 30.0
) -> dict[str, int]:
    """Create the topics that are missing; existing ones are used as they are.

    Returns each topic's partition count (an existing topic may have another count than asked).
    """
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="lambdalytics-admin", request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, partitions, 1)])
                log.info("created topic %s with %d partitions", topic, partitions)
            except TopicAlreadyExistsError:  # created concurrently by another process
                pass
    finally:
        admin.close()
    return partition_counts(bootstrap, topics, timeout_s)


def partition_counts(
    bootstrap: str, topics: Iterable[str] = ALL_TOPICS, timeout_s: float = 30.0
) -> dict[str, int]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="lambdalytics-meta")
    try:
        counts: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        for topic in topics:
            while (parts := consumer.partitions_for_topic(topic)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no metadata for topic {topic} after {timeout_s}s")
                time.sleep(0.1)
            counts[topic] = len(parts)
        return counts
    finally:
        consumer.close()


def _topic_of(obj: Any) -> str | None:
    """The topic an invalid event was meant for, when its event_type says so."""
    family = FAMILY_BY_EVENT_TYPE.get(obj.get("event_type")) if isinstance(obj, dict) else None
    return TOPIC_BY_FAMILY[family] if family else None


def _headers(
    violation: ContractViolation, topic: str | None, partition: int, offset: int, timestamp: int
) -> list[tuple[str, bytes]]:
    return [
        ("dlq.reason", violation.reason.encode()),
        ("dlq.message", violation.message.encode()),
        ("dlq.errors", orjson.dumps(violation.errors)),
        ("dlq.source.topic", (topic or "").encode()),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(offset).encode()),
        ("dlq.source.timestamp", str(timestamp).encode()),
    ]


@dataclass
class SendSummary:
    """What a producer did, per topic: events sent, and rejections per reason."""

    sent: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic or "?", reason)

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


class EventProducer:
    """Validates every event against the contracts before it reaches a topic.

    Valid events go to their family's topic with key ``tenant_id:customer_id`` (kafka-python's
    default partitioner is murmur2, like Java clients, so Pinot and Kafka Streams agree on
    partitions); invalid ones go to ``events.deadletter`` with the reason — nothing is dropped.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        linger_ms: int = 5,
        max_event_bytes: int = MAX_EVENT_BYTES,
        **kafka_config: Any,
    ):
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=linger_ms,
            retries=10,
            max_in_flight_requests_per_connection=1,  # keep per-partition order across retries
            max_request_size=max(max_event_bytes * 2, 1_048_576),
            **kafka_config,
        )
        self.max_event_bytes = max_event_bytes
        self.summary = SendSummary()

    def send(self, event: Event) -> FutureRecordMetadata:
        """Send an already validated event."""
        self.summary.sent[event.topic] += 1
        return self._producer.send(event.topic, key=event.key, value=event.to_json())

    def send_obj(self, obj: Any, *, intended_topic: str | None = None) -> FutureRecordMetadata | None:
        """Validate a decoded JSON value and send it; dead-letter it with the reason if invalid."""
        try:
            event = validate_event(obj, FAMILY_BY_TOPIC.get(intended_topic) if intended_topic else None)
        except ContractViolation as violation:
            raw = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str)
            return self.dead_letter(raw, violation, topic=intended_topic or _topic_of(obj))
        if len(payload := event.to_json()) > self.max_event_bytes:
            return self.dead_letter(
                payload,
                ContractViolation(
                    "payload_too_large", f"{len(payload)} bytes > limit of {self.max_event_bytes}"
                ),
                topic=event.topic,
            )
        self.summary.sent[event.topic] += 1
        return self._producer.send(event.topic, key=event.key, value=payload)

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> FutureRecordMetadata:
        """Send bytes unvalidated (tests and fault injection: what a foreign producer might write)."""
        return self._producer.send(topic, key=key, value=value)

    def dead_letter(
        self,
        value: bytes,
        violation: ContractViolation,
        *,
        topic: str | None = None,
        partition: int = -1,
        offset: int = -1,
        timestamp: int = -1,
        key: bytes | None = None,
    ) -> FutureRecordMetadata:
        self.summary.rejected[(topic or "?", violation.reason)] += 1
        return self._producer.send(
            DEADLETTER_TOPIC,
            key=key,
            value=value,
            headers=_headers(violation, topic, partition, offset, timestamp),
        )

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.close(timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        self.close()


class EventDecoder:
    """Turns consumed records into events; dead-letters the rest with their source position.

    Shared by the archiver and the speed consumers, so both sides accept exactly the same events.
    Only one consumer of a record should dead-letter it (the archiver); others pass
    ``dead_letters=None`` and just count what they skip.
    """

    def __init__(self, dead_letters: EventProducer | None, *, max_event_bytes: int = MAX_EVENT_BYTES):
        self._dead_letters = dead_letters
        self.max_event_bytes = max_event_bytes
        self.decoded = 0
        self.dead_lettered: Counter[str] = Counter()

    def decode(self, record: Any) -> Event | None:
        """``record`` is a kafka-python ConsumerRecord. None means it went to the dead-letter topic."""
        try:
            event = decode_event(record.topic, record.value, record.key, max_bytes=self.max_event_bytes)
        except ContractViolation as violation:
            self.dead_lettered[violation.reason] += 1
            if self._dead_letters is None:
                return None
            self._dead_letters.dead_letter(
                record.value or b"",
                violation,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                timestamp=record.timestamp,
                key=record.key,
            )
            return None
        self.decoded += 1
        return event


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    message: str
    errors: list[dict[str, Any]]
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp: int
    key: bytes | None
    value: bytes


def read_dead_letter(record: Any) -> DeadLetter:
    """A consumed ``events.deadletter`` record → its reason, source position and original bytes."""
    h = {k: v for k, v in (record.headers or [])}
    return DeadLetter(
        reason=h["dlq.reason"].decode(),
        message=h["dlq.message"].decode(),
        errors=orjson.loads(h["dlq.errors"]),
        source_topic=h["dlq.source.topic"].decode(),
        source_partition=int(h["dlq.source.partition"]),
        source_offset=int(h["dlq.source.offset"]),
        source_timestamp=int(h["dlq.source.timestamp"]),
        key=record.key,
        value=record.value,
    )
