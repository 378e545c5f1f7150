"""Catalog files: a good file extends the catalog through the same rules; a bad one is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalytics.schemas.catalog import CATALOG, Aggregate, BaseMetric, DerivedMetric, Grain
from lambdalytics.schemas.catalog.file import CatalogFileError, read_catalog_file
from lambdalytics.schemas.compile import PinotSql, SparkSql

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "metrics.toml"

BASE = """
[[metric]]
name = "{name}"
label = "Big"
description = "d"
grain = "{grain}"
unit = "{unit}"
aggregate = "{aggregate}"
column = "{column}"
filter = {{ event_types = ["order_paid"], non_null = ["amount_micros"] }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "metrics.toml"
    path.write_text(text)
    return path


def base(**over: str) -> str:
    fields = dict(name="largest", grain="customer", unit="currency", aggregate="max", column="amount_micros")
    return BASE.format(**{**fields, **over})


def refused(tmp_path: Path, text: str) -> CatalogFileError:
    path = write(tmp_path, text)
    with pytest.raises(CatalogFileError) as info:
        read_catalog_file(path, CATALOG)
    assert str(path) in str(info.value)  # every message names the file
    return info.value


def test_the_example_file_extends_the_catalog_and_compiles_for_every_engine():
    metrics, catalog = read_catalog_file(EXAMPLE, CATALOG)
    assert [m.name for m in metrics] == ["largest_order", "refund_rate"]
    largest, rate = catalog["largest_order"], catalog["refund_rate"]
    assert isinstance(largest, BaseMetric) and largest.aggregate is Aggregate.max
    assert isinstance(rate, DerivedMetric) and rate.operands == ("refunds", "revenue")
    assert "largest_order" in catalog.series(Grain.customer)
    assert SparkSql().aggregate(largest) == (
        "MAX(CASE WHEN event_type IN ('order_paid') AND amount_micros IS NOT NULL THEN amount_micros END)"
    )
    assert '"amount_micros"' in PinotSql().aggregate(largest)
    assert catalog.derive(Grain.customer, {"refunds": 5, "revenue": 20})["refund_rate"] == 0.25
    assert "largest_order" not in CATALOG.by_name  # the built-in catalog is not changed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (base(name="revenue"), "unique-names: metric 'revenue' is defined more than once"),
        (base(column="no_such"), "known-columns: largest uses unknown column 'no_such'"),
        (base(aggregate="sum", column="event_type"), "numeric-sum: largest sums non-numeric column"),
        (
            base(aggregate="max", column="session_id"),
            "engine-support: largest: pinot computes max over numeric",
        ),
        (
            base(unit="count").replace('"max"', '"median"'),
            "metric #1 'largest': entry-fields: base.aggregate",
        ),
        (base(grain="campaign"), "metric #1 'largest': file-scope"),
        (base() + 'colour = "red"\n', "entry-fields: base.colour: Extra inputs are not permitted"),
        (
            '[[metric]]\nname = "r"\nlabel = "R"\ndescription = "d"\ngrain = "customer"\nunit = "currency"\n'
            'op = "ratio"\noperands = ["refunds", "revenue"]\n',
            "unit-algebra: r = refunds / revenue over (currency, currency) cannot be currency",
        ),
        ("[[metric]]\nname = \n", "file-is-toml"),
        ("[other]\n", "file-tables"),
        ("", "file-has-metrics"),
    ],
)
def test_bad_files_are_refused_with_the_rule_file_and_entry(tmp_path, text, expected):
    assert expected in str(refused(tmp_path, text))


def test_every_bad_entry_is_reported(tmp_path):
    error = refused(tmp_path, base(aggregate="median") + base(name="second", grain="tenant"))
    assert [p.split(":")[0] for p in error.problems] == ["metric #1 'largest'", "metric #2 'second'"]
