"""The Pinot speed store: the same partials as the embedded store, computed by Apache Pinot.

Pinot consumes each event topic into its own REALTIME table (``infra/pinot/``) with the Kafka
``partition`` and ``offset`` of every row, and deduplicates on ``(tenant_id, event_id)`` at ingestion
(``dedupConfig``: the first copy in partition order wins, like the embedded store). A read for watermark
W therefore only has to keep the rows at or above W, per partition::

    ("partition" NOT IN (0, 2) OR ("partition" = 0 AND "offset" >= 120) OR ("partition" = 2 AND "offset" >= 80))

Every statement is generated here from the metric catalog through :class:`~lambdalytics.schemas.compile.PinotSql`
(no metric formula is written in this module), with quoted identifiers, an alias on every column and an
explicit LIMIT. Pinot never fails loudly when it answers less than everything: it trims groups
(``numGroupsLimitReached``), answers without some servers, or stops at the LIMIT. Each of these, and any
broker error, raises :class:`~lambdalytics.speed.store.CoverageError` — fail closed, never a smaller number.

Coverage: every read also asks each table for its first held offset per partition; if it lies above
``W[tp]`` (retention deleted segments, or consumption started later), the rows between are gone and the
read raises CoverageError, as the embedded store does for dropped blocks. A partition W names that the
table holds no row of (Pinot has not consumed it: a partition added to the topic, not reached yet) is
refused too, never answered as empty. SQL sees rows, not consumer positions, so a partition whose every
record below W broke the contract (no row) is refused as well — fail closed; the controller's
``consumingSegmentsInfo`` would tell positions. The block size plays no part here: every statement
filters ``offset >= W[tp]`` exactly.

Types: Pinot returns SUM/MIN/MAX as DOUBLE. Raw states are converted back to exact ints (a value that is
not an integer below 2**53 raises, since a DOUBLE sum beyond that may have lost precision), and a
companion ``COUNT(*) FILTER (...)`` per aggregate tells "no matching row" (state None) from a value,
because without query-level null handling Pinot answers 0 or ±Infinity there.

Registered (catalog-file) metrics: a store opened with ``registered_metrics`` (a data folder) answers the
registered set as loaded at open besides the built-in catalog, every metric compiled by the same
``PinotSql`` (``SpeedStore.catalog``). Pinot holds rows, not aggregates, so a new metric is answered for
any W at once.

Erasure: Pinot deletes no REALTIME row, so erased customers are left out of every answer — those of the
erasure log (``infra.erasures.ErasureList``: keyed hashes, durable, re-read every second) and those passed
to ``erase`` in this process. SQL cannot match a keyed hash, so the filter runs here: a read of an erased
customer answers as for one without events; reads returning customer ids drop erased ones; a campaign
read of a tenant with erasures groups by customer too and folds only the others (docs/pinot.md).

``status()``: lag is ``now - max(broker record timestamp)`` over the three tables — an upper bound
(an idle topic looks lagging) — and positions are ``max(offset) + 1`` per partition, a lower bound
(trailing duplicates are not stored). SQL cannot tell whether Pinot has caught up with Kafka, so
``caught_up`` is always False; the controller's ``consumingSegmentsInfo`` has that, per partition.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pinotdb
from pinotdb import exceptions as pinot_errors
from pinotdb.db import apply_parameters

from lambdalytics.infra import metric_registry
from lambdalytics.infra.erasures import ErasureList
from lambdalytics.schemas import aggregates
from lambdalytics.schemas.catalog import CATALOG, GRAIN_KEYS, HOUR_MS, Aggregate, BaseMetric, Entity, Grain
from lambdalytics.schemas.cohorts import COHORT_METRIC, order_months
from lambdalytics.schemas.compile import PinotSql
from lambdalytics.schemas.events import FAMILY_BY_EVENT_TYPE, MODEL_BY_FAMILY
from lambdalytics.schemas.identity import Alias
from lambdalytics.schemas.topics import FAMILY_BY_TOPIC, Family

from .aliases import ALIAS_EVENT
from .config import TABLE_BY_TOPIC, PinotConfig
from .store import CoverageError, Milestones, Partial, SpeedStatus, SpeedStore, Watermark
from .traits import fold_identify

__all__ = ["TABLE_BY_TOPIC", "PinotConfig", "PinotSpeedStore"]

_EXACT = 2**53  # doubles hold every integer below this exactly
_MATCHED = "__matched"


@dataclass(frozen=True)
class _Query:
    """One statement. ``template`` has ``%(name)s`` placeholders that pinotdb fills with quoted literals."""

    purpose: str
    table: str
    template: str
    params: tuple[tuple[str, str], ...]
    limit: int
    truncates: bool  # True: ``limit`` rows may be a cut answer (we ask one row more than we accept)

    @property
    def sql(self) -> str:
        """The statement exactly as the broker receives it."""
        return apply_parameters(self.template, dict(self.params))


@dataclass(frozen=True)
class _Plan:
    queries: list[_Query]
    reduce: Callable[[list[list[dict[str, Any]]]], Any]


_PLACEHOLDER = re.compile(r"%\((?:tenant|customer|campaign)\)s")
"""The only placeholders a statement carries: the key values."""


class PinotSpeedStore(SpeedStore):
    """:class:`SpeedStore` over Pinot REALTIME tables, answer for answer equal to the embedded store."""

    reads_block = True  # every read is an HTTP query to the broker
    erase_deletes = False  # the rows stay in Pinot's segments until retention; answers leave them out

    def __init__(
        self,
        config: PinotConfig | None = None,
        *,
        session: httpx.Client | None = None,
        erasures: ErasureList | None = None,
    ):
        self.config = config or PinotConfig()
        # the built-in catalog plus the metrics registered when the store opens (SpeedStore.catalog)
        if self.config.registered_metrics is not None:
            self.catalog = metric_registry.current(self.config.registered_metrics).catalog
        self.sql = PinotSql()
        self._own_session = session is None
        self._session = session or httpx.Client(timeout=self.config.http_timeout_s)
        url = urlsplit(self.config.broker_url)
        self._connection = pinotdb.connect(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 80),
            path=url.path.rstrip("/") + "/query/sql",
            scheme=url.scheme,
            session=self._session,
        )
        self._options = f"timeoutMs={self.config.query_timeout_ms}"
        self._cursors = threading.local()
        self._status: tuple[float, SpeedStatus] | None = None
        self._pool = (
            ThreadPoolExecutor(self.config.parallelism, thread_name_prefix="pinot")
            if self.config.parallelism > 1
            else None
        )
        self._topics = tuple(self.config.tables)
        self._customer = self.catalog.bases(Grain.customer)
        self._series = [m for m in self._customer if m.timeseries]
        self._campaign = self.catalog.bases(Grain.campaign)
        self._campaign_key = GRAIN_KEYS[Grain.campaign][1]
        self._orders = self.catalog[COHORT_METRIC]
        # Erased customers are left out of every answer (Pinot cannot delete REALTIME rows, docs/pinot.md):
        # those of the erasure log (durable, keyed hashes: ``erasures``) and those erased in this process.
        self._erasures = erasures
        self._erased: dict[str, frozenset[str]] = {}
        self._erased_lock = threading.Lock()
        names = {m.name for m in self.catalog.of_kind(BaseMetric)}
        clash = {n for n in names if n.endswith(_MATCHED) or f"{n}{_MATCHED}" in names}
        if clash:  # pragma: no cover - a catalog rule in spirit; keeps companion aliases unambiguous
            raise ValueError(f"metric names clash with companion aliases: {sorted(clash)}")

    def close(self) -> None:
        if self._connection.closed:
            return
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._connection.close()  # closes its cursors; the session only if we made it (below)
        if self._own_session:
            self._session.close()

    def __enter__(self) -> PinotSpeedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ SpeedStore

    def customer(self, tenant: str, customer: str, watermark: Watermark) -> Partial:
        return self._customer_answer(
            self._plan_customer(tenant, customer, watermark), tenant, customer, watermark
        )

    def customer_entities(
        self, tenant: str, customer: str, entity: str, watermark: Watermark
    ) -> dict[str, Milestones]:
        plan = self._plan_customer_entities(tenant, customer, entity, watermark)
        return self._customer_answer(plan, tenant, customer, watermark)

    def customer_hours(
        self, tenant: str, customer: str, watermark: Watermark, start_ms: int, end_ms: int
    ) -> dict[int, Partial]:
        plan = self._plan_customer_hours(tenant, customer, watermark, start_ms, end_ms)
        return self._customer_answer(plan, tenant, customer, watermark)

    def campaign_hours(
        self, tenant: str, campaign: str, watermark: Watermark, start_ms: int, end_ms: int
    ) -> dict[int, Partial]:
        return self._answer(
            self._plan_campaign_hours(tenant, campaign, watermark, start_ms, end_ms), watermark
        )

    def tenant_entities(
        self, tenant: str, entity: str, watermark: Watermark
    ) -> dict[tuple[str, str], Milestones]:
        found = self._answer(self._plan_tenant_entities(tenant, entity, watermark), watermark)
        return {k: v for k, v in found.items() if not self._is_erased(tenant, k[0])}

    def order_months(self, tenant: str, watermark: Watermark) -> dict[str, set[int]]:
        found = self._answer(self._plan_order_months(tenant, watermark), watermark)
        return {c: months for c, months in found.items() if not self._is_erased(tenant, c)}

    def alias_edges(self, tenant: str, customers: Iterable[str] | None, watermark: Watermark) -> set[Alias]:
        edges = self._answer(self._plan_alias_edges(tenant, watermark), watermark)
        # an alias is an event of its survivor: the edges an erased id survives go, as in the master
        edges = {e for e in edges if not self._is_erased(tenant, e.customer_id)}
        if customers is None:
            return edges
        wanted = set(customers)
        return {e for e in edges if wanted & set(e.ids)}

    def customer_traits(
        self, tenant: str, customer: str, watermark: Watermark
    ) -> dict[str, tuple[int, int, str]]:
        plan = self._plan_customer_traits(tenant, customer, watermark)
        return self._customer_answer(plan, tenant, customer, watermark)

    def touched_customers(self, tenant: str, watermark: Watermark) -> set[str]:
        found = self._answer(self._plan_touched_customers(tenant, watermark), watermark)
        return {c for c in found if not self._is_erased(tenant, c)}

    def status(self) -> SpeedStatus:
        cached = self._status
        if cached is not None and time.monotonic() - cached[0] < self.config.status_cache_s:
            return cached[1]
        results = self._run(self._plan_coverage().queries)
        positions: dict[tuple[str, int], int] = {}
        events, last_ms = 0, None
        for topic, rows in zip(self._topics, results, strict=True):
            for row in rows:
                tp = (topic, _exact_int(row["partition"], "partition"))
                positions[tp] = _exact_int(row["last_offset"], "offset") + 1
                events += _exact_int(row["events"], "events")
                t = _exact_int(row["last_broker_time"], "broker_time")
                last_ms = t if last_ms is None else max(last_ms, t)
        lag = int(time.time() * 1000) - last_ms if last_ms is not None else 0
        status = SpeedStatus(
            lag_ms=max(lag, 0), positions=positions, events=events, duplicates=0, caught_up=False
        )
        self._status = (time.monotonic(), status)
        return status

    def on_batch_published(self, watermark: Watermark, *, block_size: int | None = None) -> None:
        """Nothing to free: every read filters ``offset >= W`` itself (exact at any W, whatever B), and
        Pinot's retention bounds the tables."""

    def erase(self, tenant: str, customers: Iterable[str]) -> int:
        """Leave ``customers`` out of every answer about ``tenant`` from now on. Returns 0 (no row removed).

        Pinot deletes no row of this REALTIME table: the rows stay in its segments until its retention
        removes them (docs/pinot.md, "Erasure"). The exclusion survives a restart because it is read from
        the erasure log (``erasures``, keyed hashes only, re-read every second), where serving records an
        erasure before it calls this; the ids given here take effect at once, also without a log.
        """
        with self._erased_lock:
            self._erased[tenant] = self._erased.get(tenant, frozenset()) | frozenset(customers)
        if self._erasures is not None:
            self._erasures.refresh()
        self._status = None
        return 0

    def _is_erased(self, tenant: str, customer: str) -> bool:
        if customer in self._erased.get(tenant, ()):
            return True
        return self._erasures is not None and self._erasures.erased(tenant, customer)

    def _erasing(self, tenant: str) -> bool:
        """Can an answer about this tenant hold an erased customer's rows?"""
        return tenant in self._erased or (self._erasures is not None and self._erasures.has_erasures(tenant))

    def explain(self, method: str, *args: Any) -> list[str]:
        """The statements a read sends, without running them: ``explain("customer", tenant, customer, W)``.

        ``method`` is a SpeedStore read with its arguments, or ``"coverage"`` (no arguments) for the
        per-table coverage statements that every read also sends.
        """
        planner = getattr(self, f"_plan_{method}", None)
        if planner is None or method in ("hours", "entities"):
            raise ValueError(f"no read named {method!r}")
        return [q.sql for q in planner(*args).queries]

    # ------------------------------------------------------------------ plans

    def _plan_customer(self, tenant: str, customer: str, watermark: Watermark) -> _Plan:
        queries: list[_Query] = []
        parts: list[tuple[str, list[BaseMetric]]] = []  # what each query holds, in order
        for topic in self._topics:
            metrics = [m for m in self._customer if _applies(m, FAMILY_BY_TOPIC[topic])]
            if not metrics:
                continue
            where, params = self._where(topic, tenant, [("customer_id", "customer", customer)], watermark)
            folded = [m for m in metrics if m.aggregate is not Aggregate.hll_distinct]
            if folded:
                queries.append(
                    self._select(
                        "customer",
                        topic,
                        self._aggregate_columns(folded),
                        where,
                        params,
                        limit=1,
                        truncates=False,
                    )
                )
                parts.append(("fold", folded))
            for m in metrics:
                if m.aggregate is Aggregate.hll_distinct:
                    value, cond = self.sql.distinct_value(m)
                    queries.append(
                        self._select(
                            f"customer {m.name}",
                            topic,
                            [("value", value)],
                            [*where, cond],
                            params,
                            distinct=True,
                        )
                    )
                    parts.append(("distinct", [m]))

        def reduce(results: list[list[dict[str, Any]]]) -> Partial:
            out = {m.name: aggregates.empty(m) for m in self._customer}
            for (kind, metrics), rows in zip(parts, results, strict=True):
                for row in rows:
                    for m in metrics:
                        state = {row["value"]} if kind == "distinct" else self._state(m, row)
                        out[m.name] = aggregates.merge(m, out[m.name], state)
            return out

        return _Plan(queries, reduce)

    def _plan_customer_hours(self, tenant, customer, watermark, start_ms, end_ms) -> _Plan:
        key = [("customer_id", "customer", customer)]
        return self._plan_hours("customer hours", self._series, tenant, key, watermark, start_ms, end_ms)

    def _plan_campaign_hours(self, tenant, campaign, watermark, start_ms, end_ms) -> _Plan:
        key = [(self._campaign_key, "campaign", campaign)]
        return self._plan_hours(
            "campaign hours",
            self._campaign,
            tenant,
            key,
            watermark,
            start_ms,
            end_ms,
            by_customer=self._erasing(tenant),  # an erased customer's rows are told apart, and left out
        )

    def _plan_customer_entities(self, tenant, customer, entity, watermark) -> _Plan:
        return self._plan_entities(tenant, entity, watermark, customer=customer)

    def _plan_tenant_entities(self, tenant, entity, watermark) -> _Plan:
        return self._plan_entities(tenant, entity, watermark)

    def _plan_hours(
        self,
        purpose: str,
        bases: list[BaseMetric],
        tenant: str,
        key: list[tuple[str, str, str]],
        watermark: Watermark,
        start_ms: int,
        end_ms: int,
        *,
        by_customer: bool = False,
    ) -> _Plan:
        """Per-hour states of the key. ``by_customer``: grouped by customer too, and the rows of erased
        customers left out before folding (a tenant-level key, such as a campaign, of a tenant with
        erasures: Pinot still holds their rows)."""
        # an event is in bucket hour(t) = t - t % H; hour(t) in [start, end)  <=>  t in [ceil_H(start), ceil_H(end))
        lo, hi = -(-start_ms // HOUR_MS) * HOUR_MS, -(-end_ms // HOUR_MS) * HOUR_MS
        queries: list[_Query] = []
        parts: list[tuple[str, list[BaseMetric]]] = []
        hour = self.sql.time_bucket("HOUR")
        customer_id = self.sql.ident("customer_id")
        per_customer = [("customer_id", customer_id)] if by_customer else []
        time_range = [f"{self.sql.ident('event_time')} >= {lo}", f"{self.sql.ident('event_time')} < {hi}"]
        for topic in self._topics if lo < hi else ():
            family = FAMILY_BY_TOPIC[topic]
            if not all(_can_be_set(family, column) for column, _, _ in key):
                continue  # no row of this topic can have the key: the embedded store never sees one either
            where, params = self._where(topic, tenant, key, watermark)
            where += time_range
            metrics = [m for m in bases if _applies(m, family)]
            folded = [m for m in metrics if m.aggregate is not Aggregate.hll_distinct]
            # one group per hour with any event of the key, even if no metric matches it (as embedded)
            columns = [("hour", hour), *per_customer, *self._aggregate_columns(folded)]
            group_by = [hour, customer_id] if by_customer else [hour]
            queries.append(self._select(purpose, topic, columns, where, params, group_by=group_by))
            parts.append(("fold", folded))
            for m in metrics:
                if m.aggregate is Aggregate.hll_distinct:
                    value, cond = self.sql.distinct_value(m)
                    columns = [("hour", hour), *per_customer, ("value", value)]
                    queries.append(
                        self._select(
                            f"{purpose} {m.name}", topic, columns, [*where, cond], params, distinct=True
                        )
                    )
                    parts.append(("distinct", [m]))

        def reduce(results: list[list[dict[str, Any]]]) -> dict[int, Partial]:
            out: dict[int, Partial] = {}
            for (kind, metrics), rows in zip(parts, results, strict=True):
                for row in rows:
                    if by_customer and self._is_erased(tenant, row["customer_id"]):
                        continue
                    partial = out.setdefault(
                        _exact_int(row["hour"], "hour"), {m.name: aggregates.empty(m) for m in bases}
                    )
                    for m in metrics:
                        state = {row["value"]} if kind == "distinct" else self._state(m, row)
                        partial[m.name] = aggregates.merge(m, partial[m.name], state)
            return dict(sorted(out.items()))

        return _Plan(queries, reduce)

    def _plan_entities(
        self, tenant: str, name: str, watermark: Watermark, *, customer: str | None = None
    ) -> _Plan:
        entity = _entity(name)
        types = {FAMILY_BY_EVENT_TYPE[ms.event_type] for ms in entity.milestones}
        key = [("customer_id", "customer", customer)] if customer is not None else []
        queries = []
        entity_id = self.sql.ident(entity.id_column)
        customer_id = self.sql.ident("customer_id")
        for topic in self._topics:
            if FAMILY_BY_TOPIC[topic] not in types:
                continue
            where, params = self._where(topic, tenant, key, watermark)
            where.append(self.sql.entity_filter(entity))
            columns = [("entity_id", entity_id)] + (
                [("customer_id", customer_id)] if customer is None else []
            )
            for ms in entity.milestones:
                columns += [
                    (ms.name, self.sql.milestone(entity, ms.name)),
                    (ms.name + _MATCHED, self.sql.milestone_matched(entity, ms.name)),
                ]
            group_by = [entity_id] if customer is not None else [customer_id, entity_id]
            purpose = f"{'customer' if customer is not None else 'tenant'} {entity.name} milestones"
            queries.append(self._select(purpose, topic, columns, where, params, group_by=group_by))

        def reduce(results: list[list[dict[str, Any]]]) -> dict:
            out: dict[Any, Milestones] = {}
            for rows in results:
                for row in rows:
                    k = row["entity_id"] if customer is not None else (row["customer_id"], row["entity_id"])
                    merged = out.setdefault(k, {ms.name: None for ms in entity.milestones})
                    for ms in entity.milestones:
                        if _exact_int(row[ms.name + _MATCHED], f"{entity.name}.{ms.name} count"):
                            t = _exact_int(row[ms.name], f"{entity.name}.{ms.name}")
                            aggregates.reach_milestone(merged, ms.name, t)
            return out

        return _Plan(queries, reduce)

    def _plan_order_months(self, tenant: str, watermark: Watermark) -> _Plan:
        month = self.sql.time_bucket("MONTH")  # the month of the hour start is the month of the event
        customer_id = self.sql.ident("customer_id")
        queries = []
        for topic in self._topics:
            if not _applies(self._orders, FAMILY_BY_TOPIC[topic]):
                continue
            where, params = self._where(topic, tenant, [], watermark)
            where.append(self.sql.predicate(self._orders.filter))
            columns = [
                ("customer_id", customer_id),
                ("month", month),
                *self._aggregate_columns([self._orders]),
            ]
            queries.append(
                self._select("order months", topic, columns, where, params, group_by=[customer_id, month])
            )

        def reduce(results: list[list[dict[str, Any]]]) -> dict[str, set[int]]:
            buckets: dict[str, list[tuple[int, Any]]] = {}
            for rows in results:
                for row in rows:
                    buckets.setdefault(row["customer_id"], []).append(
                        (_exact_int(row["month"], "month"), self._state(self._orders, row))
                    )
            return {c: months for c, pairs in buckets.items() if (months := order_months(pairs))}

        return _Plan(queries, reduce)

    def _plan_alias_edges(self, tenant: str, watermark: Watermark) -> _Plan:
        """Every alias of the tenant after W (few: one per identity merge); the caller keeps those naming
        the ids it walks, so one statement answers a whole layer of ``schemas.identity.component_of``."""
        ident = self.sql.ident
        columns = [(c, ident(c)) for c in ("customer_id", "previous_id", "event_time", "event_id")]
        queries = []
        for topic in self._topics:
            if not _can_be_set(FAMILY_BY_TOPIC[topic], "previous_id"):
                continue
            where, params = self._where(topic, tenant, [], watermark)
            where.append(f"{ident('event_type')} = {self.sql.literal(ALIAS_EVENT)}")
            queries.append(self._select("alias edges", topic, columns, where, params, distinct=True))

        def reduce(results: list[list[dict[str, Any]]]) -> set[Alias]:
            return {
                Alias(
                    _exact_int(r["event_time"], "event_time"),
                    r["event_id"],
                    r["previous_id"],
                    r["customer_id"],
                )
                for rows in results
                for r in rows
            }

        return _Plan(queries, reduce)

    def _plan_customer_traits(self, tenant: str, customer: str, watermark: Watermark) -> _Plan:
        columns, predicate = self.sql.identify_rows()
        queries = []
        for topic in self._topics:
            if not _can_be_set(FAMILY_BY_TOPIC[topic], "traits"):
                continue
            where, params = self._where(topic, tenant, [("customer_id", "customer", customer)], watermark)
            queries.append(self._select("identify rows", topic, columns, [*where, predicate], params))

        def reduce(results: list[list[dict[str, Any]]]) -> dict[str, tuple[int, int, str]]:
            states: dict[str, tuple[int, int, str]] = {}
            for rows in results:
                for row in rows:
                    t, o = _exact_int(row["event_time"], "event_time"), _exact_int(row["offset"], "offset")
                    fold_identify(states, t, o, row["traits"])
            return states

        return _Plan(queries, reduce)

    def _plan_touched_customers(self, tenant: str, watermark: Watermark) -> _Plan:
        customer_id = self.sql.ident("customer_id")
        queries = []
        for topic in self._topics:
            where, params = self._where(topic, tenant, [], watermark)
            queries.append(
                self._select(
                    "touched customers", topic, [("customer_id", customer_id)], where, params, distinct=True
                )
            )
        return _Plan(queries, lambda results: {row["customer_id"] for rows in results for row in rows})

    def _plan_coverage(self) -> _Plan:
        return _Plan([self._coverage_query(topic) for topic in self._topics], list)

    def _coverage_query(self, topic: str) -> _Query:
        ident = self.sql.ident
        columns = [
            ("partition", ident("partition")),
            ("first_offset", f"MIN({ident('offset')})"),
            ("last_offset", f"MAX({ident('offset')})"),
            ("events", "COUNT(*)"),
            ("last_broker_time", f"MAX({ident('broker_time')})"),
        ]
        return self._select("coverage", topic, columns, [], {}, group_by=[ident("partition")])

    # ------------------------------------------------------------------ SQL assembly

    def _where(
        self, topic: str, tenant: str, key: list[tuple[str, str, str]], watermark: Watermark
    ) -> tuple[list[str], dict[str, str]]:
        """Tenant first (every read is tenant-scoped), then the grain key, then the offset watermark."""
        ident = self.sql.ident
        where = [f"{ident('tenant_id')} = %(tenant)s"]
        params = {"tenant": tenant}
        for column, param, value in key:
            where.append(f"{ident(column)} = %({param})s")
            params[param] = value
        if (clause := self._watermark(topic, watermark)) is not None:
            where.append(clause)
        return where, params

    def _watermark(self, topic: str, watermark: Watermark) -> str | None:
        """Rows at or above W[tp] of this topic's partitions; partitions absent from W (or at 0) pass whole."""
        cuts = sorted((p, o) for (t, p), o in watermark.items() if t == topic and o > 0)
        if not cuts:
            return None
        part, offset = self.sql.ident("partition"), self.sql.ident("offset")
        others = f"{part} NOT IN ({', '.join(str(p) for p, _ in cuts)})"
        return "(" + " OR ".join([others, *(f"({part} = {p} AND {offset} >= {o})" for p, o in cuts)]) + ")"

    def _aggregate_columns(self, metrics: Iterable[BaseMetric]) -> list[tuple[str, str]]:
        columns = []
        for m in metrics:
            columns.append((m.name, self.sql.aggregate(m)))
            if m.aggregate is not Aggregate.count:
                columns.append((m.name + _MATCHED, self.sql.matched(m)))
        return columns

    def _select(
        self,
        purpose: str,
        topic: str,
        columns: list[tuple[str, str]],
        where: list[str],
        params: dict[str, str],
        *,
        group_by: list[str] | None = None,
        distinct: bool = False,
        limit: int | None = None,
        truncates: bool = True,
    ) -> _Query:
        table = self.config.tables[topic]
        ident = self.sql.ident
        select = ", ".join(f"{expr} AS {ident(alias)}" for alias, expr in columns)
        sql = f"SELECT {'DISTINCT ' if distinct else ''}{select} FROM {ident(table)}"
        if where:
            sql += " WHERE " + " AND ".join(
                f"({w})" if " OR " in w and not w.startswith("(") else w for w in where
            )
        if group_by:
            sql += " GROUP BY " + ", ".join(group_by)
        limit = self.config.max_rows + 1 if limit is None else limit
        template = sql + f" LIMIT {limit}"
        # pinotdb formats the statement with %: only our placeholders may carry a percent sign
        if _PLACEHOLDER.sub("", template).count("%"):
            raise ValueError(f"statement has a stray '%': {template}")
        return _Query(purpose, table, template, tuple(sorted(params.items())), limit, truncates)

    # ------------------------------------------------------------------ execution

    def _customer_answer(self, plan: _Plan, tenant: str, customer: str, watermark: Watermark) -> Any:
        """A read of one customer: an erased one's answer is that of a customer without events."""
        return self._answer(plan, watermark, empty=self._is_erased(tenant, customer))

    def _answer(self, plan: _Plan, watermark: Watermark, *, empty: bool = False) -> Any:
        """Run the coverage statements and the plan's, check coverage, reduce. ``empty``: the plan's
        statements are not sent and it reduces no row (coverage is still checked, as for any read)."""
        coverage = self._plan_coverage().queries
        results = self._run(coverage + ([] if empty else plan.queries))
        if empty:
            results += [[] for _ in plan.queries]
        held: set[tuple[str, int]] = set()
        for topic, rows in zip(self._topics, results[: len(coverage)], strict=True):
            for row in rows:
                tp = (topic, _exact_int(row["partition"], "partition"))
                held.add(tp)
                first = _exact_int(row["first_offset"], "offset")
                if first > watermark.get(tp, 0):
                    raise CoverageError(
                        f"{tp}: Pinot table {self.config.tables[topic]} holds offsets from {first} only, "
                        f"above W={watermark.get(tp, 0)} (segments past retention, or consumption started later)"
                    )
        for tp in sorted(tp for tp in watermark if tp[0] in self.config.tables and tp not in held):
            raise CoverageError(
                f"{tp}: Pinot table {self.config.tables[tp[0]]} holds no row of this partition, which W names "
                f"(W={watermark[tp]}): not consumed (not assigned, or not reached yet)"
            )
        return plan.reduce(results[len(coverage) :])

    def _run(self, queries: list[_Query]) -> list[list[dict[str, Any]]]:
        if self._pool is None or len(queries) < 2:
            return [self._execute(q) for q in queries]
        futures = [self._pool.submit(self._execute, q) for q in queries]
        return [f.result() for f in futures]

    def _execute(self, query: _Query) -> list[dict[str, Any]]:
        where = f"Pinot ({query.purpose} on {query.table})"
        cursor = getattr(self._cursors, "cursor", None)
        if cursor is None:  # one cursor per thread: a pinotdb cursor keeps the last result as state
            cursor = self._cursors.cursor = self._connection.cursor()
        try:
            cursor.execute(query.template, dict(query.params), queryOptions=self._options)
        except httpx.HTTPError as exc:
            raise CoverageError(f"{where}: broker {self.config.broker_url} unreachable: {exc}") from exc
        except pinot_errors.Error as exc:  # exceptions in the answer, missing servers, non-200
            raise CoverageError(f"{where} did not answer in full: {_first_line(exc)}") from exc
        stats = cursor.query_stats
        for flag in ("numGroupsLimitReached", "partialResult", "groupsTrimmed"):
            if stats.get(flag):
                raise CoverageError(f"{where}: the broker reports {flag}; the answer would be incomplete")
        names = [d[0] for d in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        if query.truncates and len(rows) >= query.limit:
            raise CoverageError(
                f"{where}: more than {query.limit - 1} rows (max_rows); refusing a truncated answer"
            )
        return rows

    def _state(self, metric: BaseMetric, row: dict[str, Any]) -> Any:
        """One row's raw state of a count/sum/min/max metric, typed as the embedded store's."""
        if metric.aggregate is Aggregate.count:
            return _exact_int(row[metric.name], metric.name)
        if not _exact_int(row[metric.name + _MATCHED], metric.name + _MATCHED):
            return None  # no matching row: Pinot's 0 / ±Infinity is not a value
        return _exact_int(row[metric.name], metric.name)


def _exact_int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT:
        return int(value)
    raise CoverageError(
        f"Pinot returned {value!r} for {what}: not an exact integer (DOUBLE results are exact only below 2**53)"
    )


def _applies(metric: BaseMetric, family: Family) -> bool:
    """Can an event of this family pass the metric's filter?"""
    types = metric.filter.event_types
    return types == "*" or any(FAMILY_BY_EVENT_TYPE[t] is family for t in types)


def _can_be_set(family: Family, column: str) -> bool:
    """Can a valid event of this family carry the column (``amount_micros`` comes from ``amount``)?"""
    fields = MODEL_BY_FAMILY[family].model_fields
    return column in fields or column.removesuffix("_micros") in fields


def _entity(name: str) -> Entity:
    for entity in CATALOG.entities:
        if entity.name == name:
            return entity
    raise KeyError(f"unknown entity {name!r}")


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:500]
