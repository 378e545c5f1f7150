"""``GET /v1/live/stream``: the live order metrics and one customer's profile, pushed when they change.

Server-sent events (``sse-starlette``) instead of polling: a widget holds one connection and gets a new
answer only when it differs from the last one sent. Each answer is the very body of the polled route
(``live_orders_answer``, ``profile_answer``: one computation, two transports) with its ``freshness``.

The stream honours what a request would: the credential is checked again before every push (an expired
token or a rotated key ends the stream with an ``end`` event saying why), the scope is the token's (an
embed token streams its own customer only), opening a stream takes from the same rate-limit buckets as a
request, and a tenant holds at most ``stream_max_per_tenant`` streams per worker (429 beyond). Streams
of one tenant and window share one computation per tick (``LiveStreams.shared``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from sse_starlette import EventSourceResponse

from lambdalytics.speed.store import CoverageError

from ..deps import READERS, authorize, customer_scope, no_longer_honoured, too_many
from ..hot import RESPONSES, off_loop
from ..params import window_seconds
from .customers import profile_answer
from .live import live_orders_answer

router = APIRouter(prefix="/v1", tags=["live"])

TOPICS = ("live_orders", "profile")
PING_SECONDS = 15  # keeps proxies from closing an idle stream


def _outcome(compute: Callable[[], dict]) -> tuple[str, dict]:
    """The answer, or the error a request would have got (fail-closed 503, 404), as an event."""
    try:
        return "answer", compute()
    except CoverageError as exc:
        return "error", {"status": 503, "detail": str(exc)}
    except HTTPException as exc:
        return "error", {"status": exc.status_code, "detail": exc.detail}


def _without_freshness(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "freshness"}


@router.get(
    "/live/stream",
    responses={
        **RESPONSES,
        200: {
            "description": "text/event-stream: `live_orders` and `profile` events (the JSON bodies of "
            "GET /v1/live/orders and GET /v1/customers/{id}/profile), `error` events "
            '(`{"topic", "status", "detail"}`, e.g. 503 while the speed side cannot cover W) and a last '
            '`end` event (`{"reason"}`: token expired, key rotated, stream lifetime reached).',
            "content": {"text/event-stream": {}},
        },
    },
)
async def live_stream(
    request: Request, window: str = "30m", customer: str | None = None, topics: str | None = None
):
    """The tenant's live order metrics over the window and, for an embed token (its own customer) or
    with ``customer=``, that customer's profile — each pushed whenever it changes. ``topics`` picks
    some of them (comma-separated ``live_orders``, ``profile``)."""
    who = authorize(request, READERS, tenant_wide=True)
    seconds = window_seconds(window)
    wanted = set(TOPICS if topics is None else topics.split(","))
    if not wanted or not wanted <= set(TOPICS):
        raise HTTPException(422, f"topics: comma-separated, of {', '.join(TOPICS)}")
    if customer is not None and not 1 <= len(customer) <= 128:
        raise HTTPException(422, "customer: 1 to 128 characters")
    customer_id = customer if customer is not None else who.customer_id
    if customer_id is not None:
        customer_scope(who, customer_id)
    elif wanted == {"profile"}:
        raise HTTPException(422, "topics=profile needs customer= (or an embed token of one customer)")
    state = request.app.state.serving
    settings = state.settings
    streams = state.streams
    if not streams.acquire(who.tenant_id):
        raise too_many(PING_SECONDS, "too many open streams for this tenant")
    tenant = who.tenant_id
    pushed: list[tuple[str, Any, Callable[[], dict]]] = []
    if "live_orders" in wanted:
        pushed.append(("live_orders", (tenant, seconds), lambda: live_orders_answer(state, tenant, seconds)))
    if "profile" in wanted and customer_id is not None:
        pushed.append(("profile", None, lambda: profile_answer(state, tenant, customer_id)))
    header = request.headers.get("authorization")
    ends_at = time.monotonic() + settings.stream_max_seconds

    async def events() -> AsyncIterator[dict]:
        sent: dict[str, tuple[str, dict]] = {}  # topic -> what was pushed last, without freshness
        try:
            while True:
                if reason := no_longer_honoured(request, header):
                    yield {"event": "end", "data": orjson.dumps({"reason": reason}).decode()}
                    return
                if time.monotonic() >= ends_at:
                    yield {
                        "event": "end",
                        "data": orjson.dumps({"reason": "stream lifetime reached"}).decode(),
                    }
                    return
                for topic, shared, compute in pushed:
                    answer = (
                        (lambda c=compute: _outcome(c))
                        if shared is None
                        else (lambda c=compute, k=shared: streams.shared(k, lambda: _outcome(c)))
                    )
                    kind, body = await off_loop(request, answer)
                    seen = (kind, _without_freshness(body))
                    if sent.get(topic) == seen:
                        continue  # unchanged since the last push: nothing to send
                    sent[topic] = seen
                    name = topic if kind == "answer" else "error"
                    streams.pushed[name] += 1
                    yield {
                        "event": name,
                        "data": orjson.dumps(body if kind == "answer" else {"topic": topic, **body}).decode(),
                    }
                await asyncio.sleep(settings.stream_interval_seconds)
        finally:
            streams.release(tenant)

    return EventSourceResponse(events(), ping=PING_SECONDS, headers={"Cache-Control": "no-store"})
