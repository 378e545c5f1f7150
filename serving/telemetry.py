"""One worker's Prometheus registry: the request-latency histogram the hot lane observes, and collectors
that read the speed store, the batch loader, the profile cache, the dead-letter counts, the quality
ledger and the supervised workers at scrape time
(nothing to keep up to date on the request path)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lambdalytics.infra.erasures import ERASED_EVENTS_SKIPPED
from lambdalytics.infra.quality_ledger import UNKNOWN_TENANT
from lambdalytics.infra.supervisor import Supervised, WorkerMetrics
from lambdalytics.schemas.catalog.quality import DEAD_LETTER_PREFIX, UNKNOWN_TENANT_LABEL
from lambdalytics.speed.store import SpeedStore

from .answer_cache import AnswerCache
from .loader import BatchLoader
from .quality import LedgerMissing, QualitySource
from .streams import LiveStreams

__all__ = ["Telemetry"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class _ServingCollector(Collector):
    """The speed store's counters, the batch version served and the records that broke the contract."""

    def __init__(
        self,
        speed: SpeedStore,
        loader: BatchLoader,
        dead_lettered: Callable[[], Mapping[str, int]] | None,
    ):
        self.speed, self.loader, self.dead_lettered = speed, loader, dead_lettered

    def collect(self):
        status = self.speed.status()
        yield GaugeMetricFamily("lambdalytics_speed_lag_ms", "Speed store lag", value=status.lag_ms)
        yield GaugeMetricFamily(
            "lambdalytics_batch_version", "Batch version served", value=self.loader.current().version
        )
        yield GaugeMetricFamily(
            "lambdalytics_speed_events", "Events aggregated by the speed store", value=status.events
        )
        yield GaugeMetricFamily(
            "lambdalytics_speed_duplicates",
            "Duplicate events skipped by the speed store",
            value=status.duplicates,
        )
        yield CounterMetricFamily(
            "lambdalytics_speed_lost_offsets",
            "Offsets the speed consumer jumped over (lost positions), all time",
            value=status.lost_offsets,
        )
        yield GaugeMetricFamily(
            "lambdalytics_speed_open_gaps",
            "Lost offset ranges no batch version covers yet (reads below them answer 503)",
            value=len(status.gaps),
        )
        dead = GaugeMetricFamily(
            "lambdalytics_invalid_records",
            "Records that broke the contract (dead-lettered by the archiver)",
            labels=["reason"],
        )
        for reason, n in (self.dead_lettered() if self.dead_lettered else {}).items():
            dead.add_metric([reason], n)
        yield dead


class _AnswerCacheCollector(Collector):
    """An answer cache's own counters, read at scrape time (no lock on the request path): the profile
    cache (``profile``) or the tenant-level answers' (``answer``: campaign stats, cohorts, live orders)."""

    def __init__(self, cache: AnswerCache, name: str, what: str):
        self.cache, self.name, self.what = cache, name, what

    def collect(self):
        lookups = CounterMetricFamily(
            f"lambdalytics_{self.name}_cache_lookups", f"{self.what} cache lookups", labels=["result"]
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            f"lambdalytics_{self.name}_cache_entries", f"{self.what}s held", value=len(self.cache)
        )


_QUALITY_COUNTERS = {
    "records": "Valid records that arrived",
    "duplicates": "Valid records that were a later copy of an event_id",
    "late": "Valid records whose Kafka timestamp is over the lateness threshold after event_time",
    "orders": "Orders (first copies)",
    "attributed_orders": "Orders carrying a campaign_id (first copies)",
    "events": "Valid records that were the first copy of their event_id",
    "identified_events": "Events (first copies) whose customer_id was identified when they arrived",
}


class _QualityCollector(Collector):
    """The quality ledger's all-time counters per tenant (rates are PromQL: ``rate(duplicates) /
    rate(records)``). Series: tenants × (7 counters + dead-letter reasons seen + topics); reasons and
    topics are closed sets, so the count grows with tenants only (docs/metrics.md "Data quality")."""

    def __init__(self, source: QualitySource):
        self.source = source

    def collect(self):
        try:
            ledger = self.source.ledger()
        except LedgerMissing:
            return
        families = {
            name: CounterMetricFamily(f"lambdalytics_quality_{name}", help_, labels=["tenant"])
            for name, help_ in _QUALITY_COUNTERS.items()
        }
        dead = CounterMetricFamily(
            "lambdalytics_quality_dead_letters", "Dead-lettered records", labels=["tenant", "reason"]
        )
        for (tenant, counter), n in sorted(ledger.totals().items()):
            label = tenant if tenant != UNKNOWN_TENANT else UNKNOWN_TENANT_LABEL
            if counter.startswith(DEAD_LETTER_PREFIX):
                dead.add_metric([label, counter[len(DEAD_LETTER_PREFIX) :]], n)
            elif counter in families:
                families[counter].add_metric([label], n)
        last = GaugeMetricFamily(
            "lambdalytics_quality_last_event_timestamp_seconds",
            "Kafka timestamp of the newest valid record, per tenant and topic",
            labels=["tenant", "topic"],
        )
        for (tenant, topic), ms in sorted(ledger.all_last_events().items()):
            last.add_metric([tenant, topic], ms / 1000)
        yield from families.values()
        yield dead
        yield last


class _StreamCollector(Collector):
    def __init__(self, streams: LiveStreams):
        self.streams = streams

    def collect(self):
        yield GaugeMetricFamily(
            "lambdalytics_open_streams", "GET /v1/live/stream connections open", value=self.streams.open
        )
        pushed = CounterMetricFamily(
            "lambdalytics_stream_pushes", "Answers pushed over GET /v1/live/stream", labels=["event"]
        )
        for event, n in sorted(self.streams.pushed.items()):
            pushed.add_metric([event], n)
        yield pushed


class Telemetry:
    """What /metrics shows for this worker."""

    def __init__(
        self,
        *,
        speed: SpeedStore,
        loader: BatchLoader,
        profiles: AnswerCache,
        answers: AnswerCache | None = None,
        dead_lettered: Callable[[], Mapping[str, int]] | None = None,
        workers: Callable[[], list[Supervised]] = list,
        streams: LiveStreams | None = None,
        quality: QualitySource | None = None,
    ):
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "lambdalytics_request_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.registry.register(_ServingCollector(speed, loader, dead_lettered))
        self.registry.register(ERASED_EVENTS_SKIPPED)  # counted by this process's archiver and consumer
        self.registry.register(_AnswerCacheCollector(profiles, "profile", "Profile answer"))
        if answers is not None:
            self.registry.register(_AnswerCacheCollector(answers, "answer", "Tenant-level answer"))
        self.registry.register(WorkerMetrics(workers))
        if streams is not None:
            self.registry.register(_StreamCollector(streams))  # restarts and up, per supervised worker
        if quality is not None:
            self.registry.register(_QualityCollector(quality))

    def scrape(self) -> bytes:
        """The Prometheus text exposition of everything above."""
        return generate_latest(self.registry)
