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


async def _in_thread(event: threading.Event) -> None:
    await anyio.to_thread.run_sync(event.wait)


def test_reads_answer_while_a_post_waits_for_kafka_then_the_post_is_503(tmp_path):
    store = EmbeddedSpeedStore(block_size=10)
    state = _state(tmp_path, store, ack_timeout_s=60)
    producer = state._producer = Unacknowledged()
    key = state.credentials.registry.create("acme", "Acme")
    auth = {"Authorization": f"Bearer {key}"}
    results: dict[str, httpx.Response] = {}

    async def main():
        transport = httpx.ASGITransport(app=create_app(state))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://api") as client,
            anyio.create_task_group() as tg,
        ):

            async def post():
                results["post"] = await client.post("/v1/events", json=EVENT, headers=auth)

            tg.start_soon(post)
            await _in_thread(producer.sending)  # the POST is waiting for Kafka now
            results["live"] = await client.get("/v1/live/orders", headers=auth)
            results["metrics"] = await client.get("/v1/metrics")
            assert "post" not in results  # still waiting: the reads did not queue behind it
            producer.time_up.set()

    try:
        anyio.run(main)
    finally:
        state.close()
    assert results["live"].status_code == 200 and results["metrics"].status_code == 200
    post = results["post"]
    assert post.status_code == 503 and "Kafka did not acknowledge" in post.json()["detail"]
    assert post.headers["Retry-After"] == "1"


@pytest.mark.parametrize("honour_timeout", [True, False], ids=["client-times-out", "client-hangs"])
def test_the_post_answers_503_within_its_timeout_whatever_the_client_library_does(tmp_path, honour_timeout):
    state = _state(tmp_path, EmbeddedSpeedStore(block_size=10), ack_timeout_s=0.2)
    producer = state._producer = Unacknowledged(honour_timeout=honour_timeout)
    key = state.credentials.registry.create("acme", "Acme")

    async def main():
        transport = httpx.ASGITransport(app=create_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/v1/events", json=EVENT, headers={"Authorization": f"Bearer {key}"})

    try:
        r = anyio.run(main)
    finally:
        producer.time_up.set()  # lets a hung send thread end
        state.close()
    assert r.status_code == 503
    assert "did not acknowledge" in r.json()["detail"]


def test_without_kafka_the_post_is_503_with_the_reason(tmp_path):
    state = _state(tmp_path, EmbeddedSpeedStore(block_size=10))  # no bootstrap
    key = state.credentials.registry.create("acme", "Acme")

    async def main():
        transport = httpx.ASGITransport(app=create_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/v1/events", json=EVENT, headers={"Authorization": f"Bearer {key}"})

    try:
        r = anyio.run(main)
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
    auth = {"Authorization": f"Bearer {key}"}
    results: dict[str, httpx.Response] = {}

    async def main():
        transport = httpx.ASGITransport(app=create_app(state))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://api") as client,
            anyio.create_task_group() as tg,
        ):

            async def read():
                results["profile"] = await client.get("/v1/customers/c1/profile", headers=auth)

            tg.start_soon(read)
            await _in_thread(asked)  # the profile read is waiting on Pinot
            results["healthz"] = await client.get("/healthz")
            results["catalog"] = await client.get("/v1/metrics")
            assert "profile" not in results
            answer.set()

    try:
        anyio.run(main)
    finally:
        answer.set()
        state.close()
        store.close()
    assert results["healthz"].status_code == 200 and results["catalog"].status_code == 200
    assert results["profile"].status_code == 404  # Pinot answered: no such customer
