"""The batch views as pure Spark transforms: deduplicated events in, view DataFrames out.

Every aggregate comes from the metric catalog through :class:`~lambdalytics.schemas.compile.SparkSql`;
nothing here writes a metric formula. I/O, watermarks and Delta commits live in ``batch.writer`` and
``batch.job``, so these functions are tested on small in-memory frames.

Views (keys first):

- ``customer_profile``: (tenant_id, customer_id) → every customer-grain base aggregate, raw units
  (sketches as DataSketches binaries, so they union with the speed side);
- ``customer_timeseries``: (tenant_id, customer_id, hour) → every time-series customer base for
  that event-time hour (one wide row per hour rather than one row per metric: same content, fewer rows);
- ``campaign_stats``: (tenant_id, campaign_id, hour) → every campaign-grain base;
- ``ticket_state`` / ``order_state``: (tenant_id, customer_id, <entity id>) → first time of each
  milestone, so durations straddling the batch/speed boundary can be finished after a merge.

Cohorts and RFM are computed from these views in ``batch.tenant_views``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lambdalytics.schemas.catalog import CATALOG, GRAIN_KEYS, HOUR_MS, BaseMetric, Entity, Grain
from lambdalytics.schemas.compile import SparkSql

__all__ = ["build_views", "dedup_events", "entity_state_view_name"]

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


def _aggregates(bases: list[BaseMetric]) -> list:
    return [F.expr(_SQL.aggregate(m)).alias(m.name) for m in bases]


def _with_hour(events: DataFrame) -> DataFrame:
    return events.withColumn("hour", F.col("event_time") - F.pmod(F.col("event_time"), F.lit(HOUR_MS)))


def customer_profile(events: DataFrame) -> DataFrame:
    return events.groupBy(*GRAIN_KEYS[Grain.customer]).agg(*_aggregates(CATALOG.bases(Grain.customer)))


def customer_timeseries(events: DataFrame) -> DataFrame:
    bases = [m for m in CATALOG.bases(Grain.customer) if m.timeseries]
    return _with_hour(events).groupBy(*GRAIN_KEYS[Grain.customer], "hour").agg(*_aggregates(bases))


def campaign_stats(events: DataFrame) -> DataFrame:
    keys = GRAIN_KEYS[Grain.campaign]
    return (
        _with_hour(events.where(F.col("campaign_id").isNotNull()))
        .groupBy(*keys, "hour")
        .agg(*_aggregates(CATALOG.bases(Grain.campaign)))
    )


def entity_state_view_name(entity: Entity) -> str:
    return f"{entity.name}_state"


def entity_state(events: DataFrame, entity: Entity) -> DataFrame:
    return (
        events.where(F.expr(_SQL.entity_filter(entity)))
        .groupBy(*GRAIN_KEYS[Grain.customer], entity.id_column)
        .agg(*[F.expr(_SQL.milestone(entity, ms.name)).alias(ms.name) for ms in entity.milestones])
    )


def build_views(events: DataFrame) -> dict[str, DataFrame]:
    """All Spark-computed views from deduplicated events (ROW_COLUMNS, event_time in epoch ms)."""
    views = {
        "customer_profile": customer_profile(events),
        "customer_timeseries": customer_timeseries(events),
        "campaign_stats": campaign_stats(events),
    }
    for entity in CATALOG.entities:
        views[entity_state_view_name(entity)] = entity_state(events, entity)
    return views
