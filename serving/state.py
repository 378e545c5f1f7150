"""What a serving process holds, composed of small parts: credentials (who may ask), the batch loader and
the merger (what is answered), telemetry (what is measured), batch runs (started elsewhere) and the
producer of ``POST /v1/events``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lambdalytics.batch.runs import BatchRuns
from lambdalytics.infra.kafka_io import EventProducer
from lambdalytics.infra.settings import Settings
from lambdalytics.infra.supervisor import Supervised
from lambdalytics.speed.store import SpeedStore

from .credentials import Credentials
from .loader import BatchLoader
from .merge import Merger
from .telemetry import Telemetry

__all__ = ["ServingState"]


@dataclass
class ServingState:
    settings: Settings
    speed: SpeedStore
    bootstrap: str | None = None
    dead_lettered: Callable[[], Mapping[str, int]] | None = None  # {reason: count}, from the speed consumer
    credentials: Credentials = field(init=False)
    loader: BatchLoader = field(init=False)
    merger: Merger = field(init=False)
    telemetry: Telemetry = field(init=False)
    runs: BatchRuns = field(init=False)
    workers: list[Supervised] = field(init=False)  # the loader's, and the speed consumer's when embedded
    _producer: EventProducer | None = None

    def __post_init__(self) -> None:
        self.credentials = Credentials.open(self.settings)
        self.loader = BatchLoader(
            Path(self.settings.data_dir), self.speed, poll_seconds=self.settings.batch_poll_seconds
        )
        self.merger = Merger(
            self.loader.current, self.speed, profile_cache=self.settings.profile_cache_entries
        )
        # supervised workers: lambdalytics_worker_restarts_total / lambdalytics_worker_up, per worker
        self.workers = [self.loader.worker]
        self.telemetry = Telemetry(
            speed=self.speed,
            loader=self.loader,
            profiles=self.merger.profiles,
            dead_lettered=self.dead_lettered,
            workers=lambda: self.workers,
        )
        self.runs = BatchRuns(self.settings)  # the loader picks up what a run publishes

    @property
    def producer(self) -> EventProducer:
        if self._producer is None:
            if not self.bootstrap:
                raise RuntimeError("no Kafka configured for POST /v1/events")
            self._producer = EventProducer(self.bootstrap, max_event_bytes=self.settings.max_event_bytes)
        return self._producer

    def close(self) -> None:
        self.loader.stop()
        self.credentials.close()
        if self._producer is not None:
            self._producer.close()
