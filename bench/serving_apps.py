"""The ASGI apps the serving benchmark puts under load (granian imports them from bench/).

- ``create_api``: the real API (``serving.main.create_app``) over a prepared data dir: the batch views
  loaded exactly as in production, plus a speed tail of events above W ingested into the embedded store,
  so every answer is a genuine batch ⊕ speed merge. Kafka is left out: the consumer is not on the request
  path, and the figures should not depend on the broker.
- ``create_bare``: the reference, a bare Starlette route answering a constant body of the same size.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

TAIL_FILE = "speed-tail.jsonl"


def create_api():
    from lambdalytics.infra.settings import Settings
    from lambdalytics.serving.main import create_app
    from lambdalytics.serving.state import ServingState
    from lambdalytics.speed.embedded import EmbeddedSpeedStore

    settings = Settings()
    store = EmbeddedSpeedStore(block_size=settings.block_size)
    state = ServingState(settings, store)
    state.loader.refresh()
    with (Path(settings.data_dir) / TAIL_FILE).open("rb") as fh:
        for line in fh:
            row, topic, partition, offset = orjson.loads(line)
            store.ingest(row, topic, partition, offset, row["event_time"])
    store.mark_caught_up()
    return create_app(state)


def create_bare():
    body = Path(os.environ["BENCH_BODY_FILE"]).read_bytes()

    async def constant(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", constant)])
