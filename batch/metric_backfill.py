"""Registered (catalog-file) metrics in the batch layer: ``batch backfill --metric`` and what later runs
carry forward.

**A backfill of one metric** computes that metric (for a derived one: the registered bases it needs)
over the whole history below the current version's watermark W — the same master snapshot, the same
deduplication, the same compiler (``SparkSql``) as every view — and publishes a version that adds its
columns to the registered views (``schemas.registered``) and names every other view at the Delta
version it had: nothing else is recomputed, and W does not move, so the speed side's blocks at or above
W complete the metric exactly (docs/batch.md, "Registered metrics"). A metric the version holds already
is not computed again (the backfill is idempotent).

**Later runs** hold the registered metrics the previous version held (:func:`held`): a full run
computes them with the other views, an incremental run folds them like any event view.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from lambdalytics.infra import metric_registry
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.catalog import BaseMetric, Catalog, DerivedMetric
from lambdalytics.schemas.registered import (
    REGISTERED_PROFILE,
    REGISTERED_TIMESERIES,
    file_bases,
    registered_view,
)
from lambdalytics.schemas.views import View

from . import master
from .views import dedup_events, registered_views
from .writer import Manifest, ViewWriter, exclusive, read_manifest

log = logging.getLogger(__name__)

__all__ = ["backfill_metric", "held", "held_views"]


def held(previous: Manifest | None, data_dir: Path) -> tuple[str, ...]:
    """The registered base metrics a version holds: the value columns of its registered profile."""
    if previous is None or REGISTERED_PROFILE not in previous.views:
        return ()
    names = [f.name for f in previous.table(data_dir, REGISTERED_PROFILE).schema().fields]
    return tuple(n for n in names if n not in registered_view(REGISTERED_PROFILE, ()).keys)


def held_views(catalog: Catalog, names: tuple[str, ...]) -> dict[str, View]:
    """The registered views a version holding ``names`` publishes (no hourly view without a series)."""
    if not names:
        return {}
    views = {REGISTERED_PROFILE: registered_view(REGISTERED_PROFILE, names)}
    if hourly := tuple(n for n in names if catalog[n].timeseries):
        views[REGISTERED_TIMESERIES] = registered_view(REGISTERED_TIMESERIES, hourly)
    return views


def _needs(catalog: Catalog, name: str) -> tuple[str, ...]:
    """The registered base metrics a metric is computed from (itself, for a base)."""
    metric = catalog[name]
    if isinstance(metric, BaseMetric):
        return (name,) if metric in file_bases(catalog) else ()
    if isinstance(metric, DerivedMetric):
        return tuple(dict.fromkeys(b for o in metric.operands for b in _needs(catalog, o)))
    return ()


def backfill_metric(settings: Settings, name: str, *, spark=None, show_progress: bool = True) -> Manifest:
    """Compute one registered metric over the whole history below W and publish it (see the module)."""
    from .job import BackfillError

    data_dir = Path(settings.data_dir)
    registered = metric_registry.current(data_dir)
    if not registered.is_registered(name):
        known = (
            "a built-in metric: every batch run computes it"
            if name in registered.catalog.by_name
            else ("unknown: register it first with `lambdalytics metrics add FILE`")
        )
        raise BackfillError(f"--metric {name}: {known}")
    with exclusive(data_dir):
        return _backfill(settings, registered.catalog, name, spark=spark, show_progress=show_progress)


def _backfill(settings: Settings, catalog: Catalog, name: str, *, spark, show_progress: bool) -> Manifest:
    from .job import BackfillError, _build_serving_store, _read_events, _session, _spark_empty_events, _steps

    data_dir = Path(settings.data_dir)
    previous = read_manifest(data_dir)
    if previous is None:
        raise BackfillError("no batch view version yet: run `lambdalytics batch run` first")
    have = held(previous, data_dir)
    todo = tuple(n for n in _needs(catalog, name) if n not in have)
    if not todo:
        log.info(
            "batch version %d holds what %s needs already: nothing to backfill", previous.batch_version, name
        )
        return previous
    _, _, table = master.snapshot(master.master_path(data_dir), version=previous.master_version)
    with _session(settings, spark) as session, _steps(show_progress) as step:
        done = step(f"read master v{previous.master_version} up to W and deduplicate")
        raw = _read_events(session, table, previous.watermark)
        events = dedup_events(raw if raw is not None else _spark_empty_events(session))
        events = events.drop("topic", "partition", "offset", "broker_time").persist()
        done()
        views = held_views(catalog, (*have, *todo))
        tables: dict[str, pa.Table] = {}
        for view_name, frame in registered_views(events, catalog, todo).items():
            done = step(f"compute {', '.join(todo)} into {view_name}")
            tables[view_name] = _with_held(frame.toArrow(), previous, data_dir, views[view_name])
            done()
        events.unpersist()
        writer = ViewWriter(data_dir, kind="metric-backfill")
        writer.versions.update(previous.views)  # every other view stays at the version it had
        for view_name, arrow in tables.items():
            done = step(f"write {view_name} ({arrow.num_rows:,} rows)")
            writer.write(view_name, arrow)
            done()
        unchanged = {
            n: previous.table(data_dir, n).to_pyarrow_table() for n in previous.views if n not in tables
        }
        _build_serving_store(data_dir, previous, {**unchanged, **tables}, step)
        done = step("publish view version")
        manifest = writer.publish_at(previous)
        done()
    log.info("published batch version %d with %s (W unchanged)", manifest.batch_version, ", ".join(todo))
    return manifest


def _with_held(new: pa.Table, previous: Manifest, data_dir: Path, view: View) -> pa.Table:
    """The new metrics' rows joined to the columns the previous version's registered view holds.

    Both come from the same deduplicated events below the same W, grouped by the same keys, so they
    have the same key set; the join is on the keys alone, and the new rows lead (none is lost)."""
    keys = list(view.keys)
    if view.name in previous.views:
        old = previous.table(data_dir, view.name).to_pyarrow_table()
        kept = [c for c in old.schema.names if c not in keys and c not in new.schema.names]
        if kept:
            new = new.join(old.select([*keys, *kept]), keys, join_type="left outer")
    return new.select(list(view.columns))
