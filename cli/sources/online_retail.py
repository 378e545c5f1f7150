"""Replay of the UCI Online Retail dataset (2010-12-01 .. 2011-12-09) as transaction events.

:func:`load_events` reads the file as published — ``online_retail.parquet`` from ``shared/datasets``,
UCI's ``Online Retail.xlsx``, or a CSV export with the same header — and turns its invoice lines into
JSON-ready event dicts in the contract's shape (:mod:`lambdalytics.schemas.events`), sorted by event
time. It never talks to Kafka: the caller hands the list to ``send_paced``, whose producer validates
every event and dead-letters the invalid ones with their reason. The returned :class:`RetailSummary`
says beforehand which events that will be (the same ``validate_event`` is run over all of them).

Mapping, one invoice (all lines sharing an ``InvoiceNo``) → events:

- **Normal invoice** (digits) → ``order_placed`` and ``order_paid`` at the same ``event_time``
  (placed first), ``order_id`` = InvoiceNo. ``order_paid.amount`` = Σ Quantity × UnitPrice, computed
  exactly (prices become ``Decimal`` via their decimal text, sums are taken in integer units), emitted
  as an int if integral, else as the float whose shortest repr is that decimal — what the contract
  parses back to the exact value. Currency ``GBP``.
- **Cancellation** (``C…``) → one ``refund`` with amount = −Σ Quantity × UnitPrice, order_id = the C
  number. Every C line in the file has a negative quantity and a price ≥ 0, so this is |Σ|; a C invoice
  with a positive net total would give a negative refund and be dead-lettered rather than sign-flipped.
- **Adjustments** (``A…``, 3 one-line "Adjust bad debt" invoices) are mapped like normal invoices, with
  no fix-up: ``A563185`` (+11,062.06) is an ordinary placed + paid order, while ``A563186`` and
  ``A563187`` (unit price −11,062.06) give an ``order_paid`` with a negative amount, which the contract
  rejects (``contract_violation``, ``amount: must be >= 0``) and the producer dead-letters. Their
  ``order_placed`` carries no amount and is valid, so those 2 orders show up as placed but never paid.
- **Stock write-offs** (non-C invoices with negative quantities, price 0, no customer; 2,102 non-C
  invoices total exactly 0) are normal invoices with amount 0, which is valid.
- ``event_time`` = the invoice's *earliest* ``InvoiceDate`` read as Europe/London wall-clock time
  (``zoneinfo``, so GMT in winter and BST in summer) → UTC epoch ms. 43 invoices have lines stamped in
  two consecutive minutes; the invoice is timed at its first. Ambiguous/skipped local times follow
  PEP 495 with ``fold=0`` (the earlier offset). None occur in the data (all lines are 06:00-20:59).
- **Order**: by ``event_time``, ties broken by the position of the invoice's first line in the file
  (the published order), then placed before paid: a stable, deterministic order.
- **Customer**: ``CustomerID`` as its integer string (``17850.0`` → ``"17850"``). An invoice without any
  CustomerID is a guest checkout with customer ``guest-<InvoiceNo>`` (one guest per invoice, since
  nothing links guest invoices). An invoice mixing lines with and without a CustomerID belongs to the
  known customer, and with several distinct CustomerIDs to the first in file order. Neither happens in
  the file (0 mixed, 0 multi-customer invoices: every invoice has exactly one or no CustomerID); the
  summary counts both.
- **Tenant**: ``tenant_by="none"`` → ``online-retail``. ``tenant_by="country"`` → one tenant per
  Country, ``online-retail.<slug>``: ASCII-folded, lower-cased, runs of other characters → ``-``,
  at most 50 characters (``EIRE`` → ``online-retail.eire``, ``Channel Islands`` →
  ``online-retail.channel-islands``); a null or symbol-only country → ``online-retail.unspecified``, the
  same tenant as the ``Unspecified`` country. Names differing only in case, accents or punctuation share
  a tenant by design. The 38 countries give 38 tenants. An invoice whose lines name several countries
  would go to the first non-null one in file order; none does (0 multi-country invoices).
- ``event_id`` = ``uci-online-retail:<tenant>:<InvoiceNo>:<event_type>``: replaying twice is idempotent.
- ``properties`` = ``{"country": Country}`` (omitted when the country is null), so the country survives
  ``tenant_by="none"``.

Input: Parquet (typed as in ``shared``), XLSX (first sheet; numbers, floats and datetimes as Excel keeps
them) or CSV (UTF-8, else Latin-1) with the UCI header. ``InvoiceDate`` strings may be ``M/D/YYYY H:MM``
as in UCI's CSV (read day-first only if some first field exceeds 12 and no second one does) or ISO
``YYYY-MM-DD HH:MM:SS``. Lines without InvoiceNo, Quantity, InvoiceDate or UnitPrice, or with a
non-integer Quantity, make the load fail with ``ValueError`` (the published file has none).

Reading the whole file (541,909 lines, 25,900 invoices → 47,964 events) takes a few seconds: the
grouping and sums are vectorised with pandas; Python loops run per invoice or per distinct value only.
XLSX needs ``openpyxl`` (or ``python-calamine``, used when installed), which are not project dependencies.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lambdalytics.schemas.events import ContractViolation, validate_event

__all__ = [
    "CURRENCY",
    "SOURCE",
    "TENANT",
    "Rejection",
    "RetailSummary",
    "country_tenant",
    "load_events",
    "london_to_utc_ms",
    "read_lines",
]

SOURCE = "uci-online-retail"
TENANT = "online-retail"
CURRENCY = "GBP"
LONDON = ZoneInfo("Europe/London")
COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
_USED = ("InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
_EPOCH = datetime(1970, 1, 1)
_SLASH_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


# ---------------------------------------------------------------- small public helpers


def country_tenant(country: str | None) -> str:
    """The tenant id of a Country with ``tenant_by="country"``, e.g. ``online-retail.united-kingdom``."""
    folded = unicodedata.normalize("NFKD", country or "").encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:50].strip("-")
    return f"{TENANT}.{slug or 'unspecified'}"


def london_to_utc_ms(local: datetime) -> int:
    """A naive Europe/London wall-clock time → UTC epoch milliseconds (PEP 495, ``fold`` as given)."""
    offset = local.replace(tzinfo=LONDON).utcoffset()
    assert offset is not None
    delta = local.replace(tzinfo=None) - _EPOCH - offset
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# ---------------------------------------------------------------- summary


@dataclass(frozen=True)
class Rejection:
    """An event the contract rejects (the producer will dead-letter it with this reason)."""

    event_id: str
    order_id: str
    event_type: str
    reason: str
    message: str


@dataclass
class RetailSummary:
    """What :func:`load_events` read and produced. Money is exact ``Decimal`` (GBP)."""

    source: str
    tenant_by: str
    lines: int = 0
    invoices: int = 0
    events: Counter[str] = field(default_factory=Counter)  # per event_type, rejected ones included
    guest_invoices: int = 0  # no CustomerID on any line → customer guest-<InvoiceNo>
    cancellation_invoices: int = 0  # C…
    adjustment_invoices: int = 0  # A…
    multi_time_invoices: int = 0  # lines in more than one InvoiceDate (timed at the earliest)
    mixed_customer_invoices: int = 0  # lines with and without CustomerID
    multi_customer_invoices: int = 0  # several distinct CustomerIDs
    multi_country_invoices: int = 0  # several distinct Countries
    tenants: Counter[str] = field(default_factory=Counter)  # invoices per tenant
    source_total: Decimal = Decimal(0)  # Σ Quantity × UnitPrice over every line of the file
    rejected_source_total: Decimal = Decimal(0)  # the same Σ over invoices with a rejected event
    paid_total: Decimal = Decimal(0)  # Σ amount of the order_paid events the contract accepts
    refund_total: Decimal = Decimal(0)  # Σ amount of the refund events the contract accepts
    rejected: Counter[str] = field(default_factory=Counter)  # reason code → events
    rejections: list[Rejection] = field(default_factory=list)
    load_seconds: float = 0.0

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def net_total(self) -> Decimal:
        """Accepted payments minus accepted refunds; equals ``source_total - rejected_source_total``."""
        return self.paid_total - self.refund_total

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (money as strings, to stay exact)."""
        return {
            "source": self.source,
            "tenant_by": self.tenant_by,
            "lines": self.lines,
            "invoices": self.invoices,
            "events": dict(sorted(self.events.items())),
            "total_events": self.total_events,
            "guest_invoices": self.guest_invoices,
            "cancellation_invoices": self.cancellation_invoices,
            "adjustment_invoices": self.adjustment_invoices,
            "multi_time_invoices": self.multi_time_invoices,
            "mixed_customer_invoices": self.mixed_customer_invoices,
            "multi_customer_invoices": self.multi_customer_invoices,
            "multi_country_invoices": self.multi_country_invoices,
            "tenants": len(self.tenants),
            "source_total": str(self.source_total),
            "rejected_source_total": str(self.rejected_source_total),
            "paid_total": str(self.paid_total),
            "refund_total": str(self.refund_total),
            "net_total": str(self.net_total),
            "rejected": dict(sorted(self.rejected.items())),
            "rejections": [r.__dict__ for r in self.rejections],
            "load_seconds": round(self.load_seconds, 3),
        }


# ---------------------------------------------------------------- reading


def _wanted(column: Any) -> bool:
    return column in _USED


def _read_raw(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        names = set(pq.read_schema(path).names)
        return pd.read_parquet(path, columns=[c for c in _USED if c in names])
    if re.search(r"\.csv(\.(gz|bz2|zip|xz|zst))?$", name):
        kwargs: dict[str, Any] = {"usecols": _wanted, "dtype": str, "keep_default_na": False}
        try:
            return pd.read_csv(path, encoding="utf-8", **kwargs)
        except UnicodeDecodeError:  # the widely shared UCI CSV export is ISO-8859-1
            return pd.read_csv(path, encoding="latin-1", **kwargs)
    if name.endswith((".xlsx", ".xlsm")):
        try:
            import python_calamine  # noqa: F401

            engine = "calamine"
        except ImportError:
            try:
                import openpyxl  # noqa: F401
            except ImportError:
                raise ImportError(
                    f"reading {path.name} needs openpyxl (or python-calamine): pip install openpyxl"
                ) from None
            engine = "openpyxl"
        return pd.read_excel(path, sheet_name=0, usecols=_wanted, engine=engine)
    raise ValueError(f"{path}: unsupported file type (expected .parquet, .csv or .xlsx)")


def _per_unique(series: pd.Series, fn: Any) -> pd.Series:
    """``fn`` applied once per distinct non-null value (vectorised back by code); null → None."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    values = np.empty(len(uniques) + 1, dtype=object)
    values[:-1] = [fn(u) for u in uniques]
    values[-1] = None  # code -1 (null) picks the last slot
    return pd.Series(values[codes], index=series.index, dtype=object)


def _clean_text(value: Any) -> str | None:
    """A cell → stripped string, None if blank; integral floats lose their ``.0`` (Excel numbers)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _customer_id(value: Any) -> str | None:
    """CustomerID as float (17850.0), int or string ("17850", "17850.0") → "17850"."""
    text = _clean_text(value)
    if text is not None and text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text


def _price(value: Any) -> Decimal | None:
    """UnitPrice → exact Decimal: a float via its shortest repr (the published decimal text)."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, float | np.floating):
        price = Decimal(repr(float(value)))
    elif isinstance(value, int | np.integer):
        price = Decimal(int(value))
    else:
        try:
            price = Decimal(str(value).strip())
        except ArithmeticError:
            raise ValueError(f"UnitPrice {str(value)[:40]!r} is not a number") from None
    if not price.is_finite():
        raise ValueError(f"UnitPrice {value!r} is not a finite number")
    return price


def _parse_dates(series: pd.Series) -> pd.Series:
    """InvoiceDate → naive datetime64 (UK wall clock), from datetimes or the strings of the exports."""
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is not None:  # already absolute: express it as London time
            series = series.dt.tz_convert(LONDON).dt.tz_localize(None)
        return series.astype("datetime64[us]")
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = pd.Series([str(u).strip() for u in uniques], dtype=object)
    parts = texts.str.extract(_SLASH_DATE)
    slash = parts[0].notna()
    a = parts[0].astype(float)
    b = parts[1].astype(float)
    # UCI's CSV writes month/day ("12/1/2010 8:26"); switch to day/month only if the data says so
    day_first = bool((a > 12).any()) and not bool((b > 12).any())
    values = np.empty(len(uniques) + 1, dtype="datetime64[us]")
    values[-1] = np.datetime64("NaT")
    for i, text in enumerate(texts):
        if not text:
            values[i] = np.datetime64("NaT")
            continue
        if slash[i]:
            p = parts.iloc[i]
            first, second = int(p[0]), int(p[1])
            month, day = (second, first) if day_first else (first, second)
            seconds = int(p[5]) if isinstance(p[5], str) else 0
            dt = datetime(int(p[2]), month, day, int(p[3]), int(p[4]), seconds)
        else:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"InvoiceDate {text[:40]!r} is neither 'M/D/YYYY H:MM' nor ISO") from None
            if dt.tzinfo is not None:
                dt = dt.astimezone(LONDON).replace(tzinfo=None)
        values[i] = np.datetime64(dt, "us")
    return pd.Series(values[codes], index=series.index)


def read_lines(path: Path | str) -> pd.DataFrame:
    """The file's invoice lines, normalised: ``invoice``, ``quantity`` (int64), ``local_time`` (naive
    datetime64, UK wall clock), ``price`` (exact ``Decimal``), ``customer``, ``country`` (str or None)
    and ``line`` (0-based position in the file). Raises ``ValueError`` on a malformed file."""
    path = Path(path)
    raw = _read_raw(path)
    missing = [c for c in _USED if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected the UCI header {list(COLUMNS)}")
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    out["invoice"] = _per_unique(raw["InvoiceNo"], _clean_text)
    quantity = pd.to_numeric(raw["Quantity"], errors="coerce")
    out["local_time"] = _parse_dates(raw["InvoiceDate"])
    out["price"] = _per_unique(raw["UnitPrice"], _price)
    bad = out["invoice"].isna() | quantity.isna() | out["local_time"].isna() | out["price"].isna()
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy())[:5] + 2).tolist()  # +2: header, 1-based
        raise ValueError(
            f"{path}: {int(bad.sum())} line(s) without InvoiceNo, Quantity, InvoiceDate or "
            f"UnitPrice (file lines {rows}…)"
        )
    if (quantity != quantity.round()).any():
        raise ValueError(f"{path}: non-integer Quantity")
    out["quantity"] = quantity.astype("int64")
    out["customer"] = _per_unique(raw["CustomerID"], _customer_id)
    out["country"] = _per_unique(raw["Country"], _clean_text)
    out["line"] = np.arange(len(raw), dtype=np.int64)
    return out


# ---------------------------------------------------------------- events


def _json_number(amount: Decimal) -> int | float:
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _invoices(lines: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per invoice in event-time order, with its exact total in integer units of 10^-scale."""
    decimals = set(lines["price"].tolist())
    scale = max([0, *(-int(p.as_tuple().exponent) for p in decimals)])
    units_of = {p: int(p.scaleb(scale)) for p in decimals}
    units = lines["price"].map(units_of)
    sizes = lines.groupby("invoice", sort=False).size()
    bound = int(lines["quantity"].abs().max()) * max(abs(u) for u in units_of.values()) * int(sizes.max())
    if bound < 2**62:  # fast path: int64 sums cannot overflow
        line_units = lines["quantity"].to_numpy() * units.to_numpy(dtype=np.int64)
    else:  # Python ints: exact at any magnitude
        line_units = np.array(
            [q * u for q, u in zip(lines["quantity"].tolist(), units.tolist(), strict=True)], dtype=object
        )
    work = lines[["invoice", "local_time", "customer", "country", "line"]].assign(
        units=line_units, guest_line=lines["customer"].isna()
    )
    grouped = work.groupby("invoice", sort=False)
    inv = grouped.agg(
        first_line=("line", "min"),
        local_time=("local_time", "min"),
        times=("local_time", "nunique"),
        units=("units", "sum"),
        customer=("customer", "first"),  # first non-null in file order
        customers=("customer", "nunique"),
        guest_lines=("guest_line", "sum"),
        country=("country", "first"),
        countries=("country", "nunique"),
    ).reset_index()
    utc_ms = {t: london_to_utc_ms(pd.Timestamp(t).to_pydatetime()) for t in pd.unique(inv["local_time"])}
    inv["event_time"] = inv["local_time"].map(utc_ms).astype("int64")
    inv = inv.sort_values(["event_time", "first_line"], kind="stable", ignore_index=True)
    return inv, scale


def load_events(
    path: Path, tenant_by: Literal["none", "country"] = "none"
) -> tuple[list[dict[str, Any]], RetailSummary]:
    """The dataset at ``path`` as transaction event dicts in event-time order, and a summary.

    Events the contract rejects are kept in the list (the producer dead-letters them with the reason);
    the summary lists them.
    """
    if tenant_by not in ("none", "country"):
        raise ValueError(f"tenant_by must be 'none' or 'country', got {tenant_by!r}")
    started = time.perf_counter()
    path = Path(path)
    lines = read_lines(path)
    inv, scale = _invoices(lines)
    summary = RetailSummary(source=str(path), tenant_by=tenant_by, lines=len(lines), invoices=len(inv))

    def money(units: Any) -> Decimal:
        return Decimal(int(units)).scaleb(-scale)

    events: list[dict[str, Any]] = []
    totals: dict[str, Decimal] = {}
    tenant_of: dict[Any, str] = {}
    columns = (
        "invoice",
        "event_time",
        "units",
        "customer",
        "country",
        "guest_lines",
        "customers",
        "countries",
        "times",
    )
    for invoice, event_time, units, customer, country, guest_lines, customers, countries, times in zip(
        *(inv[c].tolist() for c in columns), strict=True
    ):
        total = money(units)
        totals[invoice] = total
        summary.source_total += total
        if customer is None or customer != customer:  # None or NaN
            customer = f"guest-{invoice}"
            summary.guest_invoices += 1
        elif guest_lines:
            summary.mixed_customer_invoices += 1
        summary.multi_customer_invoices += customers > 1
        summary.multi_country_invoices += countries > 1
        summary.multi_time_invoices += times > 1
        if country != country:
            country = None
        if tenant_by == "none":
            tenant = TENANT
        elif (tenant := tenant_of.get(country)) is None:
            tenant = tenant_of[country] = country_tenant(country)
        summary.tenants[tenant] += 1
        base: dict[str, Any] = {
            "tenant_id": tenant,
            "customer_id": customer,
            "event_time": event_time,
            "order_id": invoice,
        }
        if invoice.upper().startswith("C"):
            summary.cancellation_invoices += 1
            kinds: list[tuple[str, Decimal | None]] = [("refund", -total + Decimal(0))]
        else:
            summary.adjustment_invoices += invoice.upper().startswith("A")
            kinds = [("order_placed", None), ("order_paid", total)]
        for event_type, amount in kinds:
            event_id = f"{SOURCE}:{tenant}:{invoice}:{event_type}"
            event = {"event_id": event_id, "event_type": event_type, **base}
            if amount is not None:
                event["amount"] = _json_number(amount)
                event["currency"] = CURRENCY
            if country is not None:
                event["properties"] = {"country": country}  # a fresh dict per event
            events.append(event)

    rejected_invoices: set[str] = set()
    for event in events:
        summary.events[event["event_type"]] += 1
        try:
            valid = validate_event(event)
        except ContractViolation as violation:
            summary.rejected[violation.reason] += 1
            summary.rejections.append(
                Rejection(
                    event["event_id"],
                    event["order_id"],
                    event["event_type"],
                    violation.reason,
                    violation.message,
                )
            )
            rejected_invoices.add(event["order_id"])
            continue
        if valid.event_type == "order_paid":
            summary.paid_total += valid.amount
        elif valid.event_type == "refund":
            summary.refund_total += valid.amount
    summary.rejected_source_total = sum((totals[i] for i in sorted(rejected_invoices)), Decimal(0))
    summary.load_seconds = time.perf_counter() - started
    return events, summary
