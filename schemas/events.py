"""Event contracts: the three families every producer, consumer and the HTTP collector validate against.

One module decides what a valid event is. Kafka consumers dead-letter what fails here (with the
machine-readable ``reason``), ``POST /v1/events`` answers 422 with it, and producers in this repo
(generator, replays) run the same check before sending. Normalisation happens here too, so every
layer sees the same values: ``event_time``/``promised_at`` become UTC epoch milliseconds, and money
(``amount``, ``cost``) is kept as an exact ``Decimal`` with at most 6 decimal places, so that sums can
be taken in integer micro-units and merge exactly across batch and speed.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Context, Decimal
from typing import Annotated, Any, ClassVar, Literal

import orjson
import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .topics import FAMILY_BY_TOPIC, TOPIC_BY_FAMILY, Family, record_key
from .traits import MAX_TRAIT_TEXT, TRAITS_BY_NAME

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
    "MAX_PROPERTIES_DEPTH",
    "MICROS",
    "TENANT_ID_PATTERN",
    "iso_currency",
    "parse_json",
    "parse_utc_ms",
    "ROW_COLUMNS",
    "to_row",
]

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 1_048_576
"""Default of ``Settings.max_event_bytes`` (1 MiB, Kafka's default ``max.message.bytes``): the one
limit the HTTP collector, the archiver and the speed consumer apply to an event's bytes."""
MICROS = 1_000_000
MAX_MONEY = Decimal(9_000_000_000_000)
"""Money is summed as int64 micro-units in Delta/Arrow: amounts must stay below 9e12 (int64 max is 9.22e18 µ)."""
MAX_PROPERTIES_DEPTH = 32
"""Deepest nesting of ``properties`` (orjson cannot write more than 254 levels; no engine needs 32)."""
_MIN_MS = 0  # 1970-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01: anything later is a unit mistake (seconds vs ms vs µs)
_EPOCH = datetime(1970, 1, 1)
_MICRO = Decimal("0.000001")
# Precision enough for every amount below MAX_MONEY at 6 places (19 digits), and no traps: quantize and
# normalize never raise (the default context raised InvalidOperation on 1e22) and never round silently.
_MONEY_CONTEXT = Context(prec=40, traps=[])
_MONEY_FIELDS = ("amount", "cost")


# ---------------------------------------------------------------- safe messages


def _text(value: str, limit: int) -> str:
    """At most ``limit`` characters of ``value``, encodable as UTF-8 (lone surrogates escaped)."""
    return value[:limit].encode("utf-8", "backslashreplace").decode()


def _preview(value: Any, limit: int = 64) -> str:
    """A short, always-encodable description of an input: never ``str()`` of an arbitrary object
    (a 5000-digit int raises, a deep list recurses, a lone surrogate cannot be encoded)."""
    if isinstance(value, str):
        return repr(_text(value, limit))
    if value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 10**30):
        return repr(value)
    if isinstance(value, float | Decimal):
        return repr(value)[:limit]
    return f"a value of type {type(value).__name__}"


def _kind(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else type(value).__name__


def _fail(code: str, message: str, **context: Any) -> PydanticCustomError:
    """A field error with a stable ``type`` code (listed in docs/events.md)."""
    return PydanticCustomError(code, message, context or None)


# ---------------------------------------------------------------- JSON text → values


_INEXACT_NUMBER = re.compile(rb"(?:[0-9]\.?){16}|[0-9][eE]")
"""Where a double may differ from the text: 16+ digits (≤ 15 always round-trip), or an exponent (which
may underflow: orjson reads ``1e-400`` as 0.0)."""


def parse_json(value: bytes) -> Any:
    """JSON bytes → a value, or :class:`ContractViolation` (``invalid_utf8``, ``invalid_json``).

    orjson parses numbers as doubles, which rounds a money value written with 16+ digits or a tiny
    exponent; when the text has such a number, money fields are re-read exactly from the text, so they
    are refused as not exact instead of being rounded.
    """
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(value).decode("utf-8")
        except UnicodeDecodeError as bad:
            raise ContractViolation("invalid_utf8", f"invalid UTF-8 at byte {bad.start}") from None
        raise ContractViolation("invalid_json", str(exc)[:200]) from None
    if _INEXACT_NUMBER.search(value):
        _exact_money(obj, value)
    return obj


def _exact_money(obj: Any, value: bytes) -> None:
    """Replace the float money fields of an event (or array of events) by their exact values."""
    items = obj if isinstance(obj, list) else [obj]
    if not any(isinstance(i, dict) and any(type(i.get(f)) is float for f in _MONEY_FIELDS) for i in items):
        return
    try:
        exact = json.loads(value, parse_float=Decimal)
    except (RecursionError, ValueError):
        raise ContractViolation("invalid_json", "nested too deeply to read its numbers exactly") from None
    for item, again in zip(items, exact if isinstance(obj, list) else [exact], strict=True):
        if isinstance(item, dict):
            for f in _MONEY_FIELDS:
                if type(item.get(f)) is float:
                    item[f] = again[f]


# ---------------------------------------------------------------- field types


def parse_utc_ms(value: Any) -> int:
    """RFC 3339 with an explicit offset, or epoch milliseconds, → UTC epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(
            "time_type",
            "must be an RFC 3339 string with offset or integer epoch milliseconds, not {kind}",
            kind=_kind(value),
        )
    if isinstance(value, int):
        ms = value
    else:
        if len(value) > 64:
            raise _fail("time_format", "not an RFC 3339 timestamp (longer than 64 characters)")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _fail("time_format", "not an RFC 3339 timestamp: {value}", value=_preview(value)) from None
        if "T" not in value.upper() and " " not in value:
            raise _fail(
                "time_format", "RFC 3339 timestamp needs a date and a time: {value}", value=_preview(value)
            )
        offset = parsed.utcoffset()
        if offset is None:
            raise _fail(
                "time_offset",
                "timestamp needs a UTC offset (e.g. 'Z' or '+02:00'): {value}",
                value=_preview(value),
            )
        # naive arithmetic in timedelta (±999,999,999 days): astimezone() overflows at years 1 and 9999,
        # and datetime.timestamp() is a float, 1 ms off at times
        ms = (parsed.replace(tzinfo=None) - _EPOCH - offset) // timedelta(milliseconds=1)
    if not _MIN_MS <= ms < _MAX_MS:
        raise _fail(
            "time_out_of_range",
            "{value} is outside 1970-01-01..2100-01-01 (seconds or µs given instead of ms?)",
            value=_preview(value),
        )
    return ms


def _to_money(value: Any) -> Decimal:
    """A JSON number ≥ 0 below :data:`MAX_MONEY` with at most 6 decimal places, kept exact — an amount
    the int64 micro-units cannot hold exactly is refused, never rounded."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _fail("amount_type", "must be a JSON number, not {kind}", kind=_kind(value))
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))  # the shortest text of the double, as JSON wrote it
    else:
        amount = value
    if not amount.is_finite():
        raise _fail("amount_not_finite", "must be finite")
    if amount < 0:
        raise _fail("amount_negative", "must be >= 0")
    if amount >= MAX_MONEY:
        raise _fail("amount_out_of_range", "too large (must be < 9e12: money is int64 micro-units)")
    if _MONEY_CONTEXT.quantize(amount, _MICRO) != amount:
        raise _fail("amount_not_exact", "at most 6 decimal places (money is exact integer micro-units)")
    return amount + 0 if amount.is_zero() else amount  # -0 → 0


def iso_currency(value: Any) -> str:
    """An ISO 4217 alphabetic code, upper case (events' ``currency`` and a tenant's display currency)."""
    known = isinstance(value, str) and len(value) == 3 and value.isupper()
    if not known or pycountry.currencies.get(alpha_3=value) is None:
        raise ValueError(f"not an ISO 4217 currency code: {str(value)[:16]!r}")
    return value


def _json_default(value: Any) -> orjson.Fragment:
    """orjson's hook for money: exact JSON number text (a double would round 16+ digit amounts)."""
    if isinstance(value, Decimal):
        return orjson.Fragment(format(_MONEY_CONTEXT.normalize(value), "f"))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encodable(value: str) -> str:
    """Strings in ``properties`` must be valid Unicode text (a lone surrogate cannot be written as UTF-8
    or JSON; pydantic checks this for the typed fields, as ``string_unicode``)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail("string_not_utf8", "contains a lone surrogate") from None
    return value


_INT_RANGE = range(-(2**63), 2**64)  # what orjson can write


def _json_properties(value: dict[str, Any]) -> dict[str, Any]:
    """``properties`` must be a JSON document every layer can write back: string keys, finite numbers,
    64-bit integers, valid text, at most :data:`MAX_PROPERTIES_DEPTH` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_PROPERTIES_DEPTH:
            raise _fail(
                "properties_too_deep", "nested deeper than {limit} levels", limit=MAX_PROPERTIES_DEPTH
            )
        children = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in children:
            if isinstance(node, dict):
                if not isinstance(key, str):
                    raise _fail(
                        "properties_not_json", "object keys must be strings, not {kind}", kind=_kind(key)
                    )
                _encodable(key)
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))
            elif isinstance(child, str):
                _encodable(child)
            elif isinstance(child, float):
                if not math.isfinite(child):
                    raise _fail("properties_not_json", "numbers must be finite")
            elif isinstance(child, int) and not isinstance(child, bool) and child not in _INT_RANGE:
                raise _fail("properties_not_json", "integers must fit in 64 bits")
            elif not (child is None or isinstance(child, bool | int)):
                raise _fail("properties_not_json", "{kind} is not a JSON value", kind=_kind(child))
    return value


def _traits(value: dict[str, Any]) -> dict[str, Any]:
    """``traits`` of an ``identify``: declared names only (``schemas.traits``), each value of its declared
    type, normalised — a timestamp to UTC epoch ms, a number to a finite int or float; ``null`` is refused
    (a trait is set, never unset, so its latest value is always a value)."""
    out: dict[str, Any] = {}
    for name, raw in value.items():
        trait = TRAITS_BY_NAME.get(name) if isinstance(name, str) else None
        if trait is None:
            raise _fail(
                "trait_unknown",
                "{name} is not a declared trait (declared: {declared})",
                name=_preview(name),
                declared=", ".join(sorted(TRAITS_BY_NAME)),
            )
        if trait.type == "string" and isinstance(raw, str):
            out[name] = _encodable(raw)
            if not 1 <= len(raw) <= MAX_TRAIT_TEXT:
                raise _fail(
                    "trait_length", "{name}: 1 to {limit} characters", name=name, limit=MAX_TRAIT_TEXT
                )
        elif trait.type == "number" and isinstance(raw, int | float) and not isinstance(raw, bool):
            if not (math.isfinite(raw) and abs(raw) < 2**53):
                raise _fail("trait_type", "{name}: a number must be finite and below 2^53", name=name)
            out[name] = raw
        elif trait.type == "timestamp" and isinstance(raw, int | str) and not isinstance(raw, bool):
            try:
                out[name] = parse_utc_ms(raw)
            except PydanticCustomError as exc:
                raise _fail("trait_type", "{name}: {problem}", name=name, problem=exc.message()) from None
        else:
            raise _fail(
                "trait_type",
                "{name} is a {type} trait, not {kind}",
                name=name,
                type=trait.type,
                kind=_kind(raw),
            )
    return out


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
    properties: Annotated[dict[str, Any], AfterValidator(_json_properties)] | None = None

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
        return orjson.dumps(self.model_dump(exclude_none=True), default=_json_default)

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
_ALIAS = frozenset({"alias"})
_IDENTIFY = frozenset({"identify"})
_TRAIT_VALUE_SCHEMA = {
    "string": {"type": "string", "minLength": 1, "maxLength": MAX_TRAIT_TEXT},
    "number": {"type": "number"},
    "timestamp": EpochMs.__metadata__[1].json_schema,
}
_TRAITS_SCHEMA = {
    "type": "object",
    "properties": {t.name: _TRAIT_VALUE_SCHEMA[t.type] for t in TRAITS_BY_NAME.values()},
    "additionalProperties": False,
}


class BehavioralEvent(_EventBase):
    family: ClassVar[Family] = Family.behavioral
    required_on: ClassVar[dict[str, frozenset[str]]] = {"campaign_id": _AD_TYPES, "previous_id": _ALIAS}
    allowed_only_on: ClassVar[dict[str, frozenset[str]]] = {
        "campaign_id": _AD_TYPES,
        "cost": _AD_TYPES,
        "previous_id": _ALIAS,
        "traits": _IDENTIFY,
    }

    event_type: Literal[
        "session_start",
        "page_view",
        "app_event",
        "search",
        "add_to_cart",
        "ad_impression",
        "ad_click",
        "alias",
        "identify",
    ]
    session_id: Id128 | None = None
    campaign_id: Id128 | None = None
    cost: Money | None = Field(default=None, description="Advertiser spend for this ad event.")
    previous_id: Id128 | None = Field(
        default=None,
        description="On alias: the id merged into customer_id (the id that survives); see schemas.identity.",
    )

    traits: Annotated[dict[str, Any], AfterValidator(_traits), WithJsonSchema(_TRAITS_SCHEMA)] | None = Field(
        default=None, description="identify only: declared traits (schemas/traits.py) and their new values."
    )

    @model_validator(mode="after")
    def _not_self_alias(self) -> BehavioralEvent:
        if self.previous_id is not None and self.previous_id == self.customer_id:
            raise ValueError("'previous_id' must differ from 'customer_id' (an id cannot merge into itself)")
        return self


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
    ``unknown_topic``, ``unknown_event_type``, ``wrong_topic``, ``contract_violation`` (``errors``
    gives a ``type`` code per field), ``key_mismatch``, ``tenant_mismatch``, and ``internal_error``
    (a bug in validation: the input is refused, never the worker stopped).
    """

    def __init__(self, reason: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.errors = errors or []

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "errors": self.errors}


@contextmanager
def _violations_only() -> Iterator[None]:
    """The last resort: whatever validation raises leaves as a :class:`ContractViolation`."""
    try:
        yield
    except ContractViolation:
        raise
    except Exception as exc:  # noqa: BLE001 - that is the point: no input may raise anything else
        log.exception("event validation failed unexpectedly; the input is refused as internal_error")
        raise ContractViolation(
            "internal_error", f"validation failed with {type(exc).__name__} (a bug; the input is refused)"
        ) from None


def family_of(event_type: Any) -> Family:
    try:
        return FAMILY_BY_EVENT_TYPE[event_type]
    except (KeyError, TypeError):
        raise ContractViolation(
            "unknown_event_type",
            f"event_type {_preview(event_type)} is none of {sorted(FAMILY_BY_EVENT_TYPE)}",
            [{"loc": "event_type", "type": "unknown_event_type", "msg": "unknown event_type"}],
        ) from None


_MAX_ERRORS = 20  # errors kept per event: bounded dead-letter headers and 422 bodies


def _pydantic_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": ".".join(_text(p, 128) if isinstance(p, str) else _preview(p) for p in err["loc"])[:256]
            or "(event)",
            "type": err["type"],
            "msg": err["msg"].removeprefix("Value error, ")[:256],
        }
        for err in exc.errors(include_url=False, include_input=False)[:_MAX_ERRORS]
    ]


def validate_event(obj: Any, family: Family | None = None) -> Event:
    """Validate a decoded JSON value; the family comes from the topic, or from ``event_type``.

    Raises only :class:`ContractViolation`, whatever ``obj`` is."""
    with _violations_only():
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
    """Bytes as read from ``topic`` → a valid event, or :class:`ContractViolation` with the reason
    (and nothing else, whatever the bytes)."""
    with _violations_only():
        family = FAMILY_BY_TOPIC.get(topic)
        if family is None:
            raise ContractViolation("unknown_topic", f"{_preview(topic)} is not an event topic")
        if value is None:
            raise ContractViolation("invalid_json", "empty record value (tombstone)")
        if len(value) > max_bytes:
            raise ContractViolation("payload_too_large", f"{len(value)} bytes > limit of {max_bytes}")
        event = validate_event(parse_json(value), family)
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
    "previous_id": "string",  # alias: the id merged into customer_id
    "traits": "string",  # JSON text of an identify's normalised traits
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
        "previous_id": get("previous_id"),
        "traits": None if get("traits") is None else orjson.dumps(get("traits")).decode(),
    }
