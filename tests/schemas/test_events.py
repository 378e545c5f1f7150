"""Every contract rule, with valid and invalid examples and the reason each failure gives."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from lambdalytics.schemas.events import (
    BehavioralEvent,
    ContractViolation,
    SupportEvent,
    TransactionEvent,
    decode_event,
    to_row,
    validate_event,
)

pytestmark = pytest.mark.unit

BASE = {"event_id": "e-1", "tenant_id": "acme", "customer_id": "c-1", "event_time": 1_767_225_600_000}


def ev(**fields):
    return {**BASE, **fields}


VALID = [
    ev(event_type="page_view"),
    ev(event_type="session_start", session_id="s1", properties={"app": "ios", "n": [1, 2]}),
    ev(event_type="ad_impression", campaign_id="cmp", cost=0.0025),
    ev(event_type="ad_click", campaign_id="cmp"),
    ev(event_type="order_placed", order_id="o1", campaign_id="cmp", promised_at="2026-01-01T00:45:00Z"),
    ev(event_type="order_paid", order_id="o1", amount=12.5, currency="EUR"),
    ev(event_type="order_paid", order_id="o1", amount=0, currency="JPY"),
    ev(event_type="refund", order_id="o1", amount=3, currency="GBP"),
    ev(event_type="order_delivered", order_id="o1"),
    ev(event_type="order_cancelled", order_id="o1"),
    ev(event_type="ticket_opened", ticket_id="t1", channel="chat", priority="high"),
    ev(event_type="agent_replied", ticket_id="t1"),
    ev(event_type="ticket_resolved", ticket_id="t1"),
    ev(event_type="csat_submitted", ticket_id="t1", score=5),
    ev(event_type="page_view", tenant_id="A.b_c-9", event_id="x" * 128, customer_id="y" * 128),
]


@pytest.mark.parametrize("obj", VALID, ids=lambda o: o["event_type"])
def test_valid_events_pass_and_round_trip(obj):
    event = validate_event(obj)
    again = validate_event(orjson.loads(event.to_json()))
    assert again == event


@pytest.mark.parametrize(
    ("fields", "loc", "fragment"),
    [
        ({"event_id": ""}, "event_id", "at least 1"),
        ({"event_id": "x" * 129}, "event_id", "at most 128"),
        ({"tenant_id": "a b"}, "tenant_id", "pattern"),
        ({"tenant_id": "t" * 65}, "tenant_id", "pattern"),
        ({"customer_id": ""}, "customer_id", "at least 1"),
        ({"customer_id": 42}, "customer_id", "string"),
        ({"event_time": "2026-01-01T00:00:00"}, "event_time", "UTC offset"),
        ({"event_time": "2026-01-01"}, "event_time", "date and a time"),
        ({"event_time": "yesterday"}, "event_time", "not an RFC 3339"),
        ({"event_time": 1_767_225_600}, "event_time", None),  # seconds, not ms: valid (1970-01-21) ...
        ({"event_time": 1_767_225_600_000_000}, "event_time", "outside"),  # µs
        ({"event_time": 1.5e12}, "event_time", "integer epoch"),
        ({"event_time": True}, "event_time", "boolean"),
        ({"properties": [1]}, "properties", "dictionary"),
        ({"unknown_field": 1}, "unknown_field", "Extra inputs"),
    ],
)
def test_common_field_rules(fields, loc, fragment):
    obj = ev(event_type="page_view", **fields)
    if fragment is None:
        validate_event(obj)
        return
    with pytest.raises(ContractViolation) as info:
        validate_event(obj)
    assert info.value.reason == "contract_violation"
    err = next(e for e in info.value.errors if e["loc"] == loc)
    assert fragment in err["msg"]


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (ev(event_type="ad_impression"), "'campaign_id' is required on ad_impression"),
        (
            ev(event_type="page_view", campaign_id="c"),
            "'campaign_id' is only allowed on ad_click, ad_impression",
        ),
        (ev(event_type="page_view", cost=1), "'cost' is only allowed on"),
        (ev(event_type="ad_click", campaign_id="c", cost=-1), "must be >= 0"),
        (ev(event_type="ad_click", campaign_id="c", cost="1.0"), "must be a JSON number"),
        (ev(event_type="order_paid", order_id="o"), "'amount' is required on order_paid"),
        (ev(event_type="order_paid", order_id="o", amount=1), "'currency' is required on order_paid"),
        (ev(event_type="refund", order_id="o", amount=-0.01, currency="EUR"), "must be >= 0"),
        (ev(event_type="refund", order_id="o", amount=1, currency="XYZ"), "not an ISO 4217"),
        (ev(event_type="refund", order_id="o", amount=1, currency="eur"), "not an ISO 4217"),
        (ev(event_type="refund", order_id="o", amount=0.0000001, currency="EUR"), "at most 6 decimal"),
        (ev(event_type="order_paid", amount=1, currency="EUR"), "order_id"),
        (
            ev(event_type="order_delivered", order_id="o", amount=1, currency="EUR"),
            "'amount' is only allowed",
        ),
        (
            ev(event_type="order_paid", order_id="o", amount=1, currency="EUR", campaign_id="c"),
            "'campaign_id' is only allowed on order_placed",
        ),
        (ev(event_type="order_delivered", order_id="o", promised_at=1), "'promised_at' is only allowed"),
        (ev(event_type="csat_submitted", ticket_id="t"), "'score' is required on csat_submitted"),
        (ev(event_type="csat_submitted", ticket_id="t", score=6), "less than or equal to 5"),
        (ev(event_type="csat_submitted", ticket_id="t", score=0), "greater than or equal to 1"),
        (ev(event_type="csat_submitted", ticket_id="t", score=4.5), "valid integer"),
        (ev(event_type="csat_submitted", ticket_id="t", score="5"), "valid integer"),
        (ev(event_type="ticket_opened", ticket_id="t", score=3), "'score' is only allowed"),
        (ev(event_type="ticket_opened"), "ticket_id"),
    ],
)
def test_family_rules(obj, fragment):
    with pytest.raises(ContractViolation) as info:
        validate_event(obj)
    assert info.value.reason == "contract_violation"
    assert fragment in info.value.message


def test_event_time_forms_normalise_to_the_same_utc_ms():
    forms = [
        "2026-01-01T01:00:00+01:00",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.000+00:00",
        "2025-12-31T19:00:00-05:00",
        1_767_225_600_000,
    ]
    assert {validate_event(ev(event_type="page_view", event_time=f)).event_time for f in forms} == {
        1_767_225_600_000
    }
    assert validate_event(ev(event_type="page_view", event_time="2026-01-01T00:00:00.999Z")).event_time == (
        1_767_225_600_999
    )


def test_money_is_exact_and_rows_use_integer_micros():
    event = validate_event(ev(event_type="order_paid", order_id="o", amount=0.1, currency="EUR"))
    assert event.amount == Decimal("0.1")
    assert to_row(event)["amount_micros"] == 100_000
    impression = validate_event(ev(event_type="ad_impression", campaign_id="c", cost=0.000001))
    assert to_row(impression)["cost_micros"] == 1


def test_family_comes_from_event_type_and_types_are_right():
    assert isinstance(validate_event(ev(event_type="search")), BehavioralEvent)
    assert isinstance(
        validate_event(ev(event_type="refund", order_id="o", amount=1, currency="EUR")), TransactionEvent
    )
    assert isinstance(validate_event(ev(event_type="agent_replied", ticket_id="t")), SupportEvent)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe{}", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[1,2]", "not_an_object"),
        (b"null", "not_an_object"),
        (None, "invalid_json"),
        (orjson.dumps(ev(event_type="teleport")), "unknown_event_type"),
        (orjson.dumps(ev(event_type="refund", order_id="o", amount=1, currency="EUR")), "wrong_topic"),
        (orjson.dumps(ev(event_type="page_view", properties={"pad": "x" * 2000})), "payload_too_large"),
        (orjson.dumps(ev(event_type="page_view", event_time="noon")), "contract_violation"),
    ],
)
def test_decode_reasons(value, reason):
    with pytest.raises(ContractViolation) as info:
        decode_event("events.behavioral", value, max_bytes=1024)
    assert info.value.reason == reason
    assert info.value.message


def test_decode_checks_key_and_topic():
    value = orjson.dumps(ev(event_type="page_view"))
    assert decode_event("events.behavioral", value, b"acme:c-1").customer_id == "c-1"
    with pytest.raises(ContractViolation, match="key_mismatch"):
        decode_event("events.behavioral", value, b"other:c-1")
    with pytest.raises(ContractViolation, match="unknown_topic"):
        decode_event("events.nope", value)


def test_to_row_has_every_column_for_every_family():
    from lambdalytics.schemas.events import ROW_COLUMNS

    for obj in VALID:
        row = to_row(validate_event(obj))
        assert list(row) == list(ROW_COLUMNS)
