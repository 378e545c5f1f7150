"""Incremental batch runs: ``view(W_new) = view(W_prev) ⊕ views(events in [W_prev, W_new))``.

Every event view holds mergeable aggregates per key (and per hour), so a run need not re-read the
history: it aggregates only the events above the previous version's watermark and merges the result
into the previous version's rows with the catalog's merge rules (``SparkSql.merge``: counts and sums
add, min/max keep the extreme, HLL sketches union, milestones keep the first time). The derived views
(order months, cohort counts, RFM cut points) are then recomputed from the merged per-customer rows,
as a full run does, at a cost proportional to customers, not events.

**Exact only with an exact dedup.** A new event whose ``(tenant_id, event_id)`` already has a copy
below ``W_prev`` was counted by the previous version and must be dropped (:func:`unseen`). The batch
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

from lambdalytics.schemas.catalog import CATALOG, Catalog
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

__all__ = ["FullRunNeeded", "fold", "full_run_reason", "unseen"]

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
) -> dict[str, pa.Table]:
    """Every event view: the previous version's rows merged with the views of the new events.

    Rows of keys the new events do not touch are kept as they are (an Arrow anti-join, no Spark);
    only the touched rows go through Spark, where each value column merges by its catalog aggregate.
    """
    return {
        view.name: _fold_view(spark, view, previous[view.name], delta[view.name], catalog) for view in views
    }


def _fold_view(spark: SparkSession, view: View, old: pa.Table, new: DataFrame, catalog: Catalog) -> pa.Table:
    added = new.toArrow()
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
    rows = spark.createDataFrame(pa.concat_tables([old.cast(added.schema), added]))
    if view is ALIAS_EDGES:  # the latest alias of an edge: a max over the pair of columns
        return latest_alias(rows).toArrow().select(list(view.columns)).cast(added.schema)
    if view is CUSTOMER_TRAITS:  # one aggregate over the three value columns together
        latest = rows.groupBy(*view.keys).agg(F.expr(_SQL.latest()).alias("_latest"))
        return latest.select(*view.keys, "_latest.*").toArrow().select(list(view.columns)).cast(added.schema)
    values = [F.expr(_merge_sql(view, c, catalog)).alias(c) for c in view.values]
    return rows.groupBy(*view.keys).agg(*values).toArrow().select(list(view.columns)).cast(added.schema)


def _merge_sql(view: View, column: str, catalog: Catalog) -> str:
    if view.name in _MILESTONES:
        return _SQL.merge_milestone(column)
    return _SQL.merge_aggregate(catalog[column], column)
