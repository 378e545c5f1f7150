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
``dlq.source.epoch``   the restart epoch of that position (``infra.epochs``), when the decoder knows it:
                       the offset is the record's own Kafka offset in that epoch's log, not a logical one
=====================  ==========================================================

A record that cannot be forwarded verbatim (larger than the dead-letter producer's request limit, or
refused by the broker for any non-retriable reason) is dead-lettered **by reference**: the same
headers plus ``dlq.reference`` = ``sha256``, ``dlq.original.size`` (bytes) and ``dlq.original.sha256``
(hex); the value is the first :data:`REFERENCE_PREFIX_BYTES` bytes of the original, the key its first
:data:`REFERENCE_PREFIX_BYTES` bytes. The original stays in its source topic at the position the
headers name.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError
from kafka.producer.future import FutureRecordMetadata

from lambdalytics.schemas.events import (
    FAMILY_BY_EVENT_TYPE,
    ContractViolation,
    Event,
    decode_event,
    to_row,
    validate_event,
)
from lambdalytics.schemas.topics import ALL_TOPICS, DEADLETTER_TOPIC, FAMILY_BY_TOPIC, TOPIC_BY_FAMILY

from .settings import get_settings

log = logging.getLogger(__name__)

__all__ = [
    "REFERENCE_PREFIX_BYTES",
    "DeadLetter",
    "EventDecoder",
    "EventProducer",
    "client_bytes",
    "ensure_topics",
    "event_limit",
    "read_dead_letter",
    "refused_for_good",
]

REFERENCE_PREFIX_BYTES = 1024
"""How much of the original value (and key) a dead letter by reference keeps."""
_MAX_HEADER_TEXT = 2000  # characters of dlq.message kept: a dead letter's headers stay small


def event_limit(max_event_bytes: int | None) -> int:
    """The one event size limit: ``max_event_bytes`` if given, else ``LAMBDALYTICS_MAX_EVENT_BYTES``."""
    return get_settings().max_event_bytes if max_event_bytes is None else max_event_bytes


def client_bytes(max_event_bytes: int) -> int:
    """Kafka client request/fetch size that lets every event up to the limit through, with headers
    (and oversized records far enough to be read and dead-lettered)."""
    return max(max_event_bytes * 2, 1_048_576)


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


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


def _headers(
    violation: ContractViolation, topic: str | None, partition: int, offset: int, timestamp: int
) -> list[tuple[str, bytes]]:
    return [
        ("dlq.reason", _utf8(violation.reason)),
        ("dlq.message", _utf8(violation.message[:_MAX_HEADER_TEXT])),
        ("dlq.errors", orjson.dumps(violation.errors, default=str)),
        ("dlq.source.topic", _utf8(topic or "")),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(offset).encode()),
        ("dlq.source.timestamp", str(timestamp).encode()),
    ]


def _reference(value: bytes, key: bytes | None) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    """Value, key and extra headers of a dead letter by reference to ``value`` (see the module doc)."""
    return (
        value[:REFERENCE_PREFIX_BYTES],
        None if key is None else key[:REFERENCE_PREFIX_BYTES],
        [
            ("dlq.reference", b"sha256"),
            ("dlq.original.size", str(len(value)).encode()),
            ("dlq.original.sha256", hashlib.sha256(value).hexdigest().encode()),
        ],
    )


def refused_for_good(exc: BaseException) -> bool:
    """True when the broker or client refuses this record for good (too large, invalid, ...), so
    sending it again cannot help; False for outages and timeouts, which a retry can outlive."""
    return isinstance(exc, KafkaError) and not exc.retriable


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
        max_event_bytes: int | None = None,
        **kafka_config: Any,
    ):
        max_event_bytes = event_limit(max_event_bytes)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=linger_ms,
            retries=10,
            max_in_flight_requests_per_connection=1,  # keep per-partition order across retries
            max_request_size=client_bytes(max_event_bytes),
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
        epoch: int | None = None,
    ) -> FutureRecordMetadata:
        """Send ``value`` to the dead-letter topic with the reason — verbatim, or by reference when it
        is larger than this producer's request limit."""
        self.summary.rejected[(topic or "?", violation.reason)] += 1
        headers = _headers(violation, topic, partition, offset, timestamp)
        if epoch is not None:
            headers.append(("dlq.source.epoch", str(epoch).encode()))
        return self._send_dead_letter(value, key, headers)

    def _send_dead_letter(
        self, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]], *, by_reference: bool = False
    ) -> FutureRecordMetadata:
        if not by_reference:
            try:
                return self._producer.send(DEADLETTER_TOPIC, key=key, value=value, headers=headers)
            except MessageSizeTooLargeError as exc:
                log.warning(
                    "dead letter of %d bytes is too large to forward (%s): sending a reference",
                    len(value),
                    exc,
                )
        prefix, short_key, extra = _reference(value, key)
        return self._producer.send(DEADLETTER_TOPIC, key=short_key, value=prefix, headers=headers + extra)

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
    ``dead_letters=None`` and just count what they skip. No record makes it raise. ``epoch``, when
    set, is the restart epoch of the records decoded; dead letters carry it beside their Kafka position.
    """

    def __init__(self, dead_letters: EventProducer | None, *, max_event_bytes: int | None = None):
        self.epoch: int | None = None
        self._dead_letters = dead_letters
        self.max_event_bytes = event_limit(max_event_bytes)
        self.decoded = 0
        self.dead_lettered: Counter[str] = Counter()
        self.last_reason: str | None = None  # of the latest rejection

    def decode(self, record: Any) -> Event | None:
        """``record`` is a kafka-python ConsumerRecord. None means it went to the dead-letter topic."""
        try:
            event = decode_event(record.topic, record.value, record.key, max_bytes=self.max_event_bytes)
        except ContractViolation as violation:
            self.reject(record, violation)
            return None
        self.decoded += 1
        return event

    def row(self, record: Any) -> dict[str, Any] | None:
        """The record as a :data:`~lambdalytics.schemas.events.ROW_COLUMNS` dict, or None (rejected)."""
        event = self.decode(record)
        if event is None:
            return None
        try:
            return to_row(event)
        except Exception as exc:  # noqa: BLE001 - a valid event that cannot be a row is a bug, not a crash
            log.exception("a valid event could not become a row")
            self.decoded -= 1
            self.reject(
                record, ContractViolation("internal_error", f"to_row failed with {type(exc).__name__}")
            )
            return None

    def reject(self, record: Any, violation: ContractViolation, *, decoded: bool = False) -> None:
        """Count ``record`` under the violation's reason and dead-letter it (if this decoder does);
        ``decoded``: it had been counted as decoded, and failed after."""
        self.decoded -= decoded
        self.dead_lettered[violation.reason] += 1
        self.last_reason = violation.reason  # read by the archiver's quality batch
        if self._dead_letters is None:
            return
        self._dead_letters.dead_letter(
            record.value or b"",
            violation,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            key=record.key,
            epoch=self.epoch,
        )


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
    value: bytes  # the original, or its first REFERENCE_PREFIX_BYTES when by reference
    by_reference: bool = False
    original_size: int | None = None  # of the original value (known when by reference)
    original_sha256: str | None = None
    source_epoch: int | None = None  # the restart epoch of the source position, when recorded


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
        by_reference="dlq.reference" in h,
        original_size=int(h["dlq.original.size"]) if "dlq.original.size" in h else None,
        original_sha256=h["dlq.original.sha256"].decode() if "dlq.original.sha256" in h else None,
        source_epoch=int(h["dlq.source.epoch"]) if "dlq.source.epoch" in h else None,
    )
