"""Event streams for the reliability tests, and producers that remember what was acknowledged.

Events come from the project's generator (duplicates and late events included), placed in the recent
past so that every API default time range covers them. A *variant* renames every id of a stream, so a
second stream (the one that keeps flowing during a test) never touches the customers, campaigns,
orders or tickets of the first (the frozen ones whose answers are checked exactly).

Ground truth is built only from acknowledged sends: a Kafka send whose future resolved, or an HTTP
``POST /v1/events`` answered 202. An HTTP batch that failed (connection refused or reset while the API
was killed) is retried with the same event ids until it is accepted, as a client should; a copy that did
reach Kafka before the kill is then a duplicate the pipeline must count once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
from kafka.producer.future import RecordMetadata

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.kafka_io import EventProducer

TENANTS = ("demo-food", "demo-ads", "demo-saas")
_RENAMED = ("customer_id", "campaign_id", "order_id", "ticket_id", "session_id")


def events(seed: int, *, stories_per_s: float, seconds: float, customers: int, end_ms: int) -> list[dict]:
    """Generated events of the three demo tenants, all with ``event_time`` before ``end_ms``."""
    cfg = GeneratorConfig(
        seed=seed,
        rate=stories_per_s,
        duration_s=seconds,
        start_ms=end_ms - int(seconds * 1000),
        customers_per_tenant=customers,
        duplicates=0.03,
        late=0.05,
    )
    return list(generate(cfg))


def variant(stream: list[dict], suffix: str) -> list[dict]:
    """The same stream with every id renamed (event_id too): disjoint customers, campaigns, entities."""
    out = []
    for e in stream:
        e = {**e, "event_id": f"{e['event_id']}-{suffix}"}
        for name in _RENAMED:
            if name in e:
                e[name] = f"{e[name]}-{suffix}"
        out.append(e)
    return out


def produce_all(bootstrap: str, stream: list[dict]) -> list[RecordMetadata]:
    """Send and wait for every acknowledgement."""
    with EventProducer(bootstrap) as producer:
        futures = [producer.send_obj(e) for e in stream]
        producer.flush()
        return [f.get(30) for f in futures]


@dataclass
class Streamer:
    """Sends a stream at a fixed wall-clock rate in a thread until stopped or exhausted.

    A share ``http_share`` of the events goes through ``POST /v1/events`` (batches of ``http_batch``,
    retried until accepted), the rest straight to Kafka. ``acked`` holds the events acknowledged so far.
    """

    bootstrap: str
    stream: list[dict]
    rate: float
    api_url: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    http_share: float = 0.0
    http_batch: int = 10
    acked: list[dict] = field(default_factory=list)
    positions: list[RecordMetadata] = field(default_factory=list)
    customers: list[tuple[str, str]] = field(default_factory=list)  # (tenant, customer) acked, in order
    http_attempts: int = 0
    http_retries: int = 0
    http_statuses: Counter = field(default_factory=Counter)
    error: BaseException | None = None
    _known: set[tuple[str, str]] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _abort: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Streamer:
        self._thread = threading.Thread(target=self._run, name="streamer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 150.0) -> None:
        """Stop sending; a pending HTTP batch is still retried until accepted (or its deadline)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            assert not self._thread.is_alive(), "the streamer did not finish"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Streamer:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        """Drain on success; when the test already failed, give up pending retries at once."""
        if exc_type is None:
            self.stop()
        else:
            self._abort.set()
            self._stop.set()
            if self._thread is not None:
                self._thread.join(30)

    def _acked(self, batch: list[dict]) -> None:
        for e in batch:
            key = (e["tenant_id"], e["customer_id"])
            if key not in self._known:
                self._known.add(key)
                self.customers.append(key)
        self.acked.extend(batch)

    def _chunks(self) -> Iterator[list[dict]]:
        step = max(1, self.http_batch)
        for i in range(0, len(self.stream), step):
            yield self.stream[i : i + step]

    def _run(self) -> None:
        try:
            with EventProducer(self.bootstrap, linger_ms=2) as producer, httpx.Client(timeout=15) as http:
                started = time.monotonic()
                sent = 0
                http_due = 0.0
                for chunk in self._chunks():
                    if self._stop.is_set():
                        break
                    wait = started + sent / self.rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    http_due += self.http_share * len(chunk)
                    if self.api_url and http_due >= len(chunk):
                        http_due -= len(chunk)
                        self._post(http, chunk)
                    else:
                        futures = [producer.send_obj(e) for e in chunk]
                        producer.flush()
                        self.positions.extend(f.get(30) for f in futures)
                        self._acked(chunk)
                    sent += len(chunk)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def _post(self, http: httpx.Client, chunk: list[dict]) -> None:
        """One tenant per request (the key decides the tenant); retried until 202."""
        by_tenant: dict[str, list[dict]] = {}
        for e in chunk:
            by_tenant.setdefault(e["tenant_id"], []).append(e)
        for tenant, batch in by_tenant.items():
            deadline = time.monotonic() + 120
            while True:
                self.http_attempts += 1
                try:
                    r = http.post(
                        f"{self.api_url}/v1/events",
                        json=batch,
                        headers={"Authorization": f"Bearer {self.keys[tenant]}"},
                    )
                    self.http_statuses[r.status_code] += 1
                    if r.status_code == 202:
                        assert r.json() == {"accepted": len(batch)}, r.text
                        self._acked(batch)
                        break
                    assert r.status_code >= 500, f"valid events refused: {r.status_code} {r.text[:500]}"
                except httpx.TransportError as exc:  # the API is down (killed): retry the same events
                    self.http_statuses[type(exc).__name__] += 1
                self.http_retries += 1
                if self._abort.is_set():
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"POST /v1/events not accepted for 120 s ({tenant})")
                time.sleep(0.2)
