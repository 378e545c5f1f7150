"""``GET /v1/live/stream``: answers pushed when they change, equal to the polled routes' bodies, within
the token's scope, ending when the token expires or its key is rotated, bounded per tenant."""

from __future__ import annotations

import itertools
import time

import orjson
import pytest

from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.store import Gap

from .apps import bearer, embed_token, serving_app
from .strong_secrets import ADMIN_TOKEN

pytestmark = pytest.mark.unit
TOPIC = "events.transaction"


class Feed:
    """Events for the speed store, at increasing offsets of one partition."""

    def __init__(self, store: EmbeddedSpeedStore):
        self.store = store
        self.offsets = itertools.count()

    def order(self, tenant: str, customer: str, amount: int | None = None) -> None:
        offset = next(self.offsets)
        now = int(time.time() * 1000)
        order = {"order_id": f"{customer}-{offset}", "event_time": now}
        steps = [{"event_type": "order_placed"}]
        if amount is not None:
            steps.append({"event_type": "order_paid", "amount": amount, "currency": "EUR"})
        for extra in steps:
            event = validate_event(
                {
                    **order,
                    **extra,
                    "event_id": f"{tenant}-{customer}-{offset}-{extra['event_type']}",
                    "tenant_id": tenant,
                    "customer_id": customer,
                }
            )
            self.store.ingest(to_row(event), TOPIC, 0, offset, now)


@pytest.fixture
def api(tmp_path):
    store = EmbeddedSpeedStore(block_size=10)
    feed = Feed(store)
    feed.order("alpha", "c1", 10)
    feed.order("beta", "c1", 99)
    client, keys, state = serving_app(
        tmp_path, store, ("alpha", "beta"), stream_interval_seconds=0.05, stream_max_per_tenant=2
    )
    yield client, keys, state, feed
    state.close()


def events(response, *, until: str | None = None, limit: int = 50):
    """(event, data) pairs from an open text/event-stream response."""
    name = None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name is not None:
            yield name, orjson.loads(line.split(":", 1)[1].strip())
            if name == until or name == "end":
                return
            limit -= 1
            if limit <= 0:
                return
            name = None


def without_freshness(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "freshness"}


def test_first_pushes_are_the_polled_answers_and_a_change_is_pushed(api):
    client, keys, _, feed = api
    key = bearer(keys["alpha"])
    polled_live = client.get("/v1/live/orders", params={"window": "1h"}, headers=key).json()
    polled_profile = client.get("/v1/customers/c1/profile", headers=key).json()
    with client.stream("GET", "/v1/live/stream?window=1h&customer=c1", headers=key) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        stream = events(r)
        first = dict(itertools.islice(stream, 2))
        assert without_freshness(first["live_orders"]) == without_freshness(polled_live)
        assert without_freshness(first["profile"]) == without_freshness(polled_profile)
        assert first["profile"]["freshness"]["batch_version"] == 0  # every push carries its freshness
        feed.order("beta", "c1", 5)  # another tenant's order changes nothing of alpha's
        feed.order("alpha", "c1", 7)
        name, pushed = next(stream)
        while name != "profile":  # live orders change too (one more order in progress)
            name, pushed = next(stream)
        assert pushed["metrics"]["revenue"] == 17 and pushed["tenant_id"] == "alpha"


def test_an_unchanged_answer_is_not_pushed_again(api):
    client, keys, state, feed = api
    with client.stream("GET", "/v1/live/stream?customer=c1", headers=bearer(keys["alpha"])) as r:
        stream = events(r)
        assert {n for n, _ in itertools.islice(stream, 2)} == {"live_orders", "profile"}
        time.sleep(0.5)  # ten ticks with nothing new
        assert sum(state.streams.pushed.values()) == 2
        feed.order("alpha", "c1", 1)
        assert next(stream)[0] in ("live_orders", "profile")


def test_an_embed_token_streams_its_own_customer_only(api):
    client, keys, _, _ = api
    token = embed_token(client, keys["alpha"], "c1")
    with client.stream("GET", "/v1/live/stream", headers=bearer(token)) as r:
        first = dict(itertools.islice(events(r), 2))
        assert first["profile"]["customer_id"] == "c1" and first["profile"]["tenant_id"] == "alpha"
    other = client.get("/v1/live/stream?customer=c2", headers=bearer(token))
    assert other.status_code == 404
    assert client.get("/v1/live/stream", headers=bearer("nope")).status_code == 401


def test_the_stream_ends_when_the_token_expires(api):
    client, keys, state, _ = api
    token, _ = state.credentials.signer.issue("alpha", "c1", 1)
    with client.stream("GET", "/v1/live/stream", headers=bearer(token)) as r:
        assert r.status_code == 200
        *_, last = events(r, until="end")
    assert last == ("end", {"reason": "token expired"})
    assert state.streams.open == 0


def test_rotating_the_key_ends_the_streams_of_its_tokens(api):
    client, keys, _, _ = api
    token = embed_token(client, keys["alpha"], "c1")
    with client.stream("GET", "/v1/live/stream", headers=bearer(token)) as r:
        stream = events(r)
        next(stream)
        rotated = client.post("/v1/admin/tenants/alpha/rotate-key", headers=bearer(ADMIN_TOKEN))
        assert rotated.status_code == 200
        *_, last = stream
    assert last[0] == "end" and "rotated" in last[1]["reason"]


def test_open_streams_are_bounded_per_tenant(api):
    client, keys, state, _ = api
    assert state.streams.acquire("alpha") and state.streams.acquire("alpha")  # two held elsewhere
    refused = client.get("/v1/live/stream", headers=bearer(keys["alpha"]))
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    with client.stream("GET", "/v1/live/stream", headers=bearer(keys["beta"])) as r:
        assert r.status_code == 200  # another tenant's streams are its own
        next(events(r))


def test_an_uncovered_speed_side_is_pushed_as_a_503_error_never_as_smaller_numbers(api):
    client, keys, state, _ = api
    state.speed.move_to(TOPIC, 0, 1000)  # a jump: offsets lost below 1000, no batch covers them
    assert isinstance(state.speed.status().gaps[0], Gap)
    with client.stream("GET", "/v1/live/stream?customer=c1", headers=bearer(keys["alpha"])) as r:
        pushed = list(itertools.islice(events(r), 2))
    assert [name for name, _ in pushed] == ["error", "error"]
    assert {body["topic"] for _, body in pushed} == {"live_orders", "profile"}
    assert all(body["status"] == 503 and "[2, 1000) lost" in body["detail"] for _, body in pushed)


def test_topics_pick_what_is_pushed(api):
    client, keys, _, _ = api
    key = bearer(keys["alpha"])
    with client.stream("GET", "/v1/live/stream?customer=c1&topics=profile", headers=key) as r:
        assert next(events(r))[0] == "profile"
    assert client.get("/v1/live/stream?topics=profile", headers=key).status_code == 422
    assert client.get("/v1/live/stream?topics=nothing", headers=key).status_code == 422
