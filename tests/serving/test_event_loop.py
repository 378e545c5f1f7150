"""No request blocks the event loop: ``POST /v1/events`` waits for Kafka in the produce threads (503 with
the reason when Kafka does not acknowledge in time), and with a speed store that answers over the network
(Pinot) the hot reads leave the loop. Every request below goes through one event loop, as in a worker."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread
import httpx
import pytest
from kafka.errors import KafkaTimeoutError

from lambdalytics.infra.settings import Settings
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.pinot import TABLE_BY_TOPIC, PinotConfig, PinotSpeedStore

from ..speed.pinot_double import PinotBrokerDouble
from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit
EVENT = {"event_id": "e1", "customer_id": "c1", "event_type": "page_view", "event_time": 1_767_225_600_000}


class Unacknowledged:
    """A producer whose records Kafka never acknowledges: ``get`` waits for its timeout (or until the test
    says the time is up) and raises what kafka-python raises then."""

    def __init__(self, *, honour_timeout: bool = True):
        self.sending = threading.Event()  # a send is under way
        self.time_up = threading.Event()
        self.honour_timeout = honour_timeout

    def send(self, event):
        self.sending.set()
        producer = self

        class Pending:
            def get(self, timeout):
                producer.time_up.wait(timeout if producer.honour_timeout else None)
                raise KafkaTimeoutError("Timeout after waiting for acknowledgement")

        return Pending()

    def close(self):
        pass


def _state(tmp_path, speed, **kwargs) -> ServingState:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET)
    state = ServingState(settings, speed, **kwargs)
    state.loader.refresh()
    return state


def post_event(state: ServingState) -> httpx.Response:
    """``POST /v1/events`` with one valid event, on an event loop of its own."""
    key = state.credentials.registry.create("acme", "Acme")

    async def main():
        transport = httpx.ASGITransport(app=create_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/v1/events", json=EVENT, headers={"Authorization": f"Bearer {key}"})

    return anyio.run(main)


def while_waiting(
    state: ServingState,
    slow: tuple[str, str, dict],
    waiting: threading.Event,
    release: threading.Event,
    others: list[str],
    headers: dict,
) -> tuple[httpx.Response, dict[str, httpx.Response], bool]:
    """On one event loop: send ``slow`` (method, path, request kwargs), wait until it is ``waiting``,
    GET each of ``others``, note whether ``slow`` was still unanswered, then ``release`` it.
    Returns (slow's response, the others' responses, slow still waiting when the others had answered)."""
    answered: dict[str, httpx.Response] = {}
    pending: list[bool] = []

    async def main():
        transport = httpx.ASGITransport(app=create_app(state))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://api") as client,
            anyio.create_task_group() as tg,
        ):

            async def send_slow():
                method, path, kwargs = slow
                answered["slow"] = await client.request(method, path, headers=headers, **kwargs)

            tg.start_soon(send_slow)
            await anyio.to_thread.run_sync(waiting.wait)
            for path in others:
                answered[path] = await client.get(path, headers=headers)
            pending.append("slow" not in answered)
            release.set()

    try:
        anyio.run(main)
    finally:
        release.set()
    return answered.pop("slow"), answered, pending[0]


def test_reads_answer_while_a_post_waits_for_kafka_then_the_post_is_503(tmp_path):
    state = _state(tmp_path, EmbeddedSpeedStore(block_size=10), ack_timeout_s=60)
    producer = state._producer = Unacknowledged()
    key = state.credentials.registry.create("acme", "Acme")
    try:
        post, reads, post_was_waiting = while_waiting(
            state,
            ("POST", "/v1/events", {"json": EVENT}),
            producer.sending,  # the POST is waiting for Kafka
            producer.time_up,
            ["/v1/live/orders", "/v1/metrics"],
            {"Authorization": f"Bearer {key}"},
        )
    finally:
        state.close()
    assert post_was_waiting  # the reads did not queue behind it
    assert [r.status_code for r in reads.values()] == [200, 200]
    assert post.status_code == 503 and "Kafka did not acknowledge" in post.json()["detail"]
    assert post.headers["Retry-After"] == "1"


@pytest.mark.parametrize("honour_timeout", [True, False], ids=["client-times-out", "client-hangs"])
def test_the_post_answers_503_within_its_timeout_whatever_the_client_library_does(tmp_path, honour_timeout):
    state = _state(tmp_path, EmbeddedSpeedStore(block_size=10), ack_timeout_s=0.2)
    producer = state._producer = Unacknowledged(honour_timeout=honour_timeout)
    try:
        r = post_event(state)
    finally:
        producer.time_up.set()  # lets a hung send thread end
        state.close()
    assert r.status_code == 503
    assert "did not acknowledge" in r.json()["detail"]


def test_without_kafka_the_post_is_503_with_the_reason(tmp_path):
    state = _state(tmp_path, EmbeddedSpeedStore(block_size=10))  # no bootstrap
    try:
        r = post_event(state)
    finally:
        state.close()
    assert r.status_code == 503 and r.json()["detail"] == "no Kafka configured for POST /v1/events"


def test_pinot_reads_leave_the_loop(tmp_path):
    """A Pinot broker that has not answered yet stalls one read, not the worker."""
    double = PinotBrokerDouble({table: [] for table in TABLE_BY_TOPIC.values()})
    asked, answer = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        asked.set()
        answer.wait(30)  # a read that blocks the loop would wait here forever; this makes it fail instead
        return double.handle(request)

    session = httpx.Client(transport=httpx.MockTransport(slow), base_url="http://pinot-broker:8099")
    store = PinotSpeedStore(PinotConfig(broker_url="http://pinot-broker:8099"), session=session)
    state = _state(tmp_path, store)
    assert state.reads_block
    key = state.credentials.registry.create("acme", "Acme")
    try:
        profile, reads, read_was_waiting = while_waiting(
            state,
            ("GET", "/v1/customers/c1/profile", {}),
            asked,  # the profile read is waiting on Pinot
            answer,
            ["/healthz", "/v1/metrics"],
            {"Authorization": f"Bearer {key}"},
        )
    finally:
        state.close()
        store.close()
    assert read_was_waiting
    assert [r.status_code for r in reads.values()] == [200, 200]
    assert profile.status_code == 404  # Pinot answered: no such customer
