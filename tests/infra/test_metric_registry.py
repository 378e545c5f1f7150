"""The registered catalog on disk: versioned, shared by every process, unchanged by a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalytics.infra import metric_registry
from lambdalytics.schemas.catalog import CATALOG

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "metrics.toml"

EXTRA = """
[[metric]]
name = "biggest_refund"
label = "Biggest refund"
description = "d"
grain = "customer"
unit = "currency"
aggregate = "max"
column = "amount_micros"
filter = { event_types = ["refund"], non_null = ["amount_micros"] }
"""


def test_before_any_registration_the_set_is_the_built_in_catalog(tmp_path):
    now = metric_registry.current(tmp_path)
    assert now.version == 0 and now.metrics == () and now.catalog is CATALOG


def test_each_registration_is_a_new_version_every_reader_loads(tmp_path):
    first, added = metric_registry.add(tmp_path, EXAMPLE)
    assert first.version == 1 and [m.name for m in added] == ["largest_order", "refund_rate"]
    extra = tmp_path / "extra.toml"
    extra.write_text(EXTRA)
    second, _ = metric_registry.add(tmp_path, extra)
    assert second.version == 2
    assert [m.name for m in second.metrics] == ["largest_order", "refund_rate", "biggest_refund"]
    metric_registry._loaded.clear()  # another process: reads the files, not this one's memory
    loaded = metric_registry.current(tmp_path)
    assert loaded.version == 2 and loaded.catalog["biggest_refund"] == second.catalog["biggest_refund"]
    assert sorted(p.name for p in metric_registry.catalog_dir(tmp_path).iterdir()) == [
        "v000001.json",
        "v000002.json",
    ]


def test_a_bad_file_or_a_second_registration_of_a_name_changes_nothing(tmp_path):
    metric_registry.add(tmp_path, EXAMPLE)
    before = sorted(metric_registry.catalog_dir(tmp_path).iterdir())
    with pytest.raises(metric_registry.CatalogFileError, match="unique-names: metric 'largest_order'"):
        metric_registry.add(tmp_path, EXAMPLE)
    bad = tmp_path / "bad.toml"
    bad.write_text(EXTRA.replace('"refund"', '"refnud"'))
    with pytest.raises(metric_registry.CatalogFileError, match=r"(?s)bad\.toml.*known-event-types"):
        metric_registry.add(tmp_path, bad)
    assert sorted(metric_registry.catalog_dir(tmp_path).iterdir()) == before
    assert metric_registry.current(tmp_path).version == 1
