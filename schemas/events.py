"""Event contracts: the three families every producer, consumer and the HTTP collector validate against.

One module decides what a valid event is. Kafka consumers dead-letter what fails here (with the
machine-readable ``reason``), ``POST /v1/events`` answers 422 with it, and producers in this repo
(generator, replays) run the same check before sending. Normalisation happens here too, so every
layer sees the same values: ``event_time``/``promised_at`` become UTC epoch milliseconds, and money
(``amount``, ``cost``) is kept as an exact ``Decimal`` with at most 6 decimal places, so that sums can
be taken in integer micro-units and merge exactly across batch and speed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import orjson
import pycountry
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from .topics import FAMILY_BY_TOPIC, TOPIC_BY_FAMILY, Family, record_key

__all__ = [
    "BehavioralEvent",
    "ContractViolation",
    "Event",
    "SupportEvent",
    "TransactionEvent",
    "decode_event",
    "family_of",
    "validate_event",
    "MAX_EVENT_BYTES",
    "MICROS",
    "TENANT_ID_PATTERN",
    "iso_currency",
    "parse_utc_ms",
    "ROW_COLUMNS",
    "to_row",
]

MAX_EVENT_BYTES = 1_048_576
"""Largest accepted JSON value (1 MiB, Kafka's default ``max.message.bytes``)."""
MICROS = 1_000_000
_MIN_MS = 0  # 1970-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01: anything later is a unit mistake (seconds vs ms vs µs)


# ---------------------------------------------------------------- field types


def parse_utc_ms(value: Any) -> int:
    """RFC 3339 with an explicit offset, or epoch milliseconds, → UTC epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 timestamp with offset or epoch milliseconds, not a boolean")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {value[:64]!r}") from None
        if "T" not in value.upper() and " " not in value:
            raise ValueError(f"RFC 3339 timestamp needs a date and a time: {value[:64]!r}")
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp needs a UTC offset (e.g. 'Z' or '+02:00'): {value[:64]!r}")
        # integer arithmetic: datetime.timestamp() is a float and can be 1 ms off
        delta = parsed.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        raise ValueError("must be an RFC 3339 string with offset or integer epoch milliseconds")
    if not _MIN_MS <= ms < _MAX_MS:
        raise ValueError(f"epoch milliseconds {ms} outside 1970-01-01..2100-01-01 (seconds or µs given?)")
    return ms


def _to_money(value: Any) -> Decimal:
    """A JSON number ≥ 0 with at most 6 decimal places, kept exact."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number")
    amount = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if not amount.is_finite():
        raise ValueError("must be finite")
    if amount < 0:
        raise ValueError("must be >= 0")
    if amount != amount.quantize(Decimal("0.000001")):
        raise ValueError("at most 6 decimal places")
    if amount >= Decimal(9_000_000_000_000):
        raise ValueError("too large (must be < 9e12)")
    return amount


def iso_currency(value: Any) -> str:
    """An ISO 4217 alphabetic code, upper case (events' ``currency`` and a tenant's display currency)."""
    known = isinstance(value, str) and len(value) == 3 and value.isupper()
    if not known or pycountry.currencies.get(alpha_3=value) is None:
        raise ValueError(f"not an ISO 4217 currency code: {str(value)[:16]!r}")
    return value


def _money_json(amount: Decimal) -> int | float:
    return int(amount) if amount == amount.to_integral_value() else float(amount)


EpochMs = Annotated[
    int,
    BeforeValidator(parse_utc_ms),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "integer",
                    "minimum": _MIN_MS,
                    "maximum": _MAX_MS - 1,
                    "description": "epoch milliseconds",
                },
                {"type": "string", "format": "date-time", "description": "RFC 3339 with offset"},
            ]
        }
    ),
]
Money = Annotated[
    Decimal,
    BeforeValidator(_to_money),
    PlainSerializer(_money_json, when_used="json"),
    WithJsonSchema({"type": "number", "minimum": 0, "multipleOf": 0.000001}),
]
Currency = Annotated[
    str,
    BeforeValidator(iso_currency),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"}),
]
Id128 = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TENANT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""What a tenant id is, wherever one is accepted: events, admin routes, page paths, replay sources."""
TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]


# ---------------------------------------------------------------- models


class _EventBase(BaseModel):
    """Fields every family shares. Unknown top-level fields are rejected, not dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: ClassVar[Family]
    # field -> event types on which it is required / the only event types on which it is allowed.
    # These two tables drive both the validator and the exported JSON Schema (if/then rules).
    required_on: ClassVar[dict[str, frozenset[str]]] = {}
    allowed_only_on: ClassVar[dict[str, frozenset[str]]] = {}

    event_id: Id128 = Field(description="Idempotency key: an event_id counts once.")
    tenant_id: TenantId
    customer_id: Id128
    event_type: str
    event_time: EpochMs = Field(description="RFC 3339 with offset, or epoch ms; stored as UTC epoch ms.")
    properties: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _conditional_fields(self) -> _EventBase:
        problems = []
        for name, types in self.required_on.items():
            if self.event_type in types and getattr(self, name) is None:
                problems.append(f"'{name}' is required on {self.event_type}")
        for name, types in self.allowed_only_on.items():
            if self.event_type not in types and getattr(self, name) is not None:
                problems.append(f"'{name}' is only allowed on {', '.join(sorted(types))}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def topic(self) -> str:
        return TOPIC_BY_FAMILY[self.family]

    @property
    def key(self) -> bytes:
        return record_key(self.tenant_id, self.customer_id)

    def to_json(self) -> bytes:
        """Canonical JSON (UTC epoch ms, no nulls): what producers in this repo put on Kafka."""
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def model_json_schema_with_rules(cls) -> dict[str, Any]:
        """JSON Schema including the per-event-type rules as ``allOf`` if/then clauses."""
        schema = cls.model_json_schema()
        rules = []
        for name, types in cls.required_on.items():
            rules.append(
                {
                    "if": {"properties": {"event_type": {"enum": sorted(types)}}},
                    "then": {"required": [name]},
                }
            )
        for name, types in cls.allowed_only_on.items():
            rules.append(
                {
                    "if": {"not": {"properties": {"event_type": {"enum": sorted(types)}}}},
                    "then": {"properties": {name: False}},
                }
            )
        if rules:
            schema["allOf"] = rules
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"lambdalytics {cls.family.value} event ({TOPIC_BY_FAMILY[cls.family]})"
        return schema


_AD_TYPES = frozenset({"ad_impression", "ad_click"})


class BehavioralEvent(_EventBase):
    family: ClassVar[Family] = Family.behavioral
    required_on: ClassVar[dict[str, frozenset[str]]] = {"campaign_id": _AD_TYPES}
    allowed_only_on: ClassVar[dict[str, frozenset[str]]] = {"campaign_id": _AD_TYPES, "cost": _AD_TYPES}

    event_type: Literal[
        "session_start", "page_view", "app_event", "search", "add_to_cart", "ad_impression", "ad_click"
    ]
    session_id: Id128 | None = None
    campaign_id: Id128 | None = None
    cost: Money | None = Field(default=None, description="Advertiser spend for this ad event.")


_MONEY_TYPES = frozenset({"order_paid", "refund"})
_PLACED = frozenset({"order_placed"})


class TransactionEvent(_EventBase):
    family: ClassVar[Family] = Family.transaction
    required_on: ClassVar[dict[str, frozenset[str]]] = {"amount": _MONEY_TYPES, "currency": _MONEY_TYPES}
    allowed_only_on: ClassVar[dict[str, frozenset[str]]] = {
        "amount": _MONEY_TYPES,
        "currency": _MONEY_TYPES,
        "campaign_id": _PLACED,
        "promised_at": _PLACED,
    }

    event_type: Literal["order_placed", "order_paid", "order_delivered", "order_cancelled", "refund"]
    order_id: Id128
    amount: Money | None = None
    currency: Currency | None = None
    campaign_id: Id128 | None = Field(default=None, description="Attribution of the order to a campaign.")
    promised_at: EpochMs | None = None


_CSAT = frozenset({"csat_submitted"})
Short64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SupportEvent(_EventBase):
    family: ClassVar[Family] = Family.support
    required_on: ClassVar[dict[str, frozenset[str]]] = {"score": _CSAT}
    allowed_only_on: ClassVar[dict[str, frozenset[str]]] = {"score": _CSAT}

    event_type: Literal["ticket_opened", "agent_replied", "ticket_resolved", "csat_submitted"]
    ticket_id: Id128
    score: Annotated[int, Field(ge=1, le=5, strict=True)] | None = None
    channel: Short64 | None = None
    priority: Short64 | None = None


Event = BehavioralEvent | TransactionEvent | SupportEvent
MODEL_BY_FAMILY: dict[Family, type[_EventBase]] = {
    m.family: m for m in (BehavioralEvent, TransactionEvent, SupportEvent)
}
FAMILY_BY_EVENT_TYPE: dict[str, Family] = {
    t: m.family for m in MODEL_BY_FAMILY.values() for t in m.model_fields["event_type"].annotation.__args__
}


# ---------------------------------------------------------------- validation entry points


class ContractViolation(ValueError):
    """An event that breaks the contract. ``reason`` is a stable machine-readable code.

    Codes: ``payload_too_large``, ``invalid_utf8``, ``invalid_json``, ``not_an_object``,
    ``unknown_topic``, ``unknown_event_type``, ``wrong_topic``, ``contract_violation``,
    ``key_mismatch``, ``tenant_mismatch``.
    """

    def __init__(self, reason: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.errors = errors or []

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "errors": self.errors}


def family_of(event_type: Any) -> Family:
    try:
        return FAMILY_BY_EVENT_TYPE[event_type]
    except (KeyError, TypeError):
        raise ContractViolation(
            "unknown_event_type",
            f"event_type {str(event_type)[:64]!r} is none of {sorted(FAMILY_BY_EVENT_TYPE)}",
            [{"loc": "event_type", "type": "unknown_event_type", "msg": "unknown event_type"}],
        ) from None


def _pydantic_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": ".".join(str(p) for p in err["loc"]) or "(event)",
            "type": err["type"],
            "msg": err["msg"].removeprefix("Value error, "),
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validate_event(obj: Any, family: Family | None = None) -> Event:
    """Validate a decoded JSON value; the family comes from the topic, or from ``event_type``."""
    if not isinstance(obj, dict):
        raise ContractViolation("not_an_object", f"an event is a JSON object, got {type(obj).__name__}")
    inferred = family_of(obj.get("event_type"))
    if family is not None and inferred is not family:
        raise ContractViolation(
            "wrong_topic",
            f"event_type {obj['event_type']!r} belongs on {TOPIC_BY_FAMILY[inferred]}, "
            f"not {TOPIC_BY_FAMILY[family]}",
        )
    try:
        return MODEL_BY_FAMILY[inferred].model_validate(obj)
    except ValidationError as exc:
        errors = _pydantic_errors(exc)
        summary = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5])
        raise ContractViolation("contract_violation", summary, errors) from None


def decode_event(
    topic: str, value: bytes | None, key: bytes | None = None, *, max_bytes: int = MAX_EVENT_BYTES
) -> Event:
    """Bytes as read from ``topic`` → a valid event, or :class:`ContractViolation` with the reason."""
    family = FAMILY_BY_TOPIC.get(topic)
    if family is None:
        raise ContractViolation("unknown_topic", f"{topic!r} is not an event topic")
    if value is None:
        raise ContractViolation("invalid_json", "empty record value (tombstone)")
    if len(value) > max_bytes:
        raise ContractViolation("payload_too_large", f"{len(value)} bytes > limit of {max_bytes}")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractViolation("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ContractViolation("invalid_json", str(exc)[:200]) from None
    event = validate_event(obj, family)
    if key is not None and key != event.key:
        raise ContractViolation(
            "key_mismatch",
            f"record key {key[:140]!r} is not tenant_id:customer_id {event.key[:140]!r}",
        )
    return event


# ---------------------------------------------------------------- the flat row every engine aggregates

ROW_COLUMNS: dict[str, str] = {
    "event_id": "string",
    "tenant_id": "string",
    "customer_id": "string",
    "event_type": "string",
    "event_time": "int64",  # UTC epoch ms
    "session_id": "string",
    "campaign_id": "string",
    "order_id": "string",
    "ticket_id": "string",
    "amount_micros": "int64",  # amount × 10^6, exact
    "currency": "string",
    "cost_micros": "int64",  # cost × 10^6, exact
    "score": "int32",
    "channel": "string",
    "priority": "string",
    "promised_at": "int64",  # UTC epoch ms
    "properties": "string",  # JSON text
}
"""Typed columns of one event, the same for all families (absent fields are null).

The master dataset, the speed stores and the Pinot schema all hold these columns, and the metric
catalog's filters and aggregates refer only to them.
"""


def _micros(amount: Decimal | None) -> int | None:
    return None if amount is None else int(amount * MICROS)


def to_row(event: Event) -> dict[str, Any]:
    """The event as a flat :data:`ROW_COLUMNS` dict."""
    get = event.__dict__.get
    return {
        "event_id": event.event_id,
        "tenant_id": event.tenant_id,
        "customer_id": event.customer_id,
        "event_type": event.event_type,
        "event_time": event.event_time,
        "session_id": get("session_id"),
        "campaign_id": get("campaign_id"),
        "order_id": get("order_id"),
        "ticket_id": get("ticket_id"),
        "amount_micros": _micros(get("amount")),
        "currency": get("currency"),
        "cost_micros": _micros(get("cost")),
        "score": get("score"),
        "channel": get("channel"),
        "priority": get("priority"),
        "promised_at": get("promised_at"),
        "properties": None if event.properties is None else orjson.dumps(event.properties).decode(),
    }
