"""The malformed-input corpus: one place, every kind the issue names, with the reason each must get.

Each case is the raw bytes a foreign producer might write to a topic, and (where the HTTP collector can
receive it at all) the reason ``POST /v1/events`` must answer with. The HTTP route reads the tenant from
the API key, so "wrong tenant" over HTTP is another tenant's id in the body (``tenant_mismatch``), and
over Kafka a record whose key names another tenant than its value (``key_mismatch``). Invalid UTF-8 is
``invalid_utf8`` on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.topics import record_key

TX, BEHAVIORAL, SUPPORT = "events.transaction", "events.behavioral", "events.support"
LIMIT = Settings().max_event_bytes
HUGE = LIMIT + 200_000  # over the limit, under the producer's request size limit (2 × the limit)


@dataclass(frozen=True)
class BadInput:
    name: str
    kind: str  # the category
    topic: str
    value: bytes | None  # None = a tombstone (Kafka only)
    kafka_reason: str
    http_reason: str | None  # None: not a request body the HTTP collector can be sent
    key: bytes | None = None  # None: the key of the valid neighbours (tenant:customer)


def cases(tenant: str, other_tenant: str, customer: str, now_ms: int) -> list[BadInput]:
    """The corpus for ``tenant``'s ``customer`` (keys and neighbours share it, so one partition)."""
    paid = {
        "event_id": "bad-paid",
        "tenant_id": tenant,
        "customer_id": customer,
        "event_type": "order_paid",
        "event_time": now_ms,
        "order_id": "bad-order",
        "amount": 12.5,
        "currency": "EUR",
    }
    view = {
        "event_id": "bad-view",
        "tenant_id": tenant,
        "customer_id": customer,
        "event_type": "page_view",
        "event_time": now_ms,
    }
    csat = {
        "event_id": "bad-csat",
        "tenant_id": tenant,
        "customer_id": customer,
        "event_type": "csat_submitted",
        "event_time": now_ms,
        "ticket_id": "bad-ticket",
        "score": 4,
    }
    drop = lambda obj, name: {k: v for k, v in obj.items() if k != name}  # noqa: E731
    good, cv = orjson.dumps(paid), "contract_violation"
    out: list[BadInput] = []

    def case(kind, name, topic, value, reason, http: str | None = "same", key: bytes | None = None):
        out.append(BadInput(name, kind, topic, value, reason, reason if http == "same" else http, key))

    kind = "bad JSON"
    case(kind, "truncated object", TX, good[:40], "invalid_json")
    case(kind, "trailing garbage", TX, good + b"}}", "invalid_json")
    case(kind, "single quotes", TX, good.replace(b'"', b"'"), "invalid_json")
    case(kind, "NaN literal", TX, good.replace(b"12.5", b"NaN"), "invalid_json")
    case(kind, "number overflow", TX, good.replace(b"12.5", b"1e400"), "invalid_json")
    case(kind, "empty value", TX, b"", "invalid_json")
    case(kind, "tombstone (null value)", TX, None, "invalid_json", http=None)
    case(kind, "byte order mark", TX, b"\xef\xbb\xbf" + good, "invalid_json")
    case(kind, "JSON array", TX, b"[1, 2, 3]", "not_an_object")
    case(kind, "JSON string", TX, b'"order_paid"', "not_an_object")

    kind = "wrong types"
    case(kind, "event_time is a boolean", TX, orjson.dumps({**paid, "event_time": True}), cv)
    case(kind, "amount is a string", TX, orjson.dumps({**paid, "amount": "12.50"}), cv)
    case(kind, "score is a float", SUPPORT, orjson.dumps({**csat, "score": 4.5}), cv)
    case(kind, "customer_id is a number", BEHAVIORAL, orjson.dumps({**view, "customer_id": 7}), cv)
    case(kind, "properties is a list", BEHAVIORAL, orjson.dumps({**view, "properties": [1]}), cv)
    case(kind, "naive timestamp", TX, orjson.dumps({**paid, "event_time": "2026-01-01T10:00:00"}), cv)
    case(kind, "amount has 7 decimals", TX, orjson.dumps({**paid, "amount": 1.1234567}), cv)
    case(kind, "negative amount", TX, orjson.dumps({**paid, "amount": -3}), cv)
    case(kind, "unknown currency", TX, orjson.dumps({**paid, "currency": "EURO"}), cv)
    case(kind, "unknown event_type", TX, orjson.dumps({**paid, "event_type": "x"}), "unknown_event_type")
    case(kind, "unknown field", BEHAVIORAL, orjson.dumps({**view, "colour": "red"}), cv)

    kind = "missing fields"
    case(kind, "no event_id", TX, orjson.dumps(drop(paid, "event_id")), cv)
    case(kind, "no customer_id", BEHAVIORAL, orjson.dumps(drop(view, "customer_id")), cv)
    case(kind, "no event_time", BEHAVIORAL, orjson.dumps(drop(view, "event_time")), cv)
    case(kind, "no event_type", TX, orjson.dumps(drop(paid, "event_type")), "unknown_event_type")
    case(kind, "order_paid without amount", TX, orjson.dumps(drop(paid, "amount")), cv)
    case(kind, "order without order_id", TX, orjson.dumps(drop(paid, "order_id")), cv)
    case(kind, "csat without score", SUPPORT, orjson.dumps(drop(csat, "score")), cv)
    case(kind, "empty object", TX, b"{}", "unknown_event_type")

    kind = "huge payload"
    blob = orjson.dumps({**view, "properties": {"blob": "x" * HUGE}})
    case(kind, f"value of {len(blob):,} bytes (limit {LIMIT:,})", BEHAVIORAL, blob, "payload_too_large")
    long_id = orjson.dumps({**view, "customer_id": "c" * 10_000})
    case(
        kind,
        "customer_id of 10,000 characters",
        BEHAVIORAL,
        long_id,
        cv,
        key=record_key(tenant, "c" * 10_000),
    )
    case(kind, "100,000 nested arrays", BEHAVIORAL, b"[" * 100_000 + b"]" * 100_000, "invalid_json")

    kind = "wrong tenant"
    case(
        kind,
        "key names another tenant",
        TX,
        good,
        "key_mismatch",
        http=None,
        key=record_key(other_tenant, customer),
    )
    case(
        kind,
        "another tenant's event",
        TX,
        orjson.dumps({**paid, "tenant_id": other_tenant}),
        "key_mismatch",
        http="tenant_mismatch",
    )
    case(
        kind,
        "malformed tenant_id",
        TX,
        orjson.dumps({**paid, "tenant_id": "no spaces!"}),
        cv,
        http="tenant_mismatch",
        key=record_key("no spaces!", customer),
    )

    kind = "invalid UTF-8"
    for name, raw in (
        ("0xFF byte", b"bad-\xff-order"),
        ("overlong encoding", b"bad-\xc0\xaf"),
        ("encoded surrogate", b"\xed\xa0\x80"),
        ("truncated multibyte", b"bad-\xe2\x82"),
    ):
        case(kind, name, TX, good.replace(b"bad-order", raw), "invalid_utf8")
    case(kind, "escaped lone surrogate", TX, good.replace(b"bad-order", b"\\ud800"), "invalid_json")

    def raw(obj: dict, field: str, text: bytes) -> bytes:  # a field's value as raw JSON number/text
        return orjson.dumps({**obj, field: "@@"}).replace(b'"@@"', text)

    kind = "boundary numbers"  # each stopped the archiver and the speed consumer, or was rounded
    case(kind, "amount 1e22", TX, raw(paid, "amount", b"1e22"), cv)
    case(kind, "amount beyond uint64", TX, raw(paid, "amount", b"18446744073709551616"), cv)
    case(kind, "amount 1e-30", TX, raw(paid, "amount", b"1e-30"), cv)
    case(kind, "amount 1e-400 (a double reads 0.0)", TX, raw(paid, "amount", b"1e-400"), cv)
    case(
        kind,
        "amount 1.00000000000000001 (a double reads 1.0)",
        TX,
        raw(paid, "amount", b"1.00000000000000001"),
        cv,
    )
    case(kind, "amount 9e12 (int64 micros)", TX, raw(paid, "amount", b"9000000000000"), cv)
    case(kind, "score 1e0", SUPPORT, raw(csat, "score", b"1e0"), cv)

    kind = "boundary times"
    case(kind, "year 1 at +01:00", TX, raw(paid, "event_time", b'"0001-01-01T00:00:00+01:00"'), cv)
    case(kind, "year 9999 at -01:00", TX, raw(paid, "event_time", b'"9999-12-31T23:59:59-01:00"'), cv)
    case(kind, "February 30", BEHAVIORAL, raw(view, "event_time", b'"2026-02-30T00:00:00Z"'), cv)
    case(kind, "epoch as a float", BEHAVIORAL, raw(view, "event_time", b"1767225600000.5"), cv)
    case(kind, "epoch in µs", BEHAVIORAL, raw(view, "event_time", b"1767225600000000"), cv)

    kind = "deep nesting"
    deep = b'{"a":' * 300 + b"1" + b"}" * 300  # orjson reads 1024 levels but writes only 254
    case(kind, "properties 300 levels deep", BEHAVIORAL, raw(view, "properties", deep), cv)

    # the HTTP collector picks the topic from event_type, so only Kafka can get this wrong
    case("wrong topic", "order event on the behavioral topic", BEHAVIORAL, good, "wrong_topic", http=None)
    return out
