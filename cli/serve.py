"""ASGI application factories for ``lambdalytics serve``: settings from the environment, the batch loader,
and either the embedded speed store fed from Kafka inside this process (one copy per worker) or Pinot.

Each factory is one store: it pins ``speed_store`` and opens the store from its config
(``speed.config.store_config`` → ``speed.factory.open_store``), the one way every caller opens one."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from lambdalytics.infra.broker import die_with_parent
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
    store = open_store(store_config(settings))
    state = ServingState(settings, store, bootstrap=settings.kafka_bootstrap)

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


def create_embedded_app() -> FastAPI:
    die_with_parent()  # a worker must not outlive a killed server process and keep the port
    settings = Settings(speed_store="embedded")
    bootstrap = find_bootstrap(settings)
    store = open_store(store_config(settings))
    consumer = SpeedConsumer(store, bootstrap, stale_after_s=settings.speed_stale_seconds)
    state = ServingState(
        settings, store, bootstrap=bootstrap, dead_lettered=lambda: dict(consumer.decoder.dead_lettered)
    )
    state.workers.append(consumer.worker)  # supervised: /readyz and /metrics report it
    state.merger.stale = consumer.staleness  # reads fail closed once the consumer stops progressing

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
