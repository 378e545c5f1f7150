"""An erasure's durable purge on real Spark and real Delta: afterwards no readable master version, no
view version and no serving-store file holds the customer, and every view equals a batch run over a
master that never had them (one Spark test: it runs three batches)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lambdalytics.batch import master
from lambdalytics.batch.erasure import master_component, purge
from lambdalytics.batch.job import run_batch
from lambdalytics.batch.writer import read_manifest, read_manifests
from lambdalytics.infra import serving_store
from lambdalytics.infra.erasures import ErasureLog
from lambdalytics.infra.event_index import EventIndex, event_index_path
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.views import VIEWS

from .test_batch_job import BLOCK, land, landed_rows

pytestmark = pytest.mark.integration
SECRET = "erasure-test-secret-0123456789-abcdefghij"


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, block_size=BLOCK, erasure_secret=SECRET, batch_poll_seconds=0.05)


def _comparable(table: pa.Table) -> list[dict]:
    """Rows sorted, sketches as their estimates (two sketches of one set may differ in bytes)."""
    import datasketches

    rows = []
    for row in table.to_pylist():
        rows.append(
            {
                k: round(datasketches.hll_sketch.deserialize(v).get_estimate()) if isinstance(v, bytes) else v
                for k, v in row.items()
            }
        )
    return sorted(rows, key=repr)


def _holds(path: Path, version: int, tenant: str, customer: str) -> bool:
    """Can this version of the table still be read, with a row of the customer in it? (Time travel to a
    version whose files were vacuumed fails: that is the point.)"""
    try:
        table = DeltaTable(str(path), version=version).to_pyarrow_table()
    except Exception:  # noqa: BLE001 - delta-rs raises its own I/O error for a vacuumed file
        return False
    if "customer_id" not in table.column_names:
        return False  # a tenant-level view: its equality with a clean run is checked below
    keys = zip(table.column("tenant_id").to_pylist(), table.column("customer_id").to_pylist(), strict=True)
    return (tenant, customer) in set(keys)


def _victim(rows: list[dict]) -> tuple[str, str]:
    """The customer with the most campaign events that also ordered: it reaches every kind of view."""
    ordered = {(r["tenant_id"], r["customer_id"]) for r in rows if r["event_type"] == "order_placed"}
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["tenant_id"], r["customer_id"])
        if r["campaign_id"] is not None and key in ordered:
            counts[key] = counts.get(key, 0) + 1
    return max(counts, key=counts.get)


def test_an_erasure_purges_every_store_and_equals_a_run_without_the_customer(spark, tmp_path):
    rows = landed_rows(seed=11)
    tenant, customer = _victim(rows)
    mine = [r for r in rows if (r["tenant_id"], r["customer_id"]) == (tenant, customer)]
    kept = [r for r in rows if (r["tenant_id"], r["customer_id"]) != (tenant, customer)]

    erased_dir, clean_dir = tmp_path / "erased", tmp_path / "clean"
    archived = land(erased_dir, rows)
    settings = _settings(erased_dir)
    first = run_batch(settings, spark=spark, show_progress=False)
    assert first is not None and first.batch_version == 1
    with EventIndex.open(event_index_path(erased_dir), create=False) as index:
        assert index.lowest(tenant, mine[0]["event_id"]) is not None

    log = ErasureLog.open(settings)
    erasure, created = log.request(tenant, customer, master_component(settings, tenant, customer))
    assert created and erasure.state == "pending" and erasure.customer_ids == (customer,)
    done = purge(settings, erasure.erasure_id, spark=spark, show_progress=False)

    # the receipt: every store, what it removed; no plain id once complete
    assert done.state == "complete" and done.customer_ids == () and done.completed_at is not None
    assert done.stores["master"]["rows"] == len(mine) and done.stores["master"]["files_removed"] > 0
    assert done.stores["event_index"]["entries"] == len({r["event_id"] for r in mine})
    assert done.stores["views"]["batch_version"] == 2
    assert done.stores["serving_store"]["versions_removed"] == [1]
    assert customer not in repr(log.get(erasure.erasure_id))
    assert purge(settings, erasure.erasure_id, spark=spark, show_progress=False) == done  # re-run: nothing

    # master: no row now, and no older version can still be read (its files are gone)
    table = DeltaTable(str(master.master_path(erased_dir)))
    left = table.to_pyarrow_table(columns=["tenant_id", "customer_id"]).to_pylist()
    assert {"tenant_id": tenant, "customer_id": customer} not in left and len(left) == len(kept)
    readable = [
        v for v in range(table.version()) if _holds(master.master_path(erased_dir), v, tenant, customer)
    ]
    assert readable == []
    # the archiver's progress survives the delete commit
    assert master.read_progress(master.master_path(erased_dir)).offsets == archived

    # views: the older version cannot be read any more; the new one holds no row of the customer
    for name, version in first.views.items():
        assert not _holds(erased_dir / "views" / name, version, tenant, customer), name
    now = read_manifest(erased_dir)
    assert now is not None and now.kind == "erasure" and now.watermark == first.watermark
    assert [m.batch_version for m in read_manifests(erased_dir)] == [2, 1]

    # serving store: only the new version's file, and no byte of the customer id in it
    store_files = sorted(serving_store.store_dir(erased_dir).glob("*"))
    assert [p.name for p in store_files] == [serving_store.store_path(erased_dir, 2).name]
    assert all(customer.encode() not in p.read_bytes() for p in store_files[0].rglob("*") if p.is_file())
    with EventIndex.open(event_index_path(erased_dir), create=False) as index:
        assert all(index.lowest(tenant, r["event_id"]) is None for r in mine)
        assert index.lowest(kept[0]["tenant_id"], kept[0]["event_id"]) is not None

    # every view equals a run over a master that never had the customer, at the same W
    path = master.master_path(clean_dir)
    master.append_batch(path, master.rows_to_table(kept), archived, 1)
    clean = run_batch(_settings(clean_dir), spark=spark, show_progress=False, full=True)
    assert clean is not None and clean.watermark == now.watermark and clean.events == now.events
    for name in VIEWS:
        got = now.table(erased_dir, name).to_pyarrow_table()
        want = clean.table(clean_dir, name).to_pyarrow_table()
        assert _comparable(got) == _comparable(want), name
