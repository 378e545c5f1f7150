"""Incremental batch runs: ``view(W_new) = view(W_prev) ⊕ views(events in [W_prev, W_new))``.

Every event view holds mergeable aggregates per key (and per hour), so a run need not re-read the
history: it aggregates only the events above the previous version's watermark and merges the result
into the previous version's rows with the catalog's merge rules (``SparkSql.merge``: counts and sums
add, min/max keep the extreme, HLL sketches union, milestones keep the first time). The derived views
(order months, cohort counts, RFM cut points) are then recomputed from the merged per-customer rows,
as a full run does, at a cost proportional to customers, not events.

**Exact only with an exact dedup.** A new event whose ``(tenant_id, event_id)`` already has a copy
below ``W_prev`` was counted by the previous version and must be dropped. :func:`unseen_by_index` asks
the event-id index (``infra.event_index``: each id's lowest copy, and whether it has copies on two or
more partitions) — a cost in proportion to the new events; it defers to :func:`unseen`, a scan of the
history's id columns, only for a spread id whose lowest copy is not below ``W_prev``. The batch
keeps the copy with the lowest ``(topic, partition, offset)`` (``views.dedup_events``); copies share a
key, hence a partition, so that is the older one. Only a reused event id on *another* topic or
partition can sort a new copy below an old one; a full run would then swap which copy counts, which no
merge can undo, so :func:`unseen` reports it and the job recomputes in full
(:class:`FullRunNeeded`). So does anything else an incremental run cannot build on
(:func:`full_run_reason`).

Pure transforms plus Arrow folds: the job reads and writes; this module is tested on small frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lambdalytics.infra.event_index import EventIndex
from lambdalytics.schemas import aggregates
from lambdalytics.schemas.catalog import CATALOG, Aggregate, Catalog
from lambdalytics.schemas.compile import SparkSql
from lambdalytics.schemas.views import (
    ALIAS_EDGES,
    CUSTOMER_TRAITS,
    ENTITY_STATES,
    EVENT_VIEWS,
    VIEWS,
    View,
    Watermark,
)

from .views import dedup_events, latest_alias
from .writer import Manifest

__all__ = ["FullRunNeeded", "fold", "full_run_reason", "unseen", "unseen_by_index"]

_SQL = SparkSql()
_ID = ["tenant_id", "event_id"]
_POSITION = ["topic", "partition", "offset"]
_MILESTONES = {v.name for v in ENTITY_STATES.values()}


class FullRunNeeded(Exception):
    """An incremental run cannot be exact here; the message says why."""


def full_run_reason(
    previous: Manifest | None,
    watermark: Watermark,
    block_size: int,
    previous_columns: dict[str, list[str]],
    *,
    views: Mapping[str, View] = VIEWS,
) -> str | None:
    """Why this run must recompute from the whole master (None: it can fold into ``previous``).

    ``previous_columns`` are the column names of each previous view table as stored; ``views`` the
    views this run publishes (the built-in ones plus the registered views it holds).
    """
    if previous is None:
        return "no previous view version"
    if previous.block_size != block_size:
        return f"the previous version was cut with block size {previous.block_size}, this run cuts with {block_size}"
    if set(previous.views) != set(views):
        return "the previous version does not hold exactly today's views"
    for view in views.values():
        if previous_columns.get(view.name) != list(view.columns):
            return f"the previous {view.name} has other columns than today's"
    for tp, offset in previous.watermark.items():
        if watermark.get(tp, 0) < offset:
            return f"{tp}: W={watermark.get(tp, 0)} is below the previous version's {offset}"
    return None


def unseen_by_index(
    spark: SparkSession, new: DataFrame, index: EventIndex, since: Watermark
) -> DataFrame | None:
    """The new events (``[W_prev, W_new)``) with no copy below ``since`` (= ``W_prev``), persisted (the
    caller unpersists); None when only :func:`unseen` can tell. ``index`` covers every new event.

    Deduplicated within themselves first (lowest position wins), then per event its index entry: the
    lowest copy lying below ``since`` means the previous version counted that copy (it sorts first
    among every copy), so the new one is dropped. Otherwise no copy lies below ``since`` on the event's
    own partition (it would be lower); one on another partition, sorting after this one, is possible
    only for an id the index marks spread — then None, as for an index whose marks are incomplete
    (``EventIndex.tracks_spread``).
    """
    if not index.tracks_spread():  # an index written before the marks: they may be missing
        return None
    fresh = dedup_events(new).persist()
    ids = fresh.select(*_ID).toArrow()
    keys = list(zip(*(ids.column(c).to_pylist() for c in _ID), strict=True))
    counted = []
    for key, lowest, spread in zip(keys, index.lowest_of(keys), index.spread_of(keys), strict=True):
        if lowest is not None and lowest[2] < since.get((lowest[0], lowest[1]), 0):
            counted.append(key)
        elif spread:
            fresh.unpersist()
            return None
    if not counted:
        return fresh
    dropped = F.broadcast(spark.createDataFrame(counted, "tenant_id string, event_id string"))
    kept = fresh.join(dropped, _ID, "left_anti").persist()
    kept.count()  # materialized before ``fresh`` is released
    fresh.unpersist()
    return kept


def unseen(new: DataFrame, history: DataFrame) -> DataFrame:
    """The new events (``[W_prev, W_new)``) no earlier copy of which is in ``history`` (below ``W_prev``),
    persisted (the caller unpersists).

    ``new`` is deduplicated within itself first (lowest position wins). Only the ``(tenant_id,
    event_id)`` and position columns of ``history`` are read (Parquet column pruning), and only the
    ids the new events carry are kept from it (a broadcast semi-join). Raises :class:`FullRunNeeded`
    when a history copy sorts after the new copy (an event id reused on another topic or partition).
    """
    fresh = dedup_events(new)
    ids = F.broadcast(fresh.select(*_ID).distinct())
    earlier = (
        history.select(*_ID, *_POSITION)
        .join(ids, _ID, "left_semi")
        .groupBy(*_ID)
        .agg(F.min(F.struct(*_POSITION)).alias("_earlier"))
    )
    checked = fresh.join(earlier, _ID, "left").persist()
    try:
        reordered = checked.where(F.col("_earlier").isNotNull() & (F.struct(*_POSITION) < F.col("_earlier")))
        if example := reordered.select(*_ID).first():
            raise FullRunNeeded(
                f"event id {example['event_id']!r} of tenant {example['tenant_id']!r} has a new copy sorting "
                "before one the previous version counted (reused on another topic or partition)"
            )
        kept = checked.where(F.col("_earlier").isNull()).drop("_earlier").persist()
        kept.count()  # materialized before the history scan's cache is released
        return kept
    finally:
        checked.unpersist()


def fold(
    spark: SparkSession,
    previous: dict[str, pa.Table],
    delta: dict[str, DataFrame],
    *,
    views: Iterable[View] = EVENT_VIEWS,
    catalog: Catalog = CATALOG,
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """Every event view: the previous version's rows merged with the views of the new events; and the
    new events' views themselves (what the derived views' fold starts from, ``batch.derived_fold``).

    Rows of keys the new events do not touch are kept as they are (an Arrow anti-join, no Spark);
    only the touched rows are merged, each value column by its catalog aggregate.
    """
    tables, added = {}, {}
    for view in views:
        added[view.name] = delta[view.name].toArrow()
        tables[view.name] = _fold_view(spark, view, previous[view.name], added[view.name], catalog)
    return tables, added


def _fold_view(spark: SparkSession, view: View, old: pa.Table, added: pa.Table, catalog: Catalog) -> pa.Table:
    keys = list(view.keys)
    old = old.select(list(view.columns)).cast(added.schema)
    if added.num_rows == 0:
        return old
    touched_keys = added.select(keys)
    untouched = old.join(touched_keys, keys, join_type="left anti").select(list(view.columns))
    touched = old.join(touched_keys, keys, join_type="left semi").select(list(view.columns))
    merged = _merge(spark, view, touched, added, catalog)
    return pa.concat_tables([untouched.cast(added.schema), merged])


def _merge(spark: SparkSession, view: View, old: pa.Table, added: pa.Table, catalog: Catalog) -> pa.Table:
    """The rows of both versions, grouped by the view's keys; each value column merged by its rule."""
    if view is ALIAS_EDGES or view is CUSTOMER_TRAITS:  # rules over several columns together: in Spark
        rows = spark.createDataFrame(pa.concat_tables([old.cast(added.schema), added]))
        if view is ALIAS_EDGES:  # the latest alias of an edge: a max over the pair of columns
            return latest_alias(rows).toArrow().select(list(view.columns)).cast(added.schema)
        latest = rows.groupBy(*view.keys).agg(F.expr(_SQL.latest()).alias("_latest"))
        return latest.select(*view.keys, "_latest.*").toArrow().select(list(view.columns)).cast(added.schema)
    return _merge_arrow(view, pa.concat_tables([old.cast(added.schema), added]), catalog)


_ARROW_MERGE = {Aggregate.count: "sum", Aggregate.sum: "sum", Aggregate.min: "min", Aggregate.max: "max"}
"""Per aggregate kind, the Arrow aggregation that merges its view values — ``SparkSql.merge_aggregate``'s
rule (SUM, MIN, MAX; nulls skipped, all-null stays null, as in SQL). Sketches union in DataSketches."""


def _merge_arrow(view: View, rows: pa.Table, catalog: Catalog) -> pa.Table:
    """One row per key of ``rows`` (a few per key: the previous version's and the new events'), each value
    column merged by its catalog aggregate (milestones: the first time), on the driver: the touched rows
    are in proportion to the new events, and a Spark job per view would cost more than the merge."""
    ops = []
    for column in view.values:
        if view.name in _MILESTONES:
            ops.append((column, "min"))
            continue
        metric = catalog[column]
        _SQL.refuse(metric)
        if metric.aggregate is Aggregate.hll_distinct:
            ops.append((column, "list"))
        elif metric.aggregate in _ARROW_MERGE:
            ops.append((column, _ARROW_MERGE[metric.aggregate]))
        else:  # a new aggregate kind needs its own merge rule, never a fallback
            raise NotImplementedError(f"no merge rule for {metric.aggregate} ({column})")
    merged = rows.group_by(list(view.keys), use_threads=False).aggregate(ops)
    columns = {k: merged.column(k) for k in view.keys}
    for column, op in ops:
        values = merged.column(f"{column}_{op}")
        if op == "list":
            values = pa.array([_union(blobs) for blobs in values.to_pylist()], rows.schema.field(column).type)
        columns[column] = values
    return pa.table([columns[c] for c in view.columns], schema=rows.schema)


def _union(blobs: list[bytes | None]) -> bytes | None:
    """HLL sketches of one key merged (``HLL_UNION_AGG``'s rule): one as it is, several unioned."""
    present = [b for b in blobs if b is not None]
    if len(present) <= 1:
        return present[0] if present else None
    return aggregates.union_sketch(present, ()).serialize_updatable()
