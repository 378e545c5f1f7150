"""The batch views as pure Spark transforms: deduplicated events in, view DataFrames out.

Every aggregate comes from the metric catalog through :class:`~lambdalytics.schemas.compile.SparkSql`;
nothing here writes a metric formula. I/O, watermarks and Delta commits live in ``batch.writer`` and
``batch.job``, so these functions are tested on small in-memory frames.

Which views exist, and their keys and columns, is stated once in ``schemas.views`` (the batch ⇄
serving contract, derived from the catalog); this module computes the event views
(:data:`~lambdalytics.schemas.views.EVENT_VIEWS`), and ``batch.tenant_views`` the derived ones.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lambdalytics.schemas.catalog import CATALOG, HOUR_MS, Catalog, Entity
from lambdalytics.schemas.compile import SparkSql
from lambdalytics.schemas.registered import REGISTERED_PROFILE, REGISTERED_TIMESERIES, registered_view
from lambdalytics.schemas.views import (
    ALIAS_EDGES,
    CAMPAIGN_KEYS,
    CAMPAIGN_STATS,
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    CUSTOMER_TRAITS,
    HOUR,
    View,
)
from lambdalytics.schemas.views import entity_state as entity_state_view

__all__ = ["alias_edges", "build_views", "dedup_events", "latest_alias", "registered_views"]

_SQL = SparkSql()


def dedup_events(events: DataFrame) -> DataFrame:
    """One row per (tenant_id, event_id): the copy with the lowest (topic, partition, offset).

    Copies of one event share its key, so they sit in one partition and the lowest offset is the copy
    that arrived first — the one the speed store keeps too. Broker time is not used: producer-set
    timestamps need not grow with the offset. The idempotency key is scoped to the tenant, so one tenant
    can never suppress another's events.
    """
    order = Window.partitionBy("tenant_id", "event_id").orderBy("topic", "partition", "offset")
    return events.withColumn("_copy", F.row_number().over(order)).where("_copy = 1").drop("_copy")


def _aggregate(events: DataFrame, view: View, catalog: Catalog = CATALOG) -> DataFrame:
    """Group by the view's keys; each value column is the catalog aggregate of that name."""
    columns = [F.expr(_SQL.aggregate(catalog[name])).alias(name) for name in view.values]
    return events.groupBy(*view.keys).agg(*columns)


def _with_hour(events: DataFrame) -> DataFrame:
    return events.withColumn(HOUR, F.col("event_time") - F.pmod(F.col("event_time"), F.lit(HOUR_MS)))


def customer_profile(events: DataFrame) -> DataFrame:
    return _aggregate(events, CUSTOMER_PROFILE)


def customer_timeseries(events: DataFrame) -> DataFrame:
    return _aggregate(_with_hour(events), CUSTOMER_TIMESERIES)


def campaign_stats(events: DataFrame) -> DataFrame:
    campaign = CAMPAIGN_KEYS[-1]
    return _aggregate(_with_hour(events.where(F.col(campaign).isNotNull())), CAMPAIGN_STATS)


def entity_state(events: DataFrame, entity: Entity) -> DataFrame:
    view = entity_state_view(entity)
    return (
        events.where(F.expr(_SQL.entity_filter(entity)))
        .groupBy(*view.keys)
        .agg(*[F.expr(_SQL.milestone(entity, name)).alias(name) for name in view.values])
    )


def latest_alias(rows: DataFrame) -> DataFrame:
    """Per edge, the latest of its aliases by ``(alias_time, alias_event_id)`` (``schemas.identity``'s
    order): a max of the pair, not of each column, so a run and a fold of two runs agree."""
    time, event_id = ALIAS_EDGES.values
    latest = F.max(F.struct(F.col(time), F.col(event_id))).alias("_latest")
    return (
        rows.groupBy(*ALIAS_EDGES.keys)
        .agg(latest)
        .select(
            *ALIAS_EDGES.keys,
            F.col(f"_latest.{time}").alias(time),
            F.col(f"_latest.{event_id}").alias(event_id),
        )
    )


def alias_edges(events: DataFrame) -> DataFrame:
    time, event_id = ALIAS_EDGES.values
    aliases = events.where((F.col("event_type") == "alias") & F.col("previous_id").isNotNull())
    return latest_alias(
        aliases.select(*ALIAS_EDGES.keys, F.col("event_time").alias(time), F.col("event_id").alias(event_id))
    )


def registered_views(events: DataFrame, catalog: Catalog, names: tuple[str, ...]) -> dict[str, DataFrame]:
    """The registered views (``schemas.registered``) of these registered base metrics, from the same
    compiler as every built-in view; none when ``names`` is empty."""
    if not names:
        return {}
    hourly = tuple(n for n in names if catalog[n].timeseries)
    views = {REGISTERED_PROFILE: _aggregate(events, registered_view(REGISTERED_PROFILE, names), catalog)}
    if hourly:
        series = registered_view(REGISTERED_TIMESERIES, hourly)
        views[REGISTERED_TIMESERIES] = _aggregate(_with_hour(events), series, catalog)
    return views


def customer_traits(events: DataFrame) -> DataFrame:
    """Each customer's latest value of every trait its ``identify`` events set (needs ``offset``)."""
    keys = list(CUSTOMER_TRAITS.keys)
    entries = events.where("event_type = 'identify' AND traits IS NOT NULL").selectExpr(
        *keys[:-1], "event_time", "`offset`", _SQL.trait_entries()
    )
    return entries.groupBy(*keys).agg(F.expr(_SQL.latest()).alias("_latest")).select(*keys, "_latest.*")


def build_views(events: DataFrame) -> dict[str, DataFrame]:
    """All event views by name from deduplicated events (ROW_COLUMNS, event_time in epoch ms, and the
    master's ``offset``, which orders ties of the latest trait values)."""
    views = {
        CUSTOMER_PROFILE.name: customer_profile(events),
        CUSTOMER_TIMESERIES.name: customer_timeseries(events),
        CAMPAIGN_STATS.name: campaign_stats(events),
        CUSTOMER_TRAITS.name: customer_traits(events),
    }
    for entity in CATALOG.entities:
        views[entity_state_view(entity).name] = entity_state(events, entity)
    views[ALIAS_EDGES.name] = alias_edges(events)
    return views
