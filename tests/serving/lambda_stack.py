"""The real stack for merge tests: landed rows batched by Spark, every row fed to the embedded store."""

from __future__ import annotations

from lambdalytics.batch.job import run_batch
from lambdalytics.infra.settings import Settings
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.merge import Merger
from lambdalytics.speed.embedded import EmbeddedSpeedStore

_POSITION = ("topic", "partition", "offset", "broker_time", "raw")


def batch_and_speed(spark, data_dir, rows: list[dict], block: int):
    """(manifest, merger): a batch run over what is landed in ``data_dir``, the speed store fed ``rows``
    (each a master row) and cut at the version's W."""
    manifest = run_batch(Settings(data_dir=data_dir, block_size=block), spark=spark, show_progress=False)
    index = BatchIndex.load(data_dir, manifest)
    store = EmbeddedSpeedStore(block_size=block)
    for r in rows:
        row = {k: r[k] for k in r if k not in _POSITION}
        store.ingest(row, r["topic"], r["partition"], r["offset"], r["broker_time"])
    store.drop_below(index.watermark)
    return manifest, Merger(lambda: index, store)
