"""UCI Online Retail replay: invoice lines → transaction events (fixture files and the shared dataset)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pandas as pd
import pytest

from lambdalytics.cli.sources.online_retail import (
    country_tenant,
    load_events,
    london_to_utc_ms,
    read_lines,
)
from lambdalytics.schemas.events import ContractViolation, validate_event

HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
# tests/sources/ → tests/ → repo root (/work/main) → /work, which holds shared/
DATASET_DIR = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "online_retail"
DATASET = DATASET_DIR / "online_retail.parquet"
TENANT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def utc_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000


# Rows as UCI's CSV export writes them (M/D/YYYY H:MM, CustomerID sometimes as a float), deliberately
# not in time order. Comments give the expected event time in UTC.
ROWS = [
    # BST started 2011-03-27 01:00 UTC and ended 2011-10-30 01:00 UTC
    ["573000", "22086", "PAPER CHAIN KIT", "2", "10/29/2011 10:00", "2.95", "14911.0", "EIRE"],  # 09:00Z
    ["573001", "22086", "PAPER CHAIN KIT", "1", "10/30/2011 10:00", "2.95", "14911.0", "EIRE"],  # 10:00Z
    ["549000", "21755", "LOVE BUILDING BLOCK", "1", "3/26/2011 10:00", "5.95", "12347", "Channel Islands"],
    ["549001", "21755", "LOVE BUILDING BLOCK", "2", "3/27/2011 10:00", "5.95", "12347", "RSA"],  # 09:00Z
    # normal invoice: 6 × 2.55 + 3 × 1.1 + 1 × 0.285 = 18.885 exactly (binary floats would drift)
    ["536365", "85123A", "WHITE HANGING HEART", "6", "12/1/2010 8:26", "2.55", "17850.0", "United Kingdom"],
    ["536365", "71053", "WHITE METAL LANTERN", "3", "12/1/2010 8:26", "1.1", "17850.0", "United Kingdom"],
    ["536365", "84406B", "CREAM CUPID HEARTS", "1", "12/1/2010 8:26", "0.285", "17850.0", "United Kingdom"],
    # cancellation of part of it: −(2.55 + 2 × 1.1) → refund 4.75
    ["C536379", "85123A", "WHITE HANGING HEART", "-1", "12/1/2010 9:41", "2.55", "17850.0", "United Kingdom"],
    ["C536379", "71053", "WHITE METAL LANTERN", "-2", "12/1/2010 9:41", "1.1", "17850.0", "United Kingdom"],
    # two invoices in the same minute, the higher number first in the file; the second spans 2 minutes
    ["536370", "22728", "ALARM CLOCK", "24", "12/1/2010 8:45", "3.75", "12583.0", "France"],
    ["536369", "21756", "BATH BUILDING BLOCK", "3", "12/1/2010 8:45", "5.95", "13047.0", "United Kingdom"],
    ["536369", "POST", "POSTAGE", "1", "12/1/2010 8:46", "18", "13047.0", "United Kingdom"],
    # guest checkout (no CustomerID), and a stock write-off (negative quantity, price 0, no customer)
    ["536544", "21773", "DECORATIVE SOAP DISH", "2", "12/1/2010 14:32", "2.51", "", "United Kingdom"],
    ["536544", "21774", "DECORATIVE CATS", "1", "12/1/2010 14:32", "2.51", "", "United Kingdom"],
    ["536414", "22139", "", "-56", "12/1/2010 11:52", "0", "", "Unspecified"],
    # bad-debt adjustments in BST (13:50Z..13:52Z)
    ["A563185", "B", "Adjust bad debt", "1", "8/12/2011 14:50", "11062.06", "", "United Kingdom"],
    ["A563186", "B", "Adjust bad debt", "1", "8/12/2011 14:51", "-11062.06", "", "United Kingdom"],
    ["A563187", "B", "Adjust bad debt", "1", "8/12/2011 14:52", "-11062.06", "", "European Community"],
]

# (event_type, order_id, customer_id, event_time, exact amount or None), in the order expected
EXPECTED = [
    ("order_placed", "536365", "17850", utc_ms(2010, 12, 1, 8, 26), None),
    ("order_paid", "536365", "17850", utc_ms(2010, 12, 1, 8, 26), Decimal("18.885")),
    ("order_placed", "536370", "12583", utc_ms(2010, 12, 1, 8, 45), None),
    ("order_paid", "536370", "12583", utc_ms(2010, 12, 1, 8, 45), Decimal("90")),
    ("order_placed", "536369", "13047", utc_ms(2010, 12, 1, 8, 45), None),
    ("order_paid", "536369", "13047", utc_ms(2010, 12, 1, 8, 45), Decimal("35.85")),
    ("refund", "C536379", "17850", utc_ms(2010, 12, 1, 9, 41), Decimal("4.75")),
    ("order_placed", "536414", "guest-536414", utc_ms(2010, 12, 1, 11, 52), None),
    ("order_paid", "536414", "guest-536414", utc_ms(2010, 12, 1, 11, 52), Decimal("0")),
    ("order_placed", "536544", "guest-536544", utc_ms(2010, 12, 1, 14, 32), None),
    ("order_paid", "536544", "guest-536544", utc_ms(2010, 12, 1, 14, 32), Decimal("7.53")),
    ("order_placed", "549000", "12347", utc_ms(2011, 3, 26, 10, 0), None),
    ("order_paid", "549000", "12347", utc_ms(2011, 3, 26, 10, 0), Decimal("5.95")),
    ("order_placed", "549001", "12347", utc_ms(2011, 3, 27, 9, 0), None),
    ("order_paid", "549001", "12347", utc_ms(2011, 3, 27, 9, 0), Decimal("11.9")),
    ("order_placed", "A563185", "guest-A563185", utc_ms(2011, 8, 12, 13, 50), None),
    ("order_paid", "A563185", "guest-A563185", utc_ms(2011, 8, 12, 13, 50), Decimal("11062.06")),
    ("order_placed", "A563186", "guest-A563186", utc_ms(2011, 8, 12, 13, 51), None),
    ("order_paid", "A563186", "guest-A563186", utc_ms(2011, 8, 12, 13, 51), Decimal("-11062.06")),
    ("order_placed", "A563187", "guest-A563187", utc_ms(2011, 8, 12, 13, 52), None),
    ("order_paid", "A563187", "guest-A563187", utc_ms(2011, 8, 12, 13, 52), Decimal("-11062.06")),
    ("order_placed", "573000", "14911", utc_ms(2011, 10, 29, 9, 0), None),
    ("order_paid", "573000", "14911", utc_ms(2011, 10, 29, 9, 0), Decimal("5.9")),
    ("order_placed", "573001", "14911", utc_ms(2011, 10, 30, 10, 0), None),
    ("order_paid", "573001", "14911", utc_ms(2011, 10, 30, 10, 0), Decimal("2.95")),
]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def iso_rows(rows: list[list[str]]) -> list[list[str]]:
    """The same rows with ISO dates and integer-string CustomerIDs (the other common export)."""
    out = []
    for row in rows:
        row = list(row)
        row[4] = datetime.strptime(row[4], "%m/%d/%Y %H:%M").strftime("%Y-%m-%d %H:%M:%S")
        row[6] = row[6].removesuffix(".0")
        out.append(row)
    return out


def as_frame(rows: list[list[str]]) -> pd.DataFrame:
    """The rows typed like the shared Parquet / the Excel workbook."""
    df = pd.DataFrame(iso_rows(rows), columns=HEADER)
    df["Quantity"] = df["Quantity"].astype("int32")
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"])
    df["UnitPrice"] = df["UnitPrice"].astype(float)
    df["CustomerID"] = df["CustomerID"].replace("", None)
    df["Description"] = df["Description"].replace("", None)
    return df


def exact(amount: float | int | None) -> Decimal | None:
    """A JSON amount as the contract reads it."""
    if amount is None:
        return None
    return Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)


def shape(event: dict) -> tuple:
    return (
        event["event_type"],
        event["order_id"],
        event["customer_id"],
        event["event_time"],
        exact(event.get("amount")),
    )


@pytest.fixture
def uci_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "Online Retail.csv", ROWS)


# ---------------------------------------------------------------- fixture tests


@pytest.mark.unit
def test_events_exact(uci_csv: Path) -> None:
    events, summary = load_events(uci_csv)
    assert [shape(e) for e in events] == EXPECTED
    for event in events:
        assert event["tenant_id"] == "online-retail"
        assert event["event_id"] == (
            f"uci-online-retail:online-retail:{event['order_id']}:{event['event_type']}"
        )
        assert isinstance(event["event_time"], int) and not isinstance(event["event_time"], bool)
        if event["event_type"] == "order_placed":
            assert "amount" not in event and "currency" not in event
        else:
            assert event["currency"] == "GBP"
    assert events[0]["properties"] == {"country": "United Kingdom"}
    assert len({e["event_id"] for e in events}) == len(events)
    assert summary.lines == len(ROWS)
    assert summary.invoices == 13
    assert summary.events == Counter(order_placed=12, order_paid=12, refund=1)
    assert summary.guest_invoices == 5
    assert summary.cancellation_invoices == 1
    assert summary.adjustment_invoices == 3
    assert summary.multi_time_invoices == 1
    assert (summary.mixed_customer_invoices, summary.multi_customer_invoices) == (0, 0)
    assert summary.multi_country_invoices == 0


@pytest.mark.unit
def test_amounts_parse_back_exactly(uci_csv: Path) -> None:
    events, _ = load_events(uci_csv)
    by_id = {e["event_id"]: e for e in events}
    paid = validate_event(by_id["uci-online-retail:online-retail:536365:order_paid"])
    assert paid.amount == Decimal("18.885")
    assert orjson.loads(paid.to_json())["amount"] == 18.885
    assert validate_event(by_id["uci-online-retail:online-retail:C536379:refund"]).amount == Decimal("4.75")
    zero = by_id["uci-online-retail:online-retail:536414:order_paid"]
    assert zero["amount"] == 0 and isinstance(zero["amount"], int)
    assert validate_event(zero).amount == Decimal(0)
    # the dicts are JSON-ready: a JSON round trip changes nothing
    assert orjson.loads(orjson.dumps(events)) == events


@pytest.mark.unit
def test_london_time_to_utc_across_bst() -> None:
    assert london_to_utc_ms(datetime(2011, 3, 26, 10, 0)) == utc_ms(2011, 3, 26, 10, 0)  # GMT
    assert london_to_utc_ms(datetime(2011, 3, 27, 10, 0)) == utc_ms(2011, 3, 27, 9, 0)  # BST
    assert london_to_utc_ms(datetime(2011, 10, 29, 10, 0)) == utc_ms(2011, 10, 29, 9, 0)  # BST
    assert london_to_utc_ms(datetime(2011, 10, 30, 10, 0)) == utc_ms(2011, 10, 30, 10, 0)  # GMT
    # the switch hours themselves (absent from the data): PEP 495 fold=0, the earlier offset
    assert london_to_utc_ms(datetime(2011, 10, 30, 1, 30)) == utc_ms(2011, 10, 30, 0, 30)  # first 01:30 (BST)
    assert london_to_utc_ms(datetime(2011, 10, 30, 1, 30, fold=1)) == utc_ms(2011, 10, 30, 1, 30)
    assert london_to_utc_ms(datetime(2011, 3, 27, 1, 30)) == utc_ms(2011, 3, 27, 1, 30)  # skipped hour


@pytest.mark.unit
def test_contract_rejects_exactly_the_negative_adjustments(uci_csv: Path) -> None:
    events, summary = load_events(uci_csv)
    rejected = []
    for event in events:
        try:
            validate_event(event)
        except ContractViolation as violation:
            rejected.append((event["order_id"], event["event_type"], violation.reason, violation.message))
    expected = [
        (inv, "order_paid", "contract_violation", "amount: must be >= 0") for inv in ("A563186", "A563187")
    ]
    assert rejected == expected
    assert [(r.order_id, r.event_type, r.reason, r.message) for r in summary.rejections] == expected
    assert summary.rejected == Counter(contract_violation=2)
    assert summary.total_rejected == 2
    # the rejected events stay in the list (the producer dead-letters them)
    assert len(events) == summary.total_events == 25
    # money: everything the file carries, minus what the rejected invoices carried
    assert summary.source_total == Decimal("18.885") - Decimal("4.75") + Decimal("90") + Decimal(
        "35.85"
    ) + Decimal("7.53") + Decimal("5.95") + Decimal("11.9") + Decimal("5.9") + Decimal("2.95") + Decimal(
        "11062.06"
    ) - 2 * Decimal("11062.06")
    assert summary.rejected_source_total == Decimal("-22124.12")
    assert summary.paid_total == Decimal("11241.025")
    assert summary.refund_total == Decimal("4.75")
    assert summary.net_total == summary.source_total - summary.rejected_source_total == Decimal("11236.275")


@pytest.mark.unit
def test_deterministic_and_format_independent(uci_csv: Path, tmp_path: Path) -> None:
    events, _ = load_events(uci_csv)
    again, _ = load_events(uci_csv)
    assert orjson.dumps(again) == orjson.dumps(events)
    iso, _ = load_events(write_csv(tmp_path / "iso.csv", iso_rows(ROWS)))
    assert iso == events
    as_frame(ROWS).to_parquet(tmp_path / "online_retail.parquet")
    parquet, _ = load_events(tmp_path / "online_retail.parquet")
    assert parquet == events


@pytest.mark.unit
def test_xlsx_as_uci_publishes_it(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl", reason="reading XLSX needs openpyxl (not a project dependency)")
    df = as_frame(ROWS)
    # in the workbook normal invoice numbers are numbers and CustomerID is a float column
    df["InvoiceNo"] = [int(v) if v.isdigit() else v for v in df["InvoiceNo"]]
    df["CustomerID"] = pd.to_numeric(df["CustomerID"]).astype(float)
    df.to_excel(tmp_path / "Online Retail.xlsx", sheet_name="Online Retail", index=False)
    events, _ = load_events(tmp_path / "Online Retail.xlsx")
    assert [shape(e) for e in events] == EXPECTED
    assert events == load_events(write_csv(tmp_path / "x.csv", ROWS))[0]


@pytest.mark.unit
def test_tenant_by_country(uci_csv: Path) -> None:
    events, summary = load_events(uci_csv, tenant_by="country")
    tenants = {e["order_id"]: e["tenant_id"] for e in events}
    assert tenants["536365"] == "online-retail.united-kingdom"
    assert tenants["573000"] == "online-retail.eire"
    assert tenants["549000"] == "online-retail.channel-islands"
    assert tenants["549001"] == "online-retail.rsa"
    assert tenants["536414"] == "online-retail.unspecified"
    assert tenants["A563187"] == "online-retail.european-community"
    assert tenants["536370"] == "online-retail.france"
    assert len(summary.tenants) == 7 and sum(summary.tenants.values()) == 13
    assert all(TENANT_RE.match(t) for t in summary.tenants)
    for event in events:
        assert (
            event["event_id"] == f"uci-online-retail:{event['tenant_id']}:{event['order_id']}:"
            f"{event['event_type']}"
        )
        assert len(event["event_id"]) <= 128
    # same rejections as without tenants
    assert [r.order_id for r in summary.rejections] == ["A563186", "A563187"]


@pytest.mark.unit
def test_country_tenant_slugs() -> None:
    names = [
        "United Kingdom",
        "EIRE",
        "Channel Islands",
        "RSA",
        "European Community",
        "Unspecified",
        "USA",
        "United Arab Emirates",
        "Czech Republic",
        "Hong Kong",
    ]
    ids = [country_tenant(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert all(TENANT_RE.match(i) for i in ids)
    assert country_tenant("Côte d'Ivoire") == "online-retail.cote-d-ivoire"
    assert country_tenant(None) == country_tenant("  ") == "online-retail.unspecified"
    assert TENANT_RE.match(country_tenant("x" * 200))


@pytest.mark.unit
def test_mixed_customer_and_multi_country_invoice(tmp_path: Path) -> None:
    rows = [
        ["540000", "1", "a", "1", "1/5/2011 9:00", "1.5", "", "France"],
        ["540000", "2", "b", "2", "1/5/2011 9:00", "2.25", "12345.0", "Germany"],
        ["540000", "3", "c", "1", "1/5/2011 9:00", "1", "54321.0", "France"],
    ]
    events, summary = load_events(write_csv(tmp_path / "mixed.csv", rows), tenant_by="country")
    assert {e["customer_id"] for e in events} == {"12345"}  # the first known customer, not a guest
    assert {e["tenant_id"] for e in events} == {"online-retail.france"}  # the first line's country
    assert events[1]["amount"] == 7
    assert (summary.mixed_customer_invoices, summary.multi_customer_invoices) == (1, 1)
    assert summary.multi_country_invoices == 1
    assert summary.guest_invoices == 0


@pytest.mark.unit
def test_csv_variants(tmp_path: Path) -> None:
    # Latin-1 encoded export, day-first dates (13/12 can only be day/month)
    rows = [
        ["536365", "1", "Gift Voucher £10", "1", "13/12/2010 8:26", "10", "17850", "United Kingdom"],
        ["536366", "1", "x", "1", "1/12/2010 8:28", "1", "17850", "United Kingdom"],
    ]
    events, _ = load_events(write_csv(tmp_path / "latin.csv", rows, encoding="latin-1"))
    times = {e["order_id"]: e["event_time"] for e in events}
    assert times == {"536366": utc_ms(2010, 12, 1, 8, 28), "536365": utc_ms(2010, 12, 13, 8, 26)}
    lines = read_lines(tmp_path / "latin.csv")
    assert lines["price"].tolist() == [Decimal("10"), Decimal("1")]


@pytest.mark.unit
def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tenant_by"):
        load_events(tmp_path / "x.csv", tenant_by="region")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported file type"):
        load_events(tmp_path / "x.json")
    bad = write_csv(tmp_path / "bad.csv", [["536365", "1", "x", "1", "", "1", "17850", "United Kingdom"]])
    with pytest.raises(ValueError, match="without InvoiceNo, Quantity, InvoiceDate or UnitPrice"):
        load_events(bad)
    (tmp_path / "cols.csv").write_text("InvoiceNo,Quantity\n1,1\n")
    with pytest.raises(ValueError, match="missing column"):
        load_events(tmp_path / "cols.csv")


# ---------------------------------------------------------------- the shared dataset


@pytest.fixture(scope="module")
def full() -> tuple[list[dict], object]:
    if not DATASET.exists():
        pytest.skip(f"shared dataset not found at {DATASET} (see shared/datasets/online_retail/SOURCE.md)")
    return load_events(DATASET)


@pytest.mark.dataset
def test_dataset_counts(full: tuple) -> None:
    events, summary = full
    assert summary.lines == 541_909
    assert summary.invoices == 25_900
    assert summary.events == Counter(order_placed=22_064, order_paid=22_064, refund=3_836)
    assert len(events) == 47_964
    assert summary.cancellation_invoices == 3_836
    assert summary.adjustment_invoices == 3
    assert summary.guest_invoices == 3_710
    # data facts behind the mapping decisions
    assert summary.mixed_customer_invoices == 0
    assert summary.multi_customer_invoices == 0
    assert summary.multi_country_invoices == 0
    assert summary.multi_time_invoices == 43
    assert len({e["event_id"] for e in events}) == len(events)
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    assert times[0] == utc_ms(2010, 12, 1, 8, 26) and times[-1] == utc_ms(2011, 12, 9, 12, 50)


@pytest.mark.dataset
def test_dataset_rejections_and_money(full: tuple) -> None:
    _, summary = full
    assert [(r.order_id, r.event_type, r.reason, r.message) for r in summary.rejections] == [
        ("A563186", "order_paid", "contract_violation", "amount: must be >= 0"),
        ("A563187", "order_paid", "contract_violation", "amount: must be >= 0"),
    ]
    # Σ Quantity × UnitPrice is 9,747,747.934 exactly (quoted rounded as 9,747,747.93); the two rejected
    # invoices carried −22,124.12, so the accepted payments minus refunds are 9,769,872.054
    assert summary.source_total == Decimal("9747747.934")
    assert summary.source_total.quantize(Decimal("0.01")) == Decimal("9747747.93")
    assert summary.rejected_source_total == Decimal("-22124.12")
    assert summary.paid_total == Decimal("10666684.544")
    assert summary.refund_total == Decimal("896812.49")
    assert summary.net_total == summary.source_total - summary.rejected_source_total
    assert summary.net_total == Decimal("9769872.054")
    assert summary.net_total.quantize(Decimal("0.01")) == Decimal("9769872.05")


@pytest.mark.dataset
def test_dataset_amounts_match_an_independent_decimal_sum(full: tuple) -> None:
    events, _ = full
    df = pd.read_parquet(DATASET, columns=["InvoiceNo", "Quantity", "UnitPrice"])
    price = {p: Decimal(repr(p)) for p in df["UnitPrice"].unique().tolist()}
    totals: dict[str, Decimal] = {}
    for invoice, qty, p in zip(
        df["InvoiceNo"].tolist(), df["Quantity"].tolist(), df["UnitPrice"].tolist(), strict=True
    ):
        totals[invoice] = totals.get(invoice, Decimal(0)) + qty * price[p]
    assert sum(totals.values()) == Decimal("9747747.934")
    for event in events:
        if event["event_type"] == "order_placed":
            continue
        expected = totals[event["order_id"]]
        if event["event_type"] == "refund":
            expected = -expected
        assert exact(event["amount"]) == expected, event["order_id"]


@pytest.mark.dataset
def test_dataset_tenant_by_country() -> None:
    if not DATASET.exists():
        pytest.skip(f"shared dataset not found at {DATASET}")
    events, summary = load_events(DATASET, tenant_by="country")
    assert len(summary.tenants) == 38
    assert sum(summary.tenants.values()) == 25_900
    assert all(TENANT_RE.match(t) for t in summary.tenants)
    assert {
        "online-retail.eire",
        "online-retail.channel-islands",
        "online-retail.rsa",
        "online-retail.european-community",
        "online-retail.unspecified",
        "online-retail.united-kingdom",
    } <= set(summary.tenants)
    countries = pd.read_parquet(DATASET, columns=["Country"])["Country"].unique().tolist()
    assert len(countries) == 38 and len({country_tenant(c) for c in countries}) == 38
    assert summary.total_rejected == 2
    assert max(len(e["event_id"]) for e in events) <= 128
