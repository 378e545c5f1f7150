"""The fixed Kafka topics and which event family each one carries."""

from __future__ import annotations

from enum import StrEnum


class Family(StrEnum):
    behavioral = "behavioral"
    transaction = "transaction"
    support = "support"


TOPIC_BY_FAMILY: dict[Family, str] = {
    Family.behavioral: "events.behavioral",
    Family.transaction: "events.transaction",
    Family.support: "events.support",
}
FAMILY_BY_TOPIC: dict[str, Family] = {topic: family for family, topic in TOPIC_BY_FAMILY.items()}
EVENT_TOPICS: tuple[str, ...] = tuple(TOPIC_BY_FAMILY.values())
DEADLETTER_TOPIC = "events.deadletter"
ALL_TOPICS: tuple[str, ...] = (*EVENT_TOPICS, DEADLETTER_TOPIC)


def record_key(tenant_id: str, customer_id: str) -> bytes:
    """Kafka key ``tenant_id:customer_id``: keeps one customer's events in one partition, in order."""
    return f"{tenant_id}:{customer_id}".encode()
