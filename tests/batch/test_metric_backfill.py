"""`batch backfill --metric`: one registered metric over the whole history, every other view as it was,
and the merged answer (batch below W ⊕ speed at and above W) exact across the boundary — with the embedded
speed store and, from the same catalog entry compiled to Pinot SQL, with the Pinot store (broker double)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalytics.batch.job import BackfillError, run_batch
from lambdalytics.batch.metric_backfill import backfill_metric
from lambdalytics.infra import metric_registry
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.registered import REGISTERED_PROFILE, REGISTERED_TIMESERIES
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.merge import Merger
from lambdalytics.serving.served_metrics import MetricPending
from lambdalytics.speed.config import TABLE_BY_TOPIC, PinotConfig
from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.pinot import PinotSpeedStore

from ..speed.pinot_double import PinotBrokerDouble
from . import oracle
from .test_batch_job import land, landed_rows

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "metrics.toml"
BLOCK = 5
DAY = 86_400_000


def records(rows: list[dict]) -> list[tuple[dict, str, int, int, int]]:
    """Master rows as the speed side receives them: (row, topic, partition, offset, broker time)."""
    meta = ("topic", "partition", "offset", "broker_time", "raw")
    return [
        ({k: r[k] for k in r if k not in meta}, r["topic"], r["partition"], r["offset"], r["broker_time"])
        for r in rows
    ]


def speed_store(data_dir: Path, rows: list[dict], index: BatchIndex) -> EmbeddedSpeedStore:
    """The speed side as a consumer feeds it: every row in offset order, then what W covers dropped."""
    store = EmbeddedSpeedStore(block_size=BLOCK, registered_metrics=data_dir)
    for record in records(rows):
        store.ingest(*record)
    store.drop_below(index.watermark)
    return store


def pinot_store(data_dir: Path, rows: list[dict]) -> PinotSpeedStore:
    """The Pinot speed side over the same rows (the broker double: what Pinot holds after ingesting them),
    opened with the data folder's registered metrics."""
    double = PinotBrokerDouble.from_stream(records(rows), TABLE_BY_TOPIC)
    config = PinotConfig(broker_url="http://pinot-broker:8099", registered_metrics=data_dir, parallelism=1)
    return PinotSpeedStore(config, session=double.client())


def test_backfill_of_one_metric_is_exact_across_the_boundary(tmp_path, spark):
    data_dir = tmp_path / "data"
    rows = landed_rows(seed=31, n_days=2)
    land(data_dir, rows[: len(rows) * 2 // 3], chunks=2)  # the rest only reaches the speed side
    settings = Settings(data_dir=data_dir, block_size=BLOCK)
    first = run_batch(settings, spark=spark, show_progress=False)
    with pytest.raises(BackfillError, match="unknown: register it first"):
        backfill_metric(settings, "largest_order", spark=spark, show_progress=False)
    metric_registry.add(data_dir, EXAMPLE)

    # registered but not backfilled: left out of profiles, refused for series (never one side only)
    store = speed_store(data_dir, rows, BatchIndex.load(data_dir, first))
    before = Merger(lambda: BatchIndex.load(data_dir, first), store)
    some = tuple(oracle.dedup(rows, first.watermark)[["tenant_id", "customer_id"]].iloc[0])
    assert "largest_order" not in before.profile(*some)["metrics"]
    with pytest.raises(MetricPending, match="backfill --metric largest_order"):
        before.timeseries(*some, "largest_order", 0, 2**52, DAY)

    manifest = backfill_metric(settings, "largest_order", spark=spark, show_progress=False)
    assert manifest.batch_version == first.batch_version + 1 and manifest.watermark == first.watermark
    assert {n: manifest.views[n] for n in first.views} == first.views  # nothing else recomputed
    assert set(manifest.views) - set(first.views) == {REGISTERED_PROFILE, REGISTERED_TIMESERIES}
    again = backfill_metric(settings, "largest_order", spark=spark, show_progress=False)
    assert again.batch_version == manifest.batch_version  # idempotent

    index = BatchIndex.load(data_dir, manifest)
    assert index.registered == {"largest_order"}
    merger = Merger(lambda: index, store)
    pinot = Merger(lambda: index, pinot_store(data_dir, rows))  # the same catalog entry, through Pinot SQL
    truth = oracle.dedup(rows, {(r["topic"], r["partition"]): 10**9 for r in rows})
    paid = truth[truth.event_type == "order_paid"]
    largest = paid.groupby(["tenant_id", "customer_id"]).amount_micros.max()
    revenue = paid.groupby(["tenant_id", "customer_id"]).amount_micros.sum()
    refunds = truth[truth.event_type == "refund"].groupby(["tenant_id", "customer_id"]).amount_micros.sum()
    below = oracle.dedup(rows, manifest.watermark)
    assert 0 < len(below) < len(truth)  # the answers really merge two sides
    for tenant, customer in truth.groupby(["tenant_id", "customer_id"]).size().index:
        got = merger.profile(tenant, customer)["metrics"]
        assert pinot.profile(tenant, customer)["metrics"] == got, (tenant, customer)
        key = (tenant, customer)
        want = round(largest[key] / 1e6, 6) if key in largest.index else None
        assert got["largest_order"] == want, key
        rate = refunds.get(key, 0) / revenue[key] if key in revenue.index else None
        assert got["refund_rate"] == (None if rate is None else round(rate, 6)), key
    hours = paid.assign(day=paid.event_time // DAY * DAY)
    for (tenant, customer), days in list(hours.groupby(["tenant_id", "customer_id"]))[:15]:
        points = merger.timeseries(tenant, customer, "largest_order", 0, 2**52, DAY)
        assert pinot.timeseries(tenant, customer, "largest_order", 0, 2**52, DAY) == points
        want = days.groupby("day").amount_micros.max()
        assert [(t, v) for t, v in points if v is not None] == [
            (int(d), round(int(v) / 1e6, 6)) for d, v in want.items()
        ], (tenant, customer)

    # the next run folds the registered metric with every other view; the answers stay exact
    land(data_dir, rows[len(rows) * 2 // 3 :], chunks=1)
    later = run_batch(settings, spark=spark, show_progress=False)
    assert later.kind == "incremental" and REGISTERED_PROFILE in later.views
    index = BatchIndex.load(data_dir, later)
    merger = Merger(lambda: index, speed_store(data_dir, rows, index))
    for key, value in list(largest.items())[:40]:
        assert merger.profile(*key)["metrics"]["largest_order"] == round(value / 1e6, 6), key
