"""ASGI application factories for ``lambdalytics serve``: settings from the environment, the batch loader,
and either the embedded speed store fed from Kafka inside this process (one copy per worker) or Pinot.

Each factory is one store: it pins ``speed_store`` and opens the store from its config
(``speed.config.store_config`` → ``speed.factory.open_store``), the one way every caller opens one."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from lambdalytics.infra.broker import die_with_parent
from lambdalytics.infra.epochs import EpochTable
from lambdalytics.infra.erasures import ErasureList
from lambdalytics.infra.runtime import find_bootstrap
from lambdalytics.infra.settings import Settings
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.config import store_config
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.factory import open_store

log = logging.getLogger(__name__)


def create_pinot_app() -> FastAPI:
    """The speed side is a Pinot REALTIME table set (``lambdalytics pinot apply``); nothing is consumed here."""
    die_with_parent()  # a worker must not outlive a killed server process and keep the port
    settings = Settings(speed_store="pinot")
    # Pinot ingests the topics itself: the store leaves the erasure log's customers out of every answer
    store = open_store(store_config(settings), erasures=ErasureList(settings, component="pinot"))
    state = ServingState(settings, store, bootstrap=settings.kafka_bootstrap)
    if reason := _pinot_epoch_gap(EpochTable(settings.data_dir)):
        log.error("%s", reason)
        state.merger.stale = lambda: reason  # fail closed, never mix offsets of two lines

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.loader.start()
        try:
            yield
        finally:
            state.close()

    app = create_app(state)
    app.router.lifespan_context = lifespan
    return app


def _pinot_epoch_gap(epochs: EpochTable) -> str | None:
    """Pinot keys its rows by the Kafka offsets it consumed itself, not by logical offsets: it can serve
    only a data folder whose current restart epoch starts at base 0 (one Kafka cluster, never restarted)."""
    latest = epochs.epochs()[-1:]
    if latest and latest[0].base:
        return (
            f"restart epoch {latest[0].number} of {epochs.path} begins above offset 0; Pinot compares its own "
            "Kafka offsets with W, so it cannot serve this data folder (use the embedded speed store)"
        )
    return None


def create_embedded_app() -> FastAPI:
    die_with_parent()  # a worker must not outlive a killed server process and keep the port
    settings = Settings(speed_store="embedded")
    bootstrap = find_bootstrap(settings)
    store = open_store(store_config(settings))
    consumer = SpeedConsumer(
        store,
        bootstrap,
        stale_after_s=settings.speed_stale_seconds,
        epochs=EpochTable(settings.data_dir),
        erasures=ErasureList(settings, component="speed"),
    )
    state = ServingState(
        settings, store, bootstrap=bootstrap, dead_lettered=lambda: dict(consumer.decoder.dead_lettered)
    )
    state.workers.append(consumer.worker)  # supervised: /readyz and /metrics report it

    def why_not() -> str | None:
        """Reads fail closed once the consumer stops progressing, and after a broker restart until a batch
        run covers the previous epochs (the served W below the new epoch's base); /readyz says why."""
        return consumer.coverage_reason(state.loader.current().watermark) or consumer.staleness()

    state.merger.stale = why_not

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.loader.start()  # W first: the consumer must cover it
        consumer.watermark = state.loader.current().watermark
        consumer.start()
        try:
            yield
        finally:
            consumer.stop()
            state.close()

    app = create_app(state)
    app.router.lifespan_context = lifespan
    return app
