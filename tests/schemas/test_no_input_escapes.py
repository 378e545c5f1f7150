"""No input makes the decoder raise anything but the contract's violation (hypothesis).

For Kafka bytes (``decode_event``) and for ``POST /v1/events`` through the ASGI app, over arbitrary
bytes, arbitrary JSON values (recursive), and event-shaped objects with boundary numbers and times:
the outcome is a valid event — usable by every layer: a row, canonical JSON that decodes to the same
event, money equal to the exact number written — or a :class:`ContractViolation` with a reason that is
not ``internal_error`` (4xx with that reason over HTTP, never 5xx). ``TRIED`` counts the inputs.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.schemas import events as events_module
from lambdalytics.schemas.events import (
    MICROS,
    ContractViolation,
    Event,
    decode_event,
    to_row,
    validate_event,
)
from lambdalytics.schemas.topics import EVENT_TOPICS, TOPIC_BY_FAMILY

from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit

TRIED: Counter[str] = Counter()
EXAMPLES = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TENANT = "acme"
T0 = 1_767_225_600_000


@pytest.fixture(scope="module", autouse=True)
def _report_inputs_tried():
    yield
    print(f"\ninputs tried by the no-escape property tests: {dict(TRIED)}, total {sum(TRIED.values())}")


# ---------------------------------------------------------------- inputs

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond int64 too: json.dumps writes any int
    | st.floats()  # NaN and ±Infinity become literals orjson refuses
    | st.text(),  # lone surrogates too: escaped, or raw (invalid UTF-8) below
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def json_bytes(value, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


NUMBER_TEXT = st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?", fullmatch=True)
BOUNDARY_NUMBERS = st.sampled_from(
    [
        "1e22",
        "1E+22",
        "1e-30",
        "-0",
        "-0.0",
        "0.000000",
        "5e-324",
        "1.7976931348623157e308",
        "1e400",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "-9223372036854775809",
        "8999999999999.999999",
        "9000000000000",
        "1.00000000000000001",
        "1234567890.123457",
        "0.1000000000000000055511151231257827",
        "123456789012345678901234567890",
        '"12.5"',
        '"1e22"',
        "true",
        "false",
        "null",
        "[]",
        "{}",
        '"NaN"',
        "NaN",
        "Infinity",
    ]  # fmt: skip
)
TIME_TEXT = st.builds(
    lambda y, mo, d, h, mi, s, frac, off: f'"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{off}"',
    st.sampled_from([1, 2, 1969, 1970, 2026, 2099, 2100, 9998, 9999]) | st.integers(1, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 61),
    st.sampled_from(["", ".5", ".999999", ".1234567"]),
    st.sampled_from(["Z", "z", "+00:00", "+01:00", "-01:00", "+23:59", "-23:59", "+24:00", "", "+14:00"]),
)
EPOCH_NUMBERS = st.sampled_from(
    ["0", "-1", "4102444799999", "4102444800000", "1767225600000", "1767225600000.5", "1.7e12", "1767225600",
     "1767225600000000", "-62135596800000", "253402300799999", "99999999999999999999"]
)  # fmt: skip
MONEY_TEXT = (
    NUMBER_TEXT
    | BOUNDARY_NUMBERS
    | st.decimals(min_value=-1, max_value=10**13, allow_nan=False, allow_infinity=False).map(str)
    | st.integers(0, 10**20).map(str)
    | st.floats(min_value=0, max_value=1e13).map(repr)
)
TIME_VALUES = TIME_TEXT | EPOCH_NUMBERS | BOUNDARY_NUMBERS | st.integers(-(2**70), 2**70).map(str)
VALUE_TEXT = NUMBER_TEXT | BOUNDARY_NUMBERS | TIME_TEXT | EPOCH_NUMBERS | json_values.map(json.dumps)
FIELD_VALUES = {
    "amount": MONEY_TEXT,
    "cost": MONEY_TEXT,
    "event_time": TIME_VALUES,
    "promised_at": TIME_VALUES,
    "score": NUMBER_TEXT | BOUNDARY_NUMBERS | st.integers(-3, 8).map(str),
    "properties": st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(json.dumps) | VALUE_TEXT,
    "event_id": st.text(max_size=130).map(json.dumps) | VALUE_TEXT,
    "customer_id": st.text(max_size=130).map(json.dumps) | VALUE_TEXT,
}

SHAPES = {
    "order_paid": {"order_id": "o1", "amount": 12.5, "currency": "EUR"},
    "refund": {"order_id": "o1", "amount": 1, "currency": "EUR"},
    "order_placed": {"order_id": "o1", "promised_at": T0},
    "ad_click": {"campaign_id": "c1", "cost": 0.25},
    "csat_submitted": {"ticket_id": "t1", "score": 4},
    "page_view": {"properties": {"n": 1}},
}


@st.composite
def event_shaped(draw) -> tuple[str, bytes, dict[str, str]]:
    """A valid event's JSON text with some fields' values replaced by raw JSON text (mostly fields of
    its own event type, with values of their kind; sometimes any field, any value)."""
    event_type = draw(st.sampled_from(sorted(SHAPES)))
    obj = {"event_id": "e1", "tenant_id": TENANT, "customer_id": "c1", "event_type": event_type}
    obj |= {"event_time": T0, **SHAPES[event_type]}
    own = sorted(set(obj) & set(FIELD_VALUES) - {"event_id", "customer_id"})
    names = draw(
        st.lists(st.sampled_from(own) | st.sampled_from(sorted(FIELD_VALUES)), min_size=1, max_size=3)
    )
    replaced = {
        name: draw(FIELD_VALUES[name] | VALUE_TEXT if draw(st.booleans()) else FIELD_VALUES[name])
        for name in names
    }
    for name in replaced:
        obj[name] = f"@@{name}@@"
    text = orjson.dumps(obj)
    for name, raw in replaced.items():
        text = text.replace(f'"@@{name}@@"'.encode(), raw.encode("utf-8", "surrogatepass"))
    return event_type, text, replaced


# ---------------------------------------------------------------- the property


def check_outcome(outcome: Event | ContractViolation, replaced: dict[str, str] | None = None) -> None:
    if isinstance(outcome, ContractViolation):
        assert outcome.reason and outcome.reason != "internal_error", outcome
        assert outcome.message
        return
    row = to_row(outcome)  # what the archiver and the speed consumer do with it
    assert decode_event(outcome.topic, outcome.to_json(), outcome.key) == outcome
    for name in ("amount", "cost"):
        raw = (replaced or {}).get(name)
        if raw is not None and getattr(outcome, name, None) is not None:  # never rounded
            assert Decimal(raw) == getattr(outcome, name) == Decimal(row[f"{name}_micros"]) / MICROS


def decoded(topic: str, value: bytes) -> Event | ContractViolation:
    try:
        return decode_event(topic, value)
    except ContractViolation as violation:
        return violation


@EXAMPLES
@given(topic=st.sampled_from(EVENT_TOPICS), value=st.binary(max_size=512))
def test_arbitrary_bytes(topic, value):
    TRIED["kafka: arbitrary bytes"] += 1
    check_outcome(decoded(topic, value))


@EXAMPLES
@given(topic=st.sampled_from(EVENT_TOPICS), value=json_values, ascii_only=st.booleans())
def test_arbitrary_json_values(topic, value, ascii_only):
    TRIED["kafka: arbitrary JSON values"] += 1
    check_outcome(decoded(topic, json_bytes(value, ascii_only)))


@EXAMPLES
@given(shaped=event_shaped())
def test_event_shaped_objects_with_boundary_numbers_and_times(shaped):
    TRIED["kafka: event-shaped, boundary values"] += 1
    event_type, value, replaced = shaped
    family = events_module.FAMILY_BY_EVENT_TYPE[event_type]
    check_outcome(decoded(TOPIC_BY_FAMILY[family], value), replaced)


@EXAMPLES
@given(value=json_values | st.dictionaries(st.sampled_from([*FIELD_VALUES, "event_type"]), json_values))
def test_python_objects_validate_or_violate(value):
    """Python values (EventProducer.send_obj's input) too: surrogates, big ints, nan, non-str keys."""
    TRIED["python: arbitrary values"] += 1
    try:
        outcome: Event | ContractViolation = validate_event(value)
    except ContractViolation as violation:
        outcome = violation
    check_outcome(outcome)


# ---------------------------------------------------------------- the same over HTTP


class _Recorder:
    """Stands in for the Kafka producer: the route's answers are what is under test."""

    def __init__(self):
        self.sent: list[Event] = []

    def send(self, event):
        self.sent.append(event)
        return self

    def get(self, timeout=None):
        return None

    def flush(self, timeout=None):
        pass


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    from lambdalytics.infra.settings import Settings
    from lambdalytics.serving.main import create_app
    from lambdalytics.serving.state import ServingState
    from lambdalytics.speed.embedded import EmbeddedSpeedStore

    config = Settings(
        data_dir=tmp_path_factory.mktemp("api"),
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        rate_limit_per_s=1e6,
        rate_limit_burst=10**6,
    )
    state = ServingState(config, EmbeddedSpeedStore(block_size=10))
    state.loader.refresh()
    state._producer = recorder = _Recorder()
    client = TestClient(create_app(state))  # raises a server exception instead of answering 500
    r = client.post(
        "/v1/admin/tenants",
        json={"tenant_id": TENANT, "name": TENANT},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert r.status_code == 201
    return (
        client,
        {"Authorization": f"Bearer {r.json()['api_key']}", "Content-Type": "application/json"},
        recorder,
    )


def post(http, body: bytes, replaced: dict[str, str] | None = None) -> None:
    client, headers, recorder = http
    r = client.post("/v1/events", content=body, headers=headers)
    assert r.status_code in (202, 413, 422), (r.status_code, r.text[:300])
    if r.status_code == 422:
        assert all(e["reason"] and e["reason"] != "internal_error" for e in r.json()["detail"]), r.text[:300]
    elif r.status_code == 202:  # what was produced is a valid, exact event
        check_outcome(recorder.sent[-1], replaced)


@EXAMPLES
@given(value=st.binary(max_size=512))
def test_http_arbitrary_bytes(http, value):
    TRIED["http: arbitrary bytes"] += 1
    post(http, value)


@EXAMPLES
@given(value=json_values, ascii_only=st.booleans())
def test_http_arbitrary_json_values(http, value, ascii_only):
    TRIED["http: arbitrary JSON values"] += 1
    post(http, json_bytes(value, ascii_only))


@EXAMPLES
@given(shaped=event_shaped(), as_array=st.booleans())
def test_http_event_shaped_objects_with_boundary_numbers_and_times(http, shaped, as_array):
    TRIED["http: event-shaped, boundary values"] += 1
    _, value, replaced = shaped
    post(http, b"[" + value + b"," + value + b"]" if as_array else value, replaced)


# ---------------------------------------------------------------- the cases measured on main, and the guard


PAID = {
    "event_id": "e1",
    "tenant_id": TENANT,
    "customer_id": "c1",
    "event_type": "order_paid",
    "event_time": T0,
    "order_id": "o1",
    "amount": 12.5,
    "currency": "EUR",
}


@pytest.mark.parametrize(
    ("field", "raw", "code"),
    [
        ("amount", b"1e22", "amount_out_of_range"),
        ("amount", b"18446744073709551616", "amount_out_of_range"),
        ("amount", b"1e-30", "amount_not_exact"),
        ("amount", b"1e-400", "amount_not_exact"),  # a double underflows to 0.0
        ("amount", b"1.00000000000000001", "amount_not_exact"),  # a double would read 1.0
        ("amount", b'"12.5"', "amount_type"),
        ("amount", b"true", "amount_type"),
        ("event_time", b'"0001-01-01T00:00:00+01:00"', "time_out_of_range"),
        ("event_time", b'"9999-12-31T23:59:59-01:00"', "time_out_of_range"),
        ("event_time", b'"2026-02-30T00:00:00Z"', "time_format"),
        ("event_time", b"1.7e12", "time_type"),
        ("event_time", b"false", "time_type"),
        ("properties", b'{"a":' * 40 + b"1" + b"}" * 40, "properties_too_deep"),
    ],
)
def test_each_crash_measured_on_main_is_a_named_field_code(field, raw, code):
    value = orjson.dumps({**PAID, field: "@@"}).replace(b'"@@"', raw)
    with pytest.raises(ContractViolation) as info:
        decode_event("events.transaction", value)
    assert info.value.reason == "contract_violation"
    assert [(e["loc"], e["type"]) for e in info.value.errors] == [(field, code)]


@pytest.mark.parametrize("raw", [b"1234567890.123457", b"8999999999999.999999", b"0.000001", b"-0.0"])
def test_amounts_the_micros_hold_are_kept_exact_end_to_end(raw):
    event = decode_event("events.transaction", orjson.dumps({**PAID, "amount": "@@"}).replace(b'"@@"', raw))
    assert event.amount == Decimal(raw.decode()) and not event.amount.is_signed()
    assert to_row(event)["amount_micros"] == int(Decimal(raw.decode()) * MICROS)
    assert decode_event("events.transaction", event.to_json()) == event


def test_python_values_json_cannot_hold_are_named():
    for props, code in (
        ({"x": float("nan")}, "properties_not_json"),
        ({"x": 2**64}, "properties_not_json"),
        ({"x": {1, 2}}, "properties_not_json"),
        ({"x": "\ud800"}, "string_not_utf8"),
    ):
        with pytest.raises(ContractViolation) as info:
            validate_event({**PAID, "properties": props})
        assert [e["type"] for e in info.value.errors] == [code]
    with pytest.raises(ContractViolation) as info:
        validate_event({**PAID, "customer_id": "c\udc80"})
    assert info.value.errors[0]["type"] == "string_unicode"
    with pytest.raises(ContractViolation, match="unknown_event_type"):
        validate_event({**PAID, "event_type": 10**5000})  # str() of it would raise


def test_an_unexpected_failure_is_an_internal_error_violation(monkeypatch):
    """The last-resort guard: a bug in validation refuses the input instead of raising."""

    def broken(obj):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(events_module.TransactionEvent, "model_validate", broken)
    with pytest.raises(ContractViolation) as info:
        decode_event("events.transaction", orjson.dumps(PAID))
    assert info.value.reason == "internal_error" and "ZeroDivisionError" in info.value.message
    monkeypatch.setattr(events_module, "parse_json", lambda value: 1 / 0)
    with pytest.raises(ContractViolation, match="internal_error"):
        decode_event("events.transaction", b"{}")
