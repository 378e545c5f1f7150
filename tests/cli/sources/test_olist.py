"""Olist replay: the published tables → transaction and support events (fixture files, shared tables)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lambdalytics.cli.sources.olist import (
    TABLES,
    load_events,
    sao_paulo_to_utc_ms,
    table_files,
    tenant_of,
)
from lambdalytics.schemas.events import validate_event

# tests/sources/ → tests/ → repo root (/work/main) → /work, which holds shared/
SHARED = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "olist"
TENANT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

HEADERS = {
    "orders": [
        "order_id",
        "customer_id",
        "order_status",
        "order_purchase_timestamp",
        "order_approved_at",
        "order_delivered_carrier_date",
        "order_delivered_customer_date",
        "order_estimated_delivery_date",
    ],
    "customers": [
        "customer_id",
        "customer_unique_id",
        "customer_zip_code_prefix",
        "customer_city",
        "customer_state",
    ],
    "items": [
        "order_id",
        "order_item_id",
        "product_id",
        "seller_id",
        "shipping_limit_date",
        "price",
        "freight_value",
    ],
    "payments": ["order_id", "payment_sequential", "payment_type", "payment_installments", "payment_value"],
    "reviews": [
        "review_id",
        "order_id",
        "review_score",
        "review_comment_title",
        "review_comment_message",
        "review_creation_date",
        "review_answer_timestamp",
    ],
    "sellers": ["seller_id", "seller_zip_code_prefix", "seller_city", "seller_state"],
}


def hex_id(name: str) -> str:
    """A 32-hex id like Olist's (about 60% of them start with a digit, which the CSVs quote)."""
    return hashlib.md5(name.encode()).hexdigest()


def utc_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000


def olist_csv(header: list[str], rows: list[list[str]]) -> str:
    """CSV as Olist publishes it: values beginning with a digit are quoted, empty cells are empty."""

    def cell(value: str) -> str:
        if value and (value[0].isdigit() or any(c in value for c in ',"\n')):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(",".join(cell(v) for v in row) + "\n" for row in [header, *rows])


S1, S2, S3 = hex_id("seller-1"), hex_id("seller-2"), hex_id("seller-3")
T1, T2, T3 = f"olist-{S1}", f"olist-{S2}", f"olist-{S3}"
ORD = {
    name: hex_id(f"order-{name}")
    for name in (
        "two_sellers",
        "canceled",
        "unapproved",
        "no_payment",
        "delivered",
        "null_ts",
        "no_items",
        "unknown_cust",
    )
}
UNKNOWN_ORDER = hex_id("order-not-in-orders")
CUST = {name: hex_id(f"customer-{name}") for name in ORD}  # Olist's customer_id: one per order
U_TWO, U_REPEAT, U_OTHER = hex_id("person-two"), hex_id("person-repeat"), hex_id("person-other")
PERSON = {
    "two_sellers": U_TWO,
    "canceled": U_REPEAT,
    "delivered": U_REPEAT,
    "no_payment": U_REPEAT,
    "unapproved": U_OTHER,
    "null_ts": U_OTHER,
    "no_items": U_OTHER,
}  # unknown_cust: not listed
R_TWO, R_MULTI, R_CANCEL = hex_id("review-two"), hex_id("review-multi"), hex_id("review-cancel")
R_UNKNOWN, R_NO_ITEMS = hex_id("review-unknown"), hex_id("review-no-items")

# Brazil DST: started 2016-10-16, 2017-10-15, 2018-11-04 at 00:00 (→ 01:00, -03 → -02), ended
# 2017-02-19 and 2018-02-18 at 00:00 (→ 23:00 the day before, -02 → -03). Comments: expected UTC.
ORDERS = [
    # two sellers; -03 until 2017-10-15, the promise falls in DST (-02)
    [
        ORD["two_sellers"],
        CUST["two_sellers"],
        "delivered",
        "2017-10-02 10:56:33",
        "2017-10-02 11:07:15",
        "2017-10-04 19:55:00",
        "2017-10-10 21:25:13",
        "2017-10-18 00:00:00",
    ],
    # canceled after approval; purchased in the repeated hour (ambiguous → first, -02 → 01:30Z)
    [
        ORD["canceled"],
        CUST["canceled"],
        "canceled",
        "2018-02-17 23:30:00",
        "2018-02-18 00:10:00",
        "",
        "",
        "2018-03-09 00:00:00",
    ],
    # canceled, never approved (has a payment row all the same); purchased in the skipped hour (→ 03:20Z)
    [
        ORD["unapproved"],
        CUST["unapproved"],
        "canceled",
        "2018-11-04 00:20:00",
        "",
        "",
        "",
        "2018-11-26 00:00:00",
    ],
    # delivered but without any payment row (Olist has one such order)
    [
        ORD["no_payment"],
        CUST["no_payment"],
        "delivered",
        "2016-10-16 00:30:00",
        "2016-10-16 01:40:00",
        "2016-10-20 10:00:00",
        "2016-10-25 15:00:00",
        "2016-11-07 00:00:00",
    ],
    # delivered, approved at the purchase second; the promise is a nonexistent midnight (→ 03:00Z)
    [
        ORD["delivered"],
        CUST["delivered"],
        "delivered",
        "2017-06-01 12:00:00",
        "2017-06-01 12:00:00",
        "2017-06-02 09:00:00",
        "2017-06-09 18:30:00",
        "2017-10-15 00:00:00",
    ],
    [ORD["null_ts"], CUST["null_ts"], "created", "", "", "", "", "2017-07-01 00:00:00"],
    [
        ORD["no_items"],
        CUST["no_items"],
        "unavailable",
        "2017-03-01 09:00:00",
        "2017-03-01 09:10:00",
        "",
        "",
        "2017-03-20 00:00:00",
    ],
    [
        ORD["unknown_cust"],
        CUST["unknown_cust"],
        "delivered",
        "2017-05-01 10:00:00",
        "2017-05-01 10:05:00",
        "",
        "2017-05-08 10:00:00",
        "2017-05-20 00:00:00",
    ],
]
CUSTOMERS = [[CUST[name], person, "01310", "sao paulo", "SP"] for name, person in PERSON.items()]
ITEMS = [
    [ORD["two_sellers"], "1", hex_id("p1"), S1, "2017-10-06 11:07:15", "29.99", "8.72"],
    [ORD["two_sellers"], "2", hex_id("p1"), S1, "2017-10-06 11:07:15", "29.99", "8.72"],
    [ORD["two_sellers"], "3", hex_id("p2"), S2, "2017-10-06 11:07:15", "118.70", "22.76"],
    [ORD["canceled"], "1", hex_id("p3"), S1, "2018-02-22 00:10:00", "10.00", "5.50"],
    [ORD["unapproved"], "1", hex_id("p4"), S2, "2018-11-08 00:20:00", "49.90", "15.10"],
    [ORD["no_payment"], "1", hex_id("p5"), S3, "2016-10-20 01:40:00", "100.00", "0.00"],
    # 0.10 + 0.20 + 99.60 + 0.10 = 100.00 exactly (binary floats would not say so)
    [ORD["delivered"], "1", hex_id("p6"), S3, "2017-06-05 12:00:00", "0.10", "0.20"],
    [ORD["delivered"], "2", hex_id("p7"), S3, "2017-06-05 12:00:00", "99.60", "0.10"],
    [ORD["null_ts"], "1", hex_id("p8"), S1, "2017-07-01 00:00:00", "5.00", "1.00"],
    [ORD["unknown_cust"], "1", hex_id("p8"), S1, "2017-05-05 10:05:00", "5.00", "1.00"],
    [UNKNOWN_ORDER, "1", hex_id("p8"), S1, "2017-05-05 10:05:00", "5.00", "1.00"],
]
PAYMENTS = [
    [ORD["two_sellers"], "1", "credit_card", "3", "200.00"],
    [ORD["two_sellers"], "2", "voucher", "1", "18.88"],
    [ORD["canceled"], "1", "boleto", "1", "15.50"],
    [ORD["unapproved"], "1", "credit_card", "1", "65.00"],
    [ORD["delivered"], "1", "voucher", "1", "0.00"],
    [ORD["delivered"], "2", "credit_card", "2", "100.00"],
    [UNKNOWN_ORDER, "1", "credit_card", "1", "6.00"],
]
REVIEWS = [
    [
        R_TWO,
        ORD["two_sellers"],
        "5",
        "",
        'Chegou antes do prazo,\nrecomendo "muito"',
        "2017-10-11 00:00:00",
        "2017-10-12 03:43:48",
    ],
    # one review_id for two orders of the same seller (Olist does this): counted once for S3
    [R_MULTI, ORD["no_payment"], "4", "", "", "2017-06-10 00:00:00", "2017-06-11 10:00:00"],
    [R_MULTI, ORD["delivered"], "4", "", "", "2017-06-10 00:00:00", "2017-06-11 10:00:00"],
    [R_CANCEL, ORD["canceled"], "1", "Cancelado", "", "2018-02-18 00:00:00", ""],
    [R_UNKNOWN, UNKNOWN_ORDER, "3", "", "", "2017-05-10 00:00:00", ""],
    [R_NO_ITEMS, ORD["no_items"], "2", "", "", "2017-03-21 00:00:00", ""],
]
TABLE_ROWS = {
    "orders": ORDERS,
    "customers": CUSTOMERS,
    "items": ITEMS,
    "payments": PAYMENTS,
    "reviews": REVIEWS,
}


def both(event_type: str, ref: str, customer: str, at: int) -> list[tuple[str, str, str, str, int]]:
    """The same event in the tenants of S1 and S2 (ties in time go by event_id, i.e. by seller)."""
    return sorted((event_type, ref, tenant, customer, at) for tenant in (T1, T2))


# (event_type, order or ticket id, tenant, customer, event_time), in the order expected
MULTI_KEPT = min(ORD["no_payment"], ORD["delivered"])  # same creation time: the smaller order_id wins
EXPECTED = [
    ("order_placed", ORD["no_payment"], T3, U_REPEAT, utc_ms(2016, 10, 16, 3, 30)),
    ("order_delivered", ORD["no_payment"], T3, U_REPEAT, utc_ms(2016, 10, 25, 17, 0)),
    ("order_placed", ORD["delivered"], T3, U_REPEAT, utc_ms(2017, 6, 1, 15, 0)),
    ("order_paid", ORD["delivered"], T3, U_REPEAT, utc_ms(2017, 6, 1, 15, 0)),
    ("order_delivered", ORD["delivered"], T3, U_REPEAT, utc_ms(2017, 6, 9, 21, 30)),
    ("csat_submitted", R_MULTI, T3, U_REPEAT, utc_ms(2017, 6, 10, 3, 0)),
    *both("order_placed", ORD["two_sellers"], U_TWO, utc_ms(2017, 10, 2, 13, 56, 33)),
    *both("order_paid", ORD["two_sellers"], U_TWO, utc_ms(2017, 10, 2, 14, 7, 15)),
    *both("order_delivered", ORD["two_sellers"], U_TWO, utc_ms(2017, 10, 11, 0, 25, 13)),
    *both("csat_submitted", R_TWO, U_TWO, utc_ms(2017, 10, 11, 3, 0)),
    ("order_placed", ORD["canceled"], T1, U_REPEAT, utc_ms(2018, 2, 18, 1, 30)),
    ("csat_submitted", R_CANCEL, T1, U_REPEAT, utc_ms(2018, 2, 18, 3, 0)),
    ("order_paid", ORD["canceled"], T1, U_REPEAT, utc_ms(2018, 2, 18, 3, 10)),
    ("order_cancelled", ORD["canceled"], T1, U_REPEAT, utc_ms(2018, 2, 18, 3, 10)),
    ("order_placed", ORD["unapproved"], T2, U_OTHER, utc_ms(2018, 11, 4, 3, 20)),
    ("order_cancelled", ORD["unapproved"], T2, U_OTHER, utc_ms(2018, 11, 4, 3, 20)),
]
PROMISED = {
    ORD["no_payment"]: utc_ms(2016, 11, 7, 2, 0),
    ORD["delivered"]: utc_ms(2017, 10, 15, 3, 0),  # nonexistent local midnight → the day's first instant
    ORD["two_sellers"]: utc_ms(2017, 10, 18, 2, 0),
    ORD["canceled"]: utc_ms(2018, 3, 9, 3, 0),
    ORD["unapproved"]: utc_ms(2018, 11, 26, 2, 0),
}
AMOUNTS = {  # (order, tenant) → exact per-seller amount
    (ORD["delivered"], T3): Decimal("100"),
    (ORD["two_sellers"], T1): Decimal("77.42"),
    (ORD["two_sellers"], T2): Decimal("141.46"),
    (ORD["canceled"], T1): Decimal("15.5"),
}


def write_fixture(
    folder: Path, tables: dict[str, list[list[str]]] | None = None, *, parquet: tuple[str, ...] = ()
) -> Path:
    """The fixture tables as Olist CSVs (or, for the tables in ``parquet``, Parquet with text columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    for table, rows in (tables or TABLE_ROWS).items():
        if table in parquet:
            frame = pd.DataFrame(rows, columns=HEADERS[table], dtype=object).replace("", None)
            frame.to_parquet(folder / f"{TABLES[table]}.parquet", index=False)
        else:
            (folder / f"{TABLES[table]}.csv").write_text(olist_csv(HEADERS[table], rows), encoding="utf-8")
    return folder


def key(event: dict) -> tuple:
    ref = event.get("order_id") or event.get("ticket_id")
    return event["event_type"], ref, event["tenant_id"], event["customer_id"], event["event_time"]


# ---------------------------------------------------------------- fixture in the published format


@pytest.mark.unit
def test_fixture_events_in_order(tmp_path: Path) -> None:
    events, summary = load_events(write_fixture(tmp_path))
    assert [key(e) for e in events] == EXPECTED
    assert summary.events == Counter(
        order_placed=6, order_paid=4, order_delivered=4, order_cancelled=2, csat_submitted=4
    )
    assert summary.total_events == len(events) == 20
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    assert all(isinstance(t, int) for t in times)


@pytest.mark.unit
def test_fixture_summary_counts(tmp_path: Path) -> None:
    _, summary = load_events(write_fixture(tmp_path))
    assert summary.rows == {"orders": 8, "customers": 7, "items": 11, "payments": 7, "reviews": 6}
    assert summary.files == {t: f"{TABLES[t]}.csv" for t in TABLE_ROWS}
    assert summary.skipped == Counter(
        order_null_purchase_timestamp=1,
        order_unknown_customer=1,
        order_without_items=1,
        order_paid_not_approved=1,
        order_paid_no_payment_row=1,
        item_unknown_order=1,
        payment_unknown_order=1,
        review_unknown_order=1,
        review_of_unmapped_order=1,
        review_duplicate_for_seller=1,
    )
    assert summary.orders_mapped == 5
    assert summary.order_sellers == 6
    assert summary.tenants == Counter({T1: 2, T2: 2, T3: 2})
    assert summary.paid_total == Decimal("334.38")
    assert summary.rejected == Counter()
    assert summary.items_unlisted_seller == 0  # no sellers table: nothing to compare with
    assert summary.as_dict()["paid_total"] == "334.38"


@pytest.mark.unit
def test_fixture_amounts_promises_and_fields(tmp_path: Path) -> None:
    events, _ = load_events(write_fixture(tmp_path))
    paid = {(e["order_id"], e["tenant_id"]): e for e in events if e["event_type"] == "order_paid"}
    assert {k: validate_event(e).amount for k, e in paid.items()} == AMOUNTS
    assert all(e["currency"] == "BRL" for e in paid.values())
    assert type(paid[(ORD["delivered"], T3)]["amount"]) is int  # integral amounts are JSON integers
    assert paid[(ORD["two_sellers"], T1)]["amount"] == 77.42
    placed = {e["order_id"]: e["promised_at"] for e in events if e["event_type"] == "order_placed"}
    assert placed == PROMISED
    assert all("promised_at" not in e for e in events if e["event_type"] != "order_placed")
    csat = {(e["ticket_id"], e["tenant_id"]): e for e in events if e["event_type"] == "csat_submitted"}
    assert {k: e["score"] for k, e in csat.items()} == {
        (R_TWO, T1): 5,
        (R_TWO, T2): 5,
        (R_MULTI, T3): 4,
        (R_CANCEL, T1): 1,
    }
    assert csat[(R_MULTI, T3)]["properties"] == {"order_id": MULTI_KEPT}
    assert csat[(R_TWO, T2)]["properties"] == {"order_id": ORD["two_sellers"]}
    assert events[0]["event_id"] == f"olist:order_placed:{ORD['no_payment']}:{S3}"
    assert csat[(R_TWO, T1)]["event_id"] == f"olist:csat:{R_TWO}:{S1}"


@pytest.mark.unit
def test_fixture_every_event_is_valid_and_unique(tmp_path: Path) -> None:
    events, _ = load_events(write_fixture(tmp_path))
    for event in events:
        valid = validate_event(event)
        assert valid.event_time == event["event_time"]
        assert TENANT_RE.match(event["tenant_id"])
        assert len(event["event_id"]) <= 128
    assert len({e["event_id"] for e in events}) == len(events)


@pytest.mark.unit
def test_deterministic_and_independent_of_row_order(tmp_path: Path) -> None:
    first, summary = load_events(write_fixture(tmp_path / "a"))
    again, _ = load_events(tmp_path / "a")
    assert first == again
    reversed_tables = {t: rows[::-1] for t, rows in TABLE_ROWS.items()}
    reordered, other = load_events(write_fixture(tmp_path / "b", reversed_tables))
    assert reordered == first
    assert other.skipped == summary.skipped


@pytest.mark.unit
def test_parquet_tables_and_csv_preferred(tmp_path: Path) -> None:
    expected, _ = load_events(write_fixture(tmp_path / "csv"))
    as_parquet = write_fixture(tmp_path / "parquet", parquet=tuple(TABLE_ROWS))
    events, summary = load_events(as_parquet)
    assert events == expected
    assert summary.files["orders"] == "olist_orders_dataset.parquet"
    # both formats for one table: the CSV is read, the (empty) Parquet beside it is ignored
    folder = write_fixture(tmp_path / "both")
    write_fixture(folder, {"orders": []}, parquet=("orders",))
    events, summary = load_events(folder)
    assert events == expected
    assert summary.files["orders"] == "olist_orders_dataset.csv"


@pytest.mark.unit
def test_missing_tables_are_named(tmp_path: Path) -> None:
    write_fixture(tmp_path, {t: rows for t, rows in TABLE_ROWS.items() if t not in ("items", "reviews")})
    with pytest.raises(FileNotFoundError) as caught:
        load_events(tmp_path)
    message = str(caught.value)
    assert "olist_order_items_dataset.csv" in message
    assert "olist_order_reviews_dataset.csv" in message
    assert "olist_orders_dataset" not in message
    assert "olistbr/brazilian-ecommerce" in message


@pytest.mark.unit
def test_bad_timestamp_names_the_row(tmp_path: Path) -> None:
    orders = [row[:] for row in ORDERS]
    orders[2][3] = "04/11/2018 00:20"
    write_fixture(tmp_path, {**TABLE_ROWS, "orders": orders})
    with pytest.raises(ValueError, match=r"olist_orders_dataset\.csv row 3 order_purchase_timestamp"):
        load_events(tmp_path)


@pytest.mark.unit
def test_sao_paulo_conversion_at_dst_edges() -> None:
    assert sao_paulo_to_utc_ms(datetime(2017, 6, 1, 12, 0)) == utc_ms(2017, 6, 1, 15, 0)  # -03
    assert sao_paulo_to_utc_ms(datetime(2017, 12, 1, 12, 0)) == utc_ms(2017, 12, 1, 14, 0)  # -02 (DST)
    # skipped hour at DST start: fold=0 keeps the offset before the jump, i.e. the same instant as 01:00
    assert sao_paulo_to_utc_ms(datetime(2017, 10, 15, 0, 0)) == utc_ms(2017, 10, 15, 3, 0)
    assert sao_paulo_to_utc_ms(datetime(2017, 10, 15, 1, 0)) == utc_ms(2017, 10, 15, 3, 0)
    # repeated hour at DST end: fold=0 is the first occurrence (-02); fold=1 would be an hour later
    assert sao_paulo_to_utc_ms(datetime(2018, 2, 17, 23, 30)) == utc_ms(2018, 2, 18, 1, 30)
    assert sao_paulo_to_utc_ms(datetime(2018, 2, 17, 23, 30, fold=1)) == utc_ms(2018, 2, 18, 1, 30)
    assert sao_paulo_to_utc_ms(datetime(2018, 2, 18, 0, 10)) == utc_ms(2018, 2, 18, 3, 10)
    assert sao_paulo_to_utc_ms(datetime(2018, 2, 18, 1, 30, tzinfo=UTC)) == utc_ms(2018, 2, 18, 1, 30)
    assert sao_paulo_to_utc_ms(datetime(2017, 6, 1, 12, 0, 0, 999_999)) == utc_ms(2017, 6, 1, 15, 0) + 999


@pytest.mark.unit
def test_tenant_of() -> None:
    assert tenant_of(S1) == f"olist-{S1}"
    assert tenant_of("x" * 58) == "olist-" + "x" * 58  # 64 characters: the longest tenant id
    assert tenant_of("x" * 59) is None
    assert tenant_of("a b") is None


# ---------------------------------------------------------------- the shared tables (sellers, payments)


def shared_file(table: str) -> Path:
    file = SHARED / f"{TABLES[table]}.parquet"
    if not file.is_file():
        pytest.skip(f"shared Olist table not found at {file} (see shared/datasets/olist/SOURCE.md)")
    return file


@pytest.mark.unit
@pytest.mark.dataset
def test_shared_sellers_and_payments(tmp_path: Path) -> None:
    """Fixture orders of real sellers, some real (paid) order ids: payment rows decide order_paid."""
    sellers_file, payments_file = shared_file("sellers"), shared_file("payments")
    sellers = pd.read_parquet(sellers_file, columns=["seller_id"])["seller_id"].tolist()
    payments = pd.read_parquet(payments_file, columns=["order_id"])["order_id"]
    real = sorted(set(payments.tolist()))[:3]
    fake = hex_id("order-without-payment")
    assert fake not in set(payments)
    a, b, c = sellers[:3]
    unlisted = hex_id("seller-not-in-sellers")
    (tmp_path / "olist_sellers_dataset.parquet").symlink_to(sellers_file)
    (tmp_path / "olist_order_payments_dataset.parquet").symlink_to(payments_file)
    stamps = [
        "2017-06-01 12:00:00",
        "2017-06-01 12:30:00",
        "2017-06-02 09:00:00",
        "2017-06-09 18:30:00",
        "2017-06-20 00:00:00",
    ]
    orders = [[oid, hex_id(f"c-{oid}"), "delivered", *stamps] for oid in (*real, fake)]
    items = [
        [oid, "1", hex_id("p"), seller, "2017-06-05 12:00:00", "10.00", "2.50"]
        for oid, seller in (
            (real[0], a),
            (real[0], b),
            (real[1], c),
            (real[2], a),
            (fake, b),
            (fake, unlisted),
        )
    ]
    write_fixture(
        tmp_path,
        {
            "orders": orders,
            "customers": [[o[1], hex_id(f"u-{o[0]}"), "01310", "sao paulo", "SP"] for o in orders],
            "items": items,
            "reviews": [[hex_id("r"), real[1], "5", "", "", "2017-06-10 00:00:00", ""]],
        },
    )
    events, summary = load_events(tmp_path)

    assert summary.files["payments"] == "olist_order_payments_dataset.parquet"
    assert summary.rows["payments"] == pq.read_metadata(payments_file).num_rows
    assert summary.rows["sellers"] == pq.read_metadata(sellers_file).num_rows
    assert summary.skipped["payment_unknown_order"] == int((~payments.isin(real)).sum())
    assert summary.skipped["order_paid_no_payment_row"] == 1
    assert summary.items_unlisted_seller == 1
    assert {e["tenant_id"] for e in events} == {f"olist-{s}" for s in (a, b, c, unlisted)}
    paid = {(e["order_id"], e["tenant_id"]) for e in events if e["event_type"] == "order_paid"}
    assert paid == {
        (real[0], f"olist-{a}"),
        (real[0], f"olist-{b}"),
        (real[1], f"olist-{c}"),
        (real[2], f"olist-{a}"),
    }
    assert {o for o, _ in paid} == set(real)
    assert summary.events == Counter(order_placed=6, order_paid=4, order_delivered=6, csat_submitted=1)
    assert summary.rejected == Counter()
    for event in events:
        validate_event(event)


@pytest.mark.unit
@pytest.mark.dataset
def test_shared_folder_alone_names_its_missing_tables() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared Olist folder not found at {SHARED}")
    absent = [
        t
        for t in ("orders", "customers", "items", "payments", "reviews")
        if not any((SHARED / f"{TABLES[t]}{s}").is_file() for s in (".csv", ".parquet"))
    ]
    if not absent:
        pytest.skip("the shared Olist folder is complete")
    with pytest.raises(FileNotFoundError) as caught:
        table_files(SHARED)
    for table in absent:
        assert f"{TABLES[table]}.csv" in str(caught.value)
