"""A batch run and a backfill: master dataset (up to the watermark W) → Spark → view version in Delta.

**Choosing W.** The archiver's Delta commit records, per (topic, partition), the next offset it has
landed. A run cuts each partition at the largest multiple of ``block_size`` not above that offset, so
``W[tp] = floor(archived[tp] / B) * B`` (``schemas.views.cut``). The batch covers exactly the events with offset < W[tp]; the
speed store keeps aggregates per offset block and drops whole blocks below W, with no coordination
(ARCHITECTURE §2, deterministic cuts). Partitions the archiver has not seen have W = 0.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from lambdalytics.infra import metric_registry, serving_store
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.catalog import Catalog
from lambdalytics.schemas.events import ROW_COLUMNS
from lambdalytics.schemas.views import (
    ALIAS_EDGES,
    CAMPAIGN_KEYS,
    CAMPAIGN_STATS,
    COHORT_COUNTS,
    CUSTOMER_KEYS,
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    EVENT_VIEWS,
    IDENTITY_COMPONENTS,
    ORDER_MONTHS,
    RFM_THRESHOLDS,
    SEGMENT_MEMBERS,
    SEGMENT_STATS,
    VIEWS,
    Watermark,
    cut,
)

from . import incremental, master
from .derived_fold import fold_derived
from .indexing import ensure_indexed
from .metric_backfill import held, held_views
from .phases import Phases
from .segment_views import segment_views
from .spark import spark_session
from .tenant_views import cohort_views, identity_components, rfm_thresholds, tenant_components
from .views import build_views, dedup_events, registered_views
from .writer import BatchBusyError, Manifest, ViewWriter, exclusive, read_manifest

log = logging.getLogger(__name__)

__all__ = ["BackfillError", "BatchBusyError", "backfill", "exclusive", "republish_locked", "run_batch"]


class BackfillError(RuntimeError):
    pass


@contextmanager
def _steps(show: bool, phases: Phases | None = None) -> Iterator:
    """The run's step function: progress when ``show``, each step's seconds kept in ``phases``."""
    with (phases or Phases()).shown(show) as step:
        yield step


def _read_events(spark, master_table, watermark: Watermark, since: Watermark | None = None):
    """Master rows with ``since[tp] <= offset < W[tp]``, shaped as ROW_COLUMNS (times as epoch ms).

    ``since`` absent: from offset 0 (the whole history below W). None when no row can qualify.
    """
    from pyspark.sql import functions as F

    uris = master_table.file_uris()
    since = since or {}
    if not uris or not watermark:
        return None
    ranges = [
        f"(topic = '{t}' AND `partition` = {p} AND `offset` >= {since.get((t, p), 0)} AND `offset` < {o})"
        for (t, p), o in sorted(watermark.items())
        if o > since.get((t, p), 0)
    ]
    if not ranges:
        return None
    # mergeSchema: files written before a column was added (previous_id) read it as null
    df = spark.read.option("mergeSchema", "true").parquet(*uris).where(" OR ".join(ranges))
    columns = [
        (F.unix_millis(F.col(c)) if c in ("event_time", "promised_at") else F.col(c)).alias(c)
        for c in ROW_COLUMNS
    ]
    return df.select(*columns, "topic", "partition", "offset", "broker_time")


def _compute(events, step, registered: tuple[Catalog, tuple[str, ...]]) -> dict[str, pa.Table]:
    tables: dict[str, pa.Table] = {}
    for name, frame in {**build_views(events), **registered_views(events, *registered)}.items():
        done = step(f"view {name}")
        tables[name] = frame.toArrow()
        done()
    return _derive(tables, step)


def _derive(tables: dict[str, pa.Table], step) -> dict[str, pa.Table]:
    """The derived views (order months, cohort counts, RFM cut points) from the event views."""
    done = step("identity components, order months, cohort counts, RFM cut points and segments")
    groups = tenant_components(tables[ALIAS_EDGES.name])
    tables[IDENTITY_COMPONENTS.name] = identity_components(groups)
    tables[ORDER_MONTHS.name], tables[COHORT_COUNTS.name] = cohort_views(
        tables[CUSTOMER_TIMESERIES.name], groups
    )
    tables[RFM_THRESHOLDS.name] = rfm_thresholds(tables[CUSTOMER_PROFILE.name], groups)
    tables[SEGMENT_STATS.name], tables[SEGMENT_MEMBERS.name] = segment_views(tables, groups)
    done()
    return tables


def run_batch(
    settings: Settings,
    *,
    full: bool = False,
    spark=None,
    show_progress: bool = True,
    phases: Phases | None = None,
) -> Manifest | None:
    """One batch run; returns the published manifest (or the current one when W has not moved).

    By default it folds the events in ``[W_prev, W_new)`` into the previous version
    (``batch.incremental``); ``full`` recomputes every view from the whole master, as does any run the
    fold cannot make exact (no previous version, another block size or view schema, a reused event id
    sorting before a counted copy). ``phases`` receives each step's wall time.
    """
    with exclusive(Path(settings.data_dir)):
        return _run_batch(settings, full=full, spark=spark, show_progress=show_progress, phases=phases)


def _run_batch(
    settings: Settings, *, full: bool = False, spark=None, show_progress: bool = True, phases=None
) -> Manifest | None:
    data_dir = Path(settings.data_dir)
    previous = read_manifest(data_dir)
    try:
        version, archived, table = master.snapshot(master.master_path(data_dir))
    except master.NoMasterDataset:
        log.info("nothing archived yet: no batch run")
        return previous
    watermark = cut(archived, settings.block_size)
    # the registered metrics the previous version holds stay held (batch.metric_backfill)
    registered = (metric_registry.current(data_dir).catalog, held(previous, data_dir))
    if previous is not None and previous.watermark == watermark:
        log.info("watermark unchanged since batch version %d: nothing to do", previous.batch_version)
        return previous
    with _session(settings, spark) as session, _steps(show_progress, phases) as step:
        folded = (
            None
            if full
            else _incremental(session, table, previous, watermark, archived, settings, step, registered)
        )
        if folded is None:
            tables, n_events, watermark_time = _full(session, table, version, watermark, step, registered)
            kind = "run"
        else:
            tables, n_events, watermark_time = folded
            kind = "incremental"
        writer = ViewWriter(data_dir, kind=kind)
        for name, arrow in tables.items():
            done = step(f"write {name} ({arrow.num_rows:,} rows)")
            writer.write(name, arrow)
            done()
        done = step("check the event-id index covers W")
        ensure_indexed(data_dir, table, archived, need=watermark).close()  # the speed side dedups with it
        done()
        _build_serving_store(data_dir, previous, tables, step)
        done = step("publish view version")
        manifest = writer.publish(
            previous=previous,
            watermark=watermark,
            block_size=settings.block_size,
            watermark_time=watermark_time,
            master_version=version,
            events=n_events,
        )
        done()
    log.info(
        "published batch version %d (%s): %d events, W=%s",
        manifest.batch_version,
        kind,
        n_events,
        manifest.watermark,
    )
    return manifest


def republish_locked(
    settings: Settings, *, kind: str, spark=None, show_progress: bool = True
) -> Manifest | None:
    """Recompute every view from the master as it is now, at the current version's W, and publish the
    result as the next version (None before the first run). For a change *inside* the history — an
    erasure deleted rows below W — which neither W nor an incremental fold can see. The speed side is
    untouched: W does not move. The caller holds :func:`exclusive`.
    """
    data_dir = Path(settings.data_dir)
    previous = read_manifest(data_dir)
    if previous is None:
        return None
    version, archived, table = master.snapshot(master.master_path(data_dir))
    with _session(settings, spark) as session, _steps(show_progress) as step:
        registered = (metric_registry.current(data_dir).catalog, held(previous, data_dir))
        tables, n_events, _ = _full(session, table, version, previous.watermark, step, registered)
        writer = ViewWriter(data_dir, kind=kind)
        for name, arrow in tables.items():
            done = step(f"write {name} ({arrow.num_rows:,} rows)")
            writer.write(name, arrow)
            done()
        ensure_indexed(data_dir, table, archived, need=previous.watermark).close()
        _build_serving_store(data_dir, previous, tables, step)
        return writer.publish(
            previous=previous,
            watermark=previous.watermark,
            block_size=previous.block_size,
            watermark_time=previous.watermark_time,
            master_version=version,
            events=n_events,
        )


def _build_serving_store(data_dir: Path, previous: Manifest | None, tables: dict[str, pa.Table], step):
    """The serving store of the version about to be published, from the tables in hand, so serving
    opens it instead of reading Delta (under the batch lock, the next version number is this run's;
    a run that dies before publishing leaves a file the next run overwrites)."""
    if not VIEWS.keys() <= tables.keys():
        return  # the loader builds it from Delta
    version = (previous.batch_version if previous else 0) + 1
    done = step(f"build the serving store of version {version}")
    serving_store.build(serving_store.store_path(data_dir, version), tables)
    done()


def _full(session, table, version: int, watermark: Watermark, step, registered):
    """Every view from the whole master below W: (tables, deduplicated events, watermark time)."""
    done = step(f"read master v{version} up to W ({sum(watermark.values()):,} offsets)")
    events = _read_events(session, table, watermark)
    if events is None:
        events = _spark_empty_events(session)
    events = dedup_events(events).persist()
    stats = events.selectExpr("count(*) AS n", "max(unix_millis(broker_time)) AS t").collect()[0]
    done()
    tables = _compute(events.drop("topic", "partition", "broker_time"), step, registered)
    events.unpersist()
    return tables, int(stats["n"]), _utc(stats["t"])


def _incremental(
    session,
    table,
    previous: Manifest | None,
    watermark: Watermark,
    archived: Watermark,
    settings: Settings,
    step,
    registered,
):
    """The fold into ``previous`` (see ``batch.incremental``), or None when only a full run is exact."""
    data_dir = Path(settings.data_dir)
    extra = held_views(*registered)
    views = {**VIEWS, **extra}
    stored = {}
    if previous is not None and set(previous.views) == set(views):
        stored = {name: previous.table(data_dir, name) for name in views}
    columns = {name: [f.name for f in t.schema().fields] for name, t in stored.items()}
    if reason := incremental.full_run_reason(previous, watermark, settings.block_size, columns, views=views):
        log.info("full batch run: %s", reason)
        return None
    done = step(f"read the views of batch version {previous.batch_version}")
    old = {name: stored[name].to_pyarrow_table() for name in views}
    done()
    done = step("index the new master rows (event-id index)")
    index = ensure_indexed(data_dir, table, archived, need=watermark)
    done()
    done = step("read new events and deduplicate them against the history")
    new = _read_events(session, table, watermark, since=previous.watermark)
    if new is None:
        new = _spark_empty_events(session)
    try:
        events = incremental.unseen_by_index(session, new, index, previous.watermark)
        if events is None:
            log.info("the event-id index cannot settle every new event: deduplicating against the master")
            history = _read_events(session, table, previous.watermark)
            events = dedup_events(new).persist() if history is None else incremental.unseen(new, history)
    except incremental.FullRunNeeded as exc:
        log.warning("full batch run: %s", exc)
        return None
    finally:
        index.close()
    stats = events.selectExpr("count(*) AS n", "max(unix_millis(broker_time)) AS t").collect()[0]
    done()
    rows = events.drop("topic", "partition", "broker_time")
    delta = {**build_views(rows), **registered_views(rows, *registered)}
    tables, added = {}, {}
    for view in (*EVENT_VIEWS, *extra.values()):
        done = step(f"fold {view.name} ({int(stats['n']):,} new events)")
        folded, new_rows = incremental.fold(session, old, delta, views=(view,), catalog=registered[0])
        tables |= folded
        added |= new_rows
        done()
    events.unpersist()
    tables = fold_derived(old, tables, added, step)
    newest = _utc(stats["t"])
    times = [t for t in (previous.watermark_time, newest) if t is not None]
    return tables, previous.events + int(stats["n"]), max(times) if times else None


def _utc(epoch_ms: int | None) -> dt.datetime | None:
    return None if epoch_ms is None else dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)


def _spark_empty_events(session):
    """No events under W yet: the views come out empty but with their schemas."""
    spark_type = {"string": "string", "int64": "bigint", "int32": "int"}
    ddl = ", ".join(f"`{c}` {spark_type[t]}" for c, t in ROW_COLUMNS.items())
    return session.createDataFrame(
        [], f"{ddl}, topic string, `partition` int, `offset` bigint, broker_time timestamp"
    )


@contextmanager
def _session(settings: Settings, spark) -> Iterator:
    if spark is not None:
        yield spark
        return
    with spark_session(settings) as session:
        yield session


def backfill(
    settings: Settings,
    since: dt.date,
    until: dt.date,
    tenant: str | None = None,
    *,
    spark=None,
    show_progress: bool = True,
) -> Manifest:
    """Recompute the views for every key with events in [since, until] (UTC dates, inclusive).

    Uses the current version's watermark and master snapshot, so the result stays consistent with
    what the speed side holds. Affected keys (customers, campaigns) are recomputed from *all* their
    events and replace their rows; cohorts and RFM are recomputed from the result. Running it twice
    changes nothing: unchanged tables are not rewritten, and no new version is published.
    """
    if until < since:
        raise BackfillError(f"--until {until} is before --since {since}")
    with exclusive(Path(settings.data_dir)):
        return _backfill(settings, since, until, tenant, spark=spark, show_progress=show_progress)


def _backfill(
    settings: Settings, since: dt.date, until: dt.date, tenant: str | None, *, spark, show_progress: bool
) -> Manifest:
    from pyspark.sql import functions as F

    data_dir = Path(settings.data_dir)
    previous = read_manifest(data_dir)
    if previous is None:
        raise BackfillError("no batch view version yet: run `lambdalytics batch run` first")
    _, _, table = master.snapshot(master.master_path(data_dir), version=previous.master_version)
    lo = int(dt.datetime.combine(since, dt.time(), dt.UTC).timestamp() * 1000)
    hi = int(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp() * 1000)
    with _session(settings, spark) as session, _steps(show_progress) as step:
        done = step(f"read master v{previous.master_version} up to W")
        raw = _read_events(session, table, previous.watermark)
        if raw is None:
            raw = _spark_empty_events(session)
        events = dedup_events(raw).drop("topic", "partition", "broker_time").persist()
        in_range = events.where((F.col("event_time") >= lo) & (F.col("event_time") < hi))
        if tenant:
            in_range = in_range.where(F.col("tenant_id") == tenant)
        customers = in_range.select(*CUSTOMER_KEYS).distinct()
        campaigns = in_range.where(F.col(CAMPAIGN_KEYS[-1]).isNotNull()).select(*CAMPAIGN_KEYS).distinct()
        done()
        fresh = build_views(events.join(customers, list(CUSTOMER_KEYS), "left_semi"))
        fresh[CAMPAIGN_STATS.name] = build_views(events.join(campaigns, list(CAMPAIGN_KEYS), "left_semi"))[
            CAMPAIGN_STATS.name
        ]
        affected = {CUSTOMER_KEYS: customers.toArrow(), CAMPAIGN_KEYS: campaigns.toArrow()}
        tables: dict[str, pa.Table] = {}
        for name, frame in fresh.items():
            done = step(f"recompute {name}")
            keys = VIEWS[name].recompute_by
            old = previous.table(data_dir, name).to_pyarrow_table()
            kept = old.join(affected[keys], list(keys), join_type="left anti")
            new = frame.toArrow()
            tables[name] = pa.concat_tables([kept.select(new.schema.names).cast(new.schema), new])
            done()
        events.unpersist()
        tables = _derive(tables, step)
        writer = ViewWriter(data_dir, kind="backfill")
        for name, arrow in tables.items():
            done = step(f"write {name}")
            writer.write(name, arrow, unchanged_from=previous)
            done()
        if writer.versions == {k: v for k, v in previous.views.items() if k in writer.versions}:
            log.info("backfill changed nothing: batch version %d stays", previous.batch_version)
            return previous
        _build_serving_store(data_dir, previous, tables, step)
        done = step("publish view version")
        manifest = writer.publish_at(previous)
        done()
        return manifest
