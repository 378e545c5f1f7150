"""What a serving process holds: credentials, the batch loader, the merger, the producer, batch runs."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lambdalytics.infra.kafka_io import EventProducer
from lambdalytics.infra.settings import Settings
from lambdalytics.infra.supervisor import Supervised, WorkerMetrics
from lambdalytics.speed.store import SpeedStore

from .answer_cache import AnswerCache
from .auth import TenantRegistry, TokenSigner
from .loader import BatchLoader
from .merge import Merger

log = logging.getLogger(__name__)

__all__ = ["BatchRuns", "ServingState"]


def _secret(settings: Settings, name: str, value: str | None) -> str:
    """A configured secret, or (dev only) one generated once and kept in the data dir."""
    if value:
        return value
    if settings.env == "prod":
        raise RuntimeError(f"LAMBDALYTICS_{name.upper()} must be set when LAMBDALYTICS_ENV=prod")
    path = Path(settings.data_dir) / "run" / f"{name}.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


class BatchRuns:
    """Batch runs triggered through the admin API: one at a time, in a background thread."""

    def __init__(self, settings: Settings, on_success=None):
        self.settings = settings
        self.on_success = on_success
        self.latest: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def trigger(self) -> str | None:
        """Start a run; None if one is already running."""
        with self._lock:
            if self.latest and self.latest["state"] == "running":
                return None
            run_id = uuid.uuid4().hex
            self.latest = {
                "run_id": run_id,
                "state": "running",
                "batch_version": None,
                "started_at": dt.datetime.now(dt.UTC),
                "finished_at": None,
                "error": None,
            }
        threading.Thread(target=self._run, args=(run_id,), name="batch-run", daemon=True).start()
        return run_id

    def _run(self, run_id: str) -> None:
        from lambdalytics.batch.job import run_batch

        try:
            manifest = run_batch(self.settings, show_progress=False)
            update = {"state": "succeeded", "batch_version": manifest.batch_version if manifest else None}
            if self.on_success:
                self.on_success()
        except Exception as exc:  # reported through the API, not raised into a dead thread
            log.exception("batch run %s failed", run_id)
            update = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
        with self._lock:
            self.latest = {**self.latest, **update, "finished_at": dt.datetime.now(dt.UTC)}


class _ProfileCacheCollector(Collector):
    """The profile cache's own counters, read at scrape time (no lock on the request path)."""

    def __init__(self, cache: AnswerCache):
        self.cache = cache

    def collect(self):
        lookups = CounterMetricFamily(
            "lambdalytics_profile_cache_lookups", "Profile answer cache lookups", labels=["result"]
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "lambdalytics_profile_cache_entries", "Profile answers held", value=len(self.cache)
        )


@dataclass
class ServingState:
    settings: Settings
    speed: SpeedStore
    bootstrap: str | None = None
    loader: BatchLoader = field(init=False)
    merger: Merger = field(init=False)
    registry: TenantRegistry = field(init=False)
    signer: TokenSigner = field(init=False)
    admin_token: str = field(init=False)
    runs: BatchRuns = field(init=False)
    started_at: float = field(default_factory=time.time)
    dead_lettered: Any = None  # a callable returning {reason: count} from the speed consumer, when embedded
    workers: list[Supervised] = field(init=False)  # the loader's, and the speed consumer's when embedded
    _producer: EventProducer | None = None

    def __post_init__(self) -> None:
        data_dir = Path(self.settings.data_dir)
        self.loader = BatchLoader(data_dir, self.speed, poll_seconds=self.settings.batch_poll_seconds)
        self.merger = Merger(
            self.loader.current, self.speed, profile_cache=self.settings.profile_cache_entries
        )
        self.registry = TenantRegistry(data_dir / "run" / "tenants.sqlite")
        admin = self.settings.admin_token.get_secret_value() if self.settings.admin_token else None
        self.admin_token = _secret(self.settings, "admin_token", admin)
        token = self.settings.token_secret.get_secret_value() if self.settings.token_secret else None
        self.signer = TokenSigner(_secret(self.settings, "token_secret", token))
        self.runs = BatchRuns(self.settings, on_success=self.loader.refresh)
        self.metrics_registry = CollectorRegistry()
        self.request_latency = Histogram(
            "lambdalytics_request_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            registry=self.metrics_registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self._speed_lag = Gauge(
            "lambdalytics_speed_lag_ms", "Speed store lag", registry=self.metrics_registry
        )
        self._batch_version = Gauge(
            "lambdalytics_batch_version", "Batch version served", registry=self.metrics_registry
        )
        self._events = Gauge(
            "lambdalytics_speed_events",
            "Events aggregated by the speed store",
            registry=self.metrics_registry,
        )
        self._duplicates = Gauge(
            "lambdalytics_speed_duplicates",
            "Duplicate events skipped by the speed store",
            registry=self.metrics_registry,
        )
        self.metrics_registry.register(_ProfileCacheCollector(self.merger.profiles))
        self._dead = Gauge(
            "lambdalytics_invalid_records",
            "Records that broke the contract (dead-lettered by the archiver)",
            ["reason"],
            registry=self.metrics_registry,
        )
        # supervised workers: lambdalytics_worker_restarts_total / lambdalytics_worker_up, per worker
        self.workers = [self.loader.worker]
        self.metrics_registry.register(WorkerMetrics(lambda: self.workers))

    def observe(self) -> None:
        """Refresh the gauges before a Prometheus scrape."""
        status = self.speed.status()
        self._speed_lag.set(status.lag_ms)
        self._events.set(status.events)
        self._duplicates.set(status.duplicates)
        self._batch_version.set(self.loader.current().version)
        for reason, n in (self.dead_lettered() if self.dead_lettered else {}).items():
            self._dead.labels(reason).set(n)

    @property
    def producer(self) -> EventProducer:
        if self._producer is None:
            if not self.bootstrap:
                raise RuntimeError("no Kafka configured for POST /v1/events")
            self._producer = EventProducer(self.bootstrap, max_event_bytes=self.settings.max_event_bytes)
        return self._producer

    def close(self) -> None:
        self.loader.stop()
        if self._producer is not None:
            self._producer.close()
