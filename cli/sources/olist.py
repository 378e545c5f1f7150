"""Replay of the Olist Brazilian e-commerce dataset (Kaggle ``olistbr/brazilian-ecommerce``, 2016-2018).

Olist is a marketplace: each order line is sold by one of ~3,000 independent sellers. They are the
customers of an analytics product, so **each seller is a tenant** (``olist-<seller_id>``), and an order
with items from two sellers becomes one order in each seller's tenant (same ``order_id``). A tenant must
only see its own money, so ``order_paid.amount`` is that seller's share, Σ (price + freight_value) of its
items. ``payment_value`` is not used for amounts: it is per *order* (all sellers together, with voucher
and instalment splits), so the payments table only decides whether an order was paid at all.

:func:`load_events` reads the published tables from one folder and returns JSON-ready event dicts in
the contract's shape (:mod:`lambdalytics.schemas.events`), sorted by event time. It never talks to
Kafka: the caller hands the list to ``send_paced``. Mapping, per (order, seller) pair of order_items:

- ``customer_id`` = the order customer's ``customer_unique_id`` (Olist's ``customer_id`` is per order).
- ``order_placed`` at ``order_purchase_timestamp``, ``promised_at`` = ``order_estimated_delivery_date``.
- ``order_paid`` at ``order_approved_at``, currency BRL, only if the order is approved *and* has at least
  one payment row (a row with ``payment_value`` 0, e.g. a voucher, still counts as paid).
- ``order_delivered`` at ``order_delivered_customer_date`` when set (whatever the status).
- ``order_cancelled`` if ``order_status == "canceled"``, at the latest known timestamp of the order
  (purchase, approval, carrier hand-over, delivery): Olist has no cancel time, and this keeps the
  cancellation after every other event of the order. Other statuses (``unavailable`` …) are not mapped.
- Reviews → one ``csat_submitted`` per (review, seller of the reviewed order) at
  ``review_creation_date``, ``ticket_id`` = review_id, ``score`` = review_score, ``properties.order_id``.
  Olist reuses a review_id for several orders of one purchase; one answer counts once per seller: the
  row with the earliest (creation time, order_id) is kept, the others are counted as skipped.

Times are Brazil wall-clock without offset; they are read as ``America/Sao_Paulo`` (PEP 495 ``fold=0``)
and emitted as UTC epoch ms. Brazil had DST until 2019, and ``fold=0`` makes the nonexistent midnights
of DST start days (e.g. 2017-10-15 00:00, common in the date-only columns) the first instant of that day
(03:00Z), and the repeated hour before DST ends (e.g. 2018-02-17 23:30) its first occurrence (-02:00).
``event_id`` = ``olist:<event_type>:<order_id>:<seller_id>`` (csat: ``olist:csat:<review_id>:<seller_id>``),
so a replay is idempotent; ties in time are broken by event type (placed < paid < delivered <
cancelled < csat), then event_id, so the output does not depend on row order.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow.parquet as pq

from lambdalytics.schemas.events import TENANT_ID_PATTERN, ContractViolation, validate_event

__all__ = [
    "CURRENCY",
    "OPTIONAL_TABLES",
    "REQUIRED_TABLES",
    "SAO_PAULO",
    "SOURCE",
    "TABLES",
    "OlistSummary",
    "load_events",
    "sao_paulo_to_utc_ms",
    "table_files",
    "tenant_of",
]

SOURCE = "olist"
CURRENCY = "BRL"
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
KAGGLE = "https://www.kaggle.com/datasets/olistbr/brazilian-ecommerce"

TABLES: dict[str, str] = {
    "orders": "olist_orders_dataset",
    "customers": "olist_customers_dataset",
    "items": "olist_order_items_dataset",
    "payments": "olist_order_payments_dataset",
    "reviews": "olist_order_reviews_dataset",
    "sellers": "olist_sellers_dataset",
    "products": "olist_products_dataset",
}
"""Table → file stem; each file is ``<stem>.csv`` (preferred) or ``<stem>.parquet``."""
REQUIRED_TABLES = ("orders", "customers", "items", "payments", "reviews")
OPTIONAL_TABLES = ("sellers",)  # read when present, to count items of sellers it does not list
_COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": (
        "order_id",
        "customer_id",
        "order_status",
        "order_purchase_timestamp",
        "order_approved_at",
        "order_delivered_carrier_date",
        "order_delivered_customer_date",
        "order_estimated_delivery_date",
    ),
    "customers": ("customer_id", "customer_unique_id"),
    "items": ("order_id", "seller_id", "price", "freight_value"),
    "payments": ("order_id",),
    "reviews": ("review_id", "order_id", "review_score", "review_creation_date"),
    "sellers": ("seller_id",),
}
_TENANT = re.compile(TENANT_ID_PATTERN)
_RANK = {"order_placed": 0, "order_paid": 1, "order_delivered": 2, "order_cancelled": 3, "csat_submitted": 4}
_EPOCH = datetime(1970, 1, 1)
_CENT = Decimal("0.01")


# ---------------------------------------------------------------- small public helpers


def tenant_of(seller_id: str) -> str | None:
    """``olist-<seller_id>``, or None if that is not a valid tenant id (``[A-Za-z0-9_.-]{1,64}``)."""
    tenant = f"{SOURCE}-{seller_id}"
    return tenant if _TENANT.fullmatch(tenant) else None


def sao_paulo_to_utc_ms(value: datetime) -> int:
    """A naive São Paulo wall-clock time (``fold=0``; aware times are taken as they are) → UTC epoch ms."""
    if value.tzinfo is not None:
        delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    else:
        offset = value.replace(tzinfo=SAO_PAULO, fold=0).utcoffset()
        assert offset is not None
        delta = value - _EPOCH - offset
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def table_files(path: Path | str) -> dict[str, Path]:
    """The file of each table found in the folder ``path`` (CSV preferred over Parquet, per table).

    Raises ``FileNotFoundError`` naming every missing required table file.
    """
    path = Path(path)
    found: dict[str, Path] = {}
    for table, stem in TABLES.items():
        for suffix in (".csv", ".parquet"):
            if (file := path / f"{stem}{suffix}").is_file():
                found[table] = file
                break
    missing = [f"{TABLES[t]}.csv" for t in REQUIRED_TABLES if t not in found]
    if missing:
        raise FileNotFoundError(
            f"{path}: missing Olist table(s) {', '.join(missing)} (or the same names with .parquet). "
            f"The dataset is downloadable from Kaggle, olistbr/brazilian-ecommerce: {KAGGLE}"
        )
    return found


# ---------------------------------------------------------------- summary


@dataclass
class OlistSummary:
    """What :func:`load_events` read and produced.

    ``skipped`` counts, per reason, source rows (or, for the ``order_paid_*`` reasons, orders) that gave
    no event: ``order_null_purchase_timestamp``, ``order_unknown_customer``, ``order_without_items``,
    ``order_without_id``, ``order_duplicate_id``, ``order_paid_not_approved``, ``order_paid_no_payment_row``,
    ``item_unknown_order``, ``item_without_seller``, ``item_invalid_tenant``, ``payment_unknown_order``,
    ``review_unknown_order``, ``review_of_unmapped_order``, ``review_null_creation_date``,
    ``review_bad_score``, ``review_without_id``, and ``review_duplicate_for_seller`` (per seller).
    """

    source: str
    files: dict[str, str] = field(default_factory=dict)  # table → file name used
    rows: dict[str, int] = field(default_factory=dict)  # table → rows read
    orders_mapped: int = 0  # orders with at least one event
    order_sellers: int = 0  # (order, seller) pairs, i.e. orders across tenants
    tenants: Counter[str] = field(default_factory=Counter)  # tenant → orders
    events: Counter[str] = field(default_factory=Counter)  # event_type → events emitted
    skipped: Counter[str] = field(default_factory=Counter)
    items_unlisted_seller: int = 0  # items whose seller the sellers table lacks (still emitted)
    paid_total: Decimal = Decimal(0)  # Σ order_paid amounts (BRL)
    rejected: Counter[str] = field(default_factory=Counter)  # contract reason → events (expected empty)
    load_seconds: float = 0.0

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (money as a string, to stay exact)."""
        return {
            "source": self.source,
            "files": dict(self.files),
            "rows": dict(self.rows),
            "orders_mapped": self.orders_mapped,
            "order_sellers": self.order_sellers,
            "tenants": len(self.tenants),
            "events": dict(sorted(self.events.items())),
            "total_events": self.total_events,
            "skipped": dict(sorted(self.skipped.items())),
            "items_unlisted_seller": self.items_unlisted_seller,
            "paid_total": str(self.paid_total),
            "rejected": dict(sorted(self.rejected.items())),
            "load_seconds": round(self.load_seconds, 3),
        }


# ---------------------------------------------------------------- reading


def _read_table(file: Path, table: str) -> pd.DataFrame:
    wanted = _COLUMNS[table]
    if file.suffix == ".parquet":
        names = set(pq.read_schema(file).names)
        frame = pd.read_parquet(file, columns=[c for c in wanted if c in names])
    else:  # Olist quotes values that begin with a digit; every column is read as text, zeros kept
        frame = pd.read_csv(
            file, dtype=str, keep_default_na=False, encoding="utf-8-sig", usecols=lambda c: c in wanted
        )
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(f"{file}: missing column(s) {missing}; expected Olist's header with {list(wanted)}")
    return frame


def _text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


class _Times:
    """Timestamp cells → UTC epoch ms, memoised per distinct value (the columns repeat a lot)."""

    def __init__(self) -> None:
        self._memo: dict[Any, int | None] = {}

    def __call__(self, value: Any) -> int | None:
        try:
            return self._memo[value]
        except KeyError:
            pass
        except TypeError:  # unhashable: not a timestamp cell
            raise ValueError(f"not a timestamp: {str(value)[:40]!r}") from None
        if isinstance(value, datetime):  # pandas Timestamp too (Parquet copies may be typed)
            local = None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()
            ms: int | None = None if local is None else sao_paulo_to_utc_ms(local)
        elif (text := _text(value)) is None:
            ms = None
        else:
            try:
                ms = sao_paulo_to_utc_ms(datetime.fromisoformat(text))
            except ValueError:
                raise ValueError(f"not a 'YYYY-MM-DD HH:MM:SS' timestamp: {text[:40]!r}") from None
        self._memo[value] = ms
        return ms


def _money(value: Any) -> Decimal:
    try:
        # a float's shortest repr is the published decimal text
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return amount


def _score(value: Any) -> int | None:
    text = _text(value)
    try:
        score = int(float(text)) if text is not None and float(text).is_integer() else None
    except ValueError:
        return None
    return score if score is not None and 1 <= score <= 5 else None


def _json_number(amount: Decimal) -> int | float:
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _order_event(event_type: str, at: int, order_id: str, seller: str, customer: str) -> dict[str, Any]:
    return {
        "event_id": f"{SOURCE}:{event_type}:{order_id}:{seller}",
        "tenant_id": f"{SOURCE}-{seller}",
        "customer_id": customer,
        "event_type": event_type,
        "event_time": at,
        "order_id": order_id,
    }


class _Order(NamedTuple):
    customer: str | None  # Olist's per-order customer_id
    status: str | None
    purchase: int | None
    approved: int | None
    carrier: int | None
    delivered: int | None
    estimated: int | None


# ---------------------------------------------------------------- events


def load_events(path: Path | str, *, check: bool = True) -> tuple[list[dict[str, Any]], OlistSummary]:
    """The dataset in the folder ``path`` as event dicts in event-time order, and a summary.

    With ``check``, every event is also run through ``validate_event`` and failures are counted in
    ``summary.rejected`` (they stay in the list: the producer dead-letters them with the reason).
    """
    started = time.perf_counter()
    files = table_files(path)
    summary = OlistSummary(source=str(path))
    frames: dict[str, pd.DataFrame] = {}
    for table in (*REQUIRED_TABLES, *OPTIONAL_TABLES):
        if table in files:
            frames[table] = _read_table(files[table], table)
            summary.files[table] = files[table].name
            summary.rows[table] = len(frames[table])
    cols = {t: [f[c].tolist() for c in _COLUMNS[t]] for t, f in frames.items()}
    to_ms = _Times()
    skipped = summary.skipped

    orders: dict[str, _Order] = {}
    for n, (oid, cid, status, *stamps) in enumerate(zip(*cols["orders"], strict=True)):
        if (oid := _text(oid)) is None or oid in orders:  # a repeated id: the first row wins
            skipped["order_duplicate_id" if oid else "order_without_id"] += 1
            continue
        times = []
        for column, value in zip(_COLUMNS["orders"][3:], stamps, strict=True):
            try:
                times.append(to_ms(value))
            except ValueError as exc:
                raise ValueError(f"{files['orders'].name} row {n + 1} {column}: {exc}") from None
        orders[oid] = _Order(_text(cid), _text(status), *times)

    person = {
        c: u
        for c, u in ((_text(c), _text(u)) for c, u in zip(*cols["customers"], strict=True))
        if c is not None and u is not None
    }
    paid: set[str] = set()
    for (oid,) in zip(*cols["payments"], strict=True):
        if (oid := _text(oid)) in orders:
            paid.add(oid)
        else:
            skipped["payment_unknown_order"] += 1

    listed = {_text(s) for (s,) in zip(*cols["sellers"], strict=True)} if "sellers" in cols else None
    shares: dict[str, dict[str, Decimal]] = {}  # order → seller → Σ price + freight
    for n, (oid, seller, price, freight) in enumerate(zip(*cols["items"], strict=True)):
        oid, seller = _text(oid), _text(seller)
        if oid not in orders:
            skipped["item_unknown_order"] += 1
        elif seller is None:
            skipped["item_without_seller"] += 1
        elif tenant_of(seller) is None:
            skipped["item_invalid_tenant"] += 1
        else:
            try:
                line = _money(price) + _money(freight)
            except ValueError as exc:
                raise ValueError(f"{files['items'].name} row {n + 1} price/freight_value: {exc}") from None
            per_seller = shares.setdefault(oid, {})
            per_seller[seller] = per_seller.get(seller, Decimal(0)) + line
            summary.items_unlisted_seller += listed is not None and seller not in listed

    events: list[dict[str, Any]] = []
    mapped: dict[str, tuple[str, list[str]]] = {}  # order → (customer_unique_id, its sellers)
    for oid, order in orders.items():
        if order.purchase is None:
            skipped["order_null_purchase_timestamp"] += 1
            continue
        if (customer := person.get(order.customer or "")) is None:
            skipped["order_unknown_customer"] += 1
            continue
        if not (per_seller := shares.get(oid)):
            skipped["order_without_items"] += 1
            continue
        sellers = sorted(per_seller)
        mapped[oid] = (customer, sellers)
        summary.orders_mapped += 1
        pays = order.approved is not None and oid in paid
        if order.approved is None:
            skipped["order_paid_not_approved"] += 1
        elif not pays:
            skipped["order_paid_no_payment_row"] += 1
        cancelled_at = None
        if order.status == "canceled":
            known = (order.purchase, order.approved, order.carrier, order.delivered)
            cancelled_at = max(t for t in known if t is not None)
        for seller in sellers:
            summary.order_sellers += 1
            summary.tenants[f"{SOURCE}-{seller}"] += 1
            placed = _order_event("order_placed", order.purchase, oid, seller, customer)
            if order.estimated is not None:
                placed["promised_at"] = order.estimated
            events.append(placed)
            if pays:
                assert order.approved is not None
                amount = per_seller[seller].quantize(_CENT, rounding=ROUND_HALF_UP)
                summary.paid_total += amount
                events.append(
                    {
                        **_order_event("order_paid", order.approved, oid, seller, customer),
                        "amount": _json_number(amount),
                        "currency": CURRENCY,
                    }
                )
            if order.delivered is not None:
                events.append(_order_event("order_delivered", order.delivered, oid, seller, customer))
            if cancelled_at is not None:
                events.append(_order_event("order_cancelled", cancelled_at, oid, seller, customer))

    csat: dict[tuple[str, str], tuple[int, str, dict[str, Any]]] = {}  # (review, seller) → earliest
    for n, (rid, oid, score, created) in enumerate(zip(*cols["reviews"], strict=True)):
        rid, oid = _text(rid), _text(oid)
        if oid not in orders:
            skipped["review_unknown_order"] += 1
            continue
        if oid not in mapped:
            skipped["review_of_unmapped_order"] += 1
            continue
        if rid is None:
            skipped["review_without_id"] += 1
            continue
        try:
            at = to_ms(created)
        except ValueError as exc:
            raise ValueError(f"{files['reviews'].name} row {n + 1} review_creation_date: {exc}") from None
        if at is None:
            skipped["review_null_creation_date"] += 1
            continue
        if (stars := _score(score)) is None:
            skipped["review_bad_score"] += 1
            continue
        customer, sellers = mapped[oid]
        for seller in sellers:
            candidate = (
                at,
                oid,
                {
                    "event_id": f"{SOURCE}:csat:{rid}:{seller}",
                    "tenant_id": f"{SOURCE}-{seller}",
                    "customer_id": customer,
                    "event_type": "csat_submitted",
                    "event_time": at,
                    "ticket_id": rid,
                    "score": stars,
                    "properties": {"order_id": oid},
                },
            )
            if (kept := csat.get((rid, seller))) is None or candidate[:2] < kept[:2]:
                csat[(rid, seller)] = candidate
            if kept is not None:
                skipped["review_duplicate_for_seller"] += 1
    events.extend(e for _, _, e in csat.values())

    events.sort(key=lambda e: (e["event_time"], _RANK[e["event_type"]], e["event_id"]))
    for e in events:
        summary.events[e["event_type"]] += 1
        if check:
            try:
                validate_event(e)
            except ContractViolation as violation:
                summary.rejected[violation.reason] += 1
    summary.load_seconds = time.perf_counter() - started
    return events, summary
