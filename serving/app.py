"""The ASGI application factory used by ``lambdalytics serve``: settings from the environment, the
embedded speed store fed from Kafka inside this process (one copy per worker), the batch loader."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from lambdalytics.infra.runtime import find_bootstrap
from lambdalytics.infra.settings import Settings
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .main import create_app
from .state import ServingState

log = logging.getLogger(__name__)


def create_embedded_app() -> FastAPI:
    settings = Settings()
    bootstrap = find_bootstrap(settings)
    store = EmbeddedSpeedStore(block_size=settings.block_size)
    state = ServingState(settings, store, bootstrap=bootstrap)
    consumer = SpeedConsumer(store, bootstrap)
    state.dead_lettered = lambda: dict(consumer.decoder.dead_lettered)

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
