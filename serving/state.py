"""What a serving process holds, composed of small parts: credentials (who may ask), the batch loader and
the merger (what is answered), telemetry (what is measured), batch runs (started elsewhere) and the
producer of ``POST /v1/events`` with the threads that wait for Kafka, off the event loop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lambdalytics.batch.runs import BatchRuns
from lambdalytics.infra.kafka_io import EventProducer
from lambdalytics.infra.settings import Settings
from lambdalytics.infra.supervisor import Supervised
from lambdalytics.speed.store import SpeedStore

from .credentials import Credentials
from .erasure import Erasures
from .loader import BatchLoader
from .merge import Merger
from .quality import QualitySource
from .streams import LiveStreams
from .telemetry import Telemetry

__all__ = ["NoKafka", "ServingState"]

PRODUCE_THREADS = 8
"""Threads that send and wait for Kafka's acknowledgement: while Kafka is away, at most this many
requests wait on it at once; the others queue and answer 503 when their time is up."""


class NoKafka(RuntimeError):
    """This server has no Kafka to produce to."""


@dataclass
class ServingState:
    settings: Settings
    speed: SpeedStore
    bootstrap: str | None = None
    dead_lettered: Callable[[], Mapping[str, int]] | None = None  # {reason: count}, from the speed consumer
    ack_timeout_s: float = 10.0  # POST /v1/events answers 503 when Kafka has not acknowledged by then
    credentials: Credentials = field(init=False)
    loader: BatchLoader = field(init=False)
    merger: Merger = field(init=False)
    telemetry: Telemetry = field(init=False)
    runs: BatchRuns = field(init=False)
    erasures: Erasures = field(init=False)  # DELETE /v1/customers/{id}; pending ones applied on each poll
    quality: QualitySource = field(init=False)  # the archiver's quality ledger (GET /v1/quality)
    streams: LiveStreams = field(init=False)  # GET /v1/live/stream
    workers: list[Supervised] = field(init=False)  # the loader's, and the speed consumer's when embedded
    reads_block: bool = field(
        init=False
    )  # the speed store answers over the network (Pinot): reads leave the loop
    produce_pool: ThreadPoolExecutor = field(init=False)
    _producer: EventProducer | None = None
    _producer_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.credentials = Credentials.open(self.settings)
        self.quality = QualitySource(self.settings.data_dir)
        self.loader = BatchLoader(
            Path(self.settings.data_dir), self.speed, poll_seconds=self.settings.batch_poll_seconds
        )
        self.merger = Merger(
            self.loader.current, self.speed, profile_cache=self.settings.profile_cache_entries
        )
        self.streams = LiveStreams(
            max_per_tenant=self.settings.stream_max_per_tenant,
            tick_seconds=self.settings.stream_interval_seconds,
        )
        # supervised workers: lambdalytics_worker_restarts_total / lambdalytics_worker_up, per worker
        self.workers = [self.loader.worker]
        self.telemetry = Telemetry(
            speed=self.speed,
            loader=self.loader,
            profiles=self.merger.profiles,
            answers=self.merger.answers,
            dead_lettered=self.dead_lettered,
            workers=lambda: self.workers,
            streams=self.streams,
            quality=self.quality,
        )
        self.runs = BatchRuns(self.settings)  # the loader picks up what a run publishes
        self.erasures = Erasures(
            self.settings,
            self.speed,
            (self.merger.profiles, self.merger.answers),
            self.merger.component_ids,
        )
        self.loader.after_poll = self.erasures.sync
        self.reads_block = self.speed.reads_block
        self.produce_pool = ThreadPoolExecutor(PRODUCE_THREADS, thread_name_prefix="produce")

    @property
    def producer(self) -> EventProducer:
        """Made on first use (from a produce thread); a send waits for metadata at most the ack timeout."""
        with self._producer_lock:
            if self._producer is None:
                if not self.bootstrap:
                    raise NoKafka("no Kafka configured for POST /v1/events")
                self._producer = EventProducer(
                    self.bootstrap,
                    max_event_bytes=self.settings.max_event_bytes,
                    max_block_ms=int(self.ack_timeout_s * 1000),
                )
            return self._producer

    def close(self) -> None:
        self.loader.stop()
        self.credentials.close()
        self.erasures.close()
        self.quality.close()
        self.produce_pool.shutdown(wait=False, cancel_futures=True)
        if self._producer is not None:
            self._producer.close()
