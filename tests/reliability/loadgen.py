"""Mixed API traffic from an asyncio client (httpx), with every sampled answer checked.

Two modes: :func:`probe` is closed-loop (N clients, each sends its next request when the last one is
answered) and measures what this machine serves; :func:`run` is open-loop at a fixed rate (a request
is sent on schedule whether or not earlier ones were answered), so a slow server shows up as latency
and queueing instead of silently lowering the offered load.

The mix: customer profile 70 %, customer time series 10 %, campaign stats 10 %, live orders 5 %,
cohorts 5 %. Profiles, time series and campaign stats of *frozen* keys (all their events acknowledged
and visible before the load began) must equal the truth exactly in every answer, across batch version
swaps; answers about keys still receiving events can only be checked for status and shape.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .oracle import HOUR_MS, SERIES, Truth, iso_ms
from .system import rss_kib
from .verify import recent_range

Key = tuple[str, str]
MAX_IN_FLIGHT = 32  # like a fleet of 32 keep-alive connections; later requests queue in the client
MIX = (("profile", 0.70), ("timeseries", 0.10), ("campaign", 0.10), ("live", 0.05), ("cohorts", 0.05))


@dataclass
class Target:
    url: str
    keys: dict[str, str]  # tenant -> API key
    truth: Truth  # of the frozen events
    frozen: list[Key]
    frozen_campaigns: list[Key]
    streaming: Callable[[], list[Key]]  # customers of the live stream acknowledged so far


@dataclass
class LoadResult:
    seconds: float = 0.0  # until the last answer
    sent_seconds: float = 0.0  # until the last request was scheduled
    offered_rate: float = 0.0  # open loop: the rate asked for
    slowest_rate: float = 0.0  # closed loop: answers/s in the slowest full window
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)
    transport_errors: Counter = field(default_factory=Counter)
    checked: int = 0  # answers compared with the truth
    wrong: list[str] = field(default_factory=list)
    streaming_404: int = 0  # a live customer whose first event was not visible yet
    latencies_ms: list[float] = field(default_factory=list)
    completed_at: list[float] = field(default_factory=list)  # seconds since the start, per answer
    versions: dict[int, float] = field(default_factory=dict)  # batch version -> first seen (s)
    rss_kib: list[tuple[float, int]] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def percentile(self, q: float, data: list[float] | None = None) -> float:
        data = sorted(self.latencies_ms if data is None else data)
        return data[min(len(data) - 1, int(q * len(data)))] if data else 0.0

    def timeline(self, step_s: float = 10.0) -> list[list[Any]]:
        """Per ``step_s`` window (empty ones included): answers, answers/s, p50 and p99 latency (ms)."""
        windows: dict[int, list[float]] = {}
        for at, ms in zip(self.completed_at, self.latencies_ms, strict=True):
            windows.setdefault(int(at // step_s), []).append(ms)
        return [
            [
                f"{k * step_s:.0f}-{(k + 1) * step_s:.0f} s",
                len(v := windows.get(k, [])),
                round(len(v) / step_s),
                round(self.percentile(0.5, v), 1),
                round(self.percentile(0.99, v), 1),
            ]
            for k in range(max(windows, default=-1) + 1)
        ]


def _pick(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for kind, share in MIX:
        acc += share
        if x < acc:
            return kind
    return MIX[-1][0]


class _Traffic:
    def __init__(self, target: Target, rng: random.Random, result: LoadResult, clock: Callable[[], float]):
        self.t, self.rng, self.result, self.clock = target, rng, result, clock

    def _request(self) -> tuple[str, str, dict[str, Any], str, Any]:
        """(kind, path, params, tenant, check) for one request of the mix."""
        t, rng = self.t, self.rng
        kind = _pick(rng)
        live = t.streaming()
        if kind == "profile":
            if live and rng.random() < 0.2:
                tenant, customer = rng.choice(live)
                return "profile-live", f"/v1/customers/{customer}/profile", {}, tenant, None
            tenant, customer = rng.choice(t.frozen)
            return "profile", f"/v1/customers/{customer}/profile", {}, tenant, (tenant, customer)
        if kind == "timeseries":
            tenant, customer = rng.choice(t.frozen)
            hours = t.truth.hours[(tenant, customer)]
            params = {
                "metric": rng.choice(SERIES),
                "granularity": "hour",
                "start": iso_ms(min(hours)),
                "end": iso_ms(max(hours) + HOUR_MS),
            }
            return kind, f"/v1/customers/{customer}/timeseries", params, tenant, (tenant, customer)
        if kind == "campaign":
            tenant, campaign = rng.choice(t.frozen_campaigns)
            params = {**recent_range(), "granularity": "day"}
            return kind, f"/v1/campaigns/{campaign}/stats", params, tenant, (tenant, campaign)
        tenant = rng.choice(sorted(t.keys))
        if kind == "live":
            return kind, "/v1/live/orders", {"window": "1d"}, tenant, None
        return kind, "/v1/cohorts/retention", {}, tenant, None

    def _check(self, kind: str, key: Any, params: dict, body: dict) -> list[str]:
        truth = self.t.truth
        if kind == "profile":
            return truth.profile_diff(key, body["metrics"])
        if kind == "timeseries":
            return truth.series_diff(key, params["metric"], body["points"])
        if kind == "campaign":
            return truth.campaign_diff(key, body["totals"])
        if kind == "live":
            bad = [k for k in ("orders_in_progress",) if not isinstance(body.get(k), int) or body[k] < 0]
            return [f"live orders: {k}={body.get(k)!r}" for k in bad]
        if kind == "cohorts":
            rows = body["cohorts"]
            ok = all(r["size"] > 0 and r["retention"][:1] == [1.0] for r in rows)
            return [] if ok else [f"cohorts: malformed {rows[:3]}"]
        return []

    async def one(self, client: httpx.AsyncClient, scheduled: float | None = None) -> None:
        """One request; latency counts from ``scheduled`` (perf_counter) when given, so time spent
        queued in the client behind a slow server is included (no coordinated omission)."""
        kind, path, params, tenant, key = self._request()
        res = self.result
        res.by_kind[kind] += 1
        started = scheduled if scheduled is not None else time.perf_counter()
        try:
            r = await client.get(
                path, params=params, headers={"Authorization": f"Bearer {self.t.keys[tenant]}"}
            )
        except httpx.HTTPError as exc:
            res.requests += 1
            res.transport_errors[type(exc).__name__] += 1
            return
        res.latencies_ms.append((time.perf_counter() - started) * 1000)
        res.completed_at.append(self.clock())
        res.requests += 1
        res.statuses[r.status_code] += 1
        if kind == "profile-live" and r.status_code == 404:
            res.streaming_404 += 1
            return
        if r.status_code != 200:
            res.wrong.append(f"{kind} {path}: HTTP {r.status_code} {r.text[:200]}")
            return
        body = r.json()
        version = body.get("freshness", {}).get("batch_version")
        if version is not None and version not in res.versions:
            res.versions[version] = self.clock()
        if kind != "profile-live":
            res.checked += 1
            if diff := self._check(kind, key, params, body):
                res.wrong.append(f"{kind} {path} {params}: {'; '.join(diff)}")


def _client(target: Target) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=target.url,
        timeout=httpx.Timeout(30.0, pool=60.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


async def probe(
    target: Target, until: Callable[[], bool], *, concurrency: int = 8, seed: int = 0, window_s: float = 5.0
) -> LoadResult:
    """Closed loop with ``concurrency`` clients until ``until()``: what this machine answers.

    ``slowest_rate`` of the result is the *lowest* throughput of any full ``window_s`` window — what
    the API sustained at its worst moment (for the load test: the heaviest phase of a Spark run).
    """
    result = LoadResult()
    started = time.monotonic()
    traffic = _Traffic(target, random.Random(seed), result, lambda: time.monotonic() - started)
    async with _client(target) as client:

        async def worker() -> None:
            while not until() or time.monotonic() - started < 2 * window_s:
                await traffic.one(client)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.monotonic() - started
    full = [row[1] for row in result.timeline(window_s)[:-1]]  # the last window is partial
    result.slowest_rate = min(full) / window_s if full else result.requests / result.seconds
    return result


async def run(
    target: Target,
    rate: float,
    *,
    min_seconds: float,
    max_seconds: float,
    done: Callable[[], bool],
    rss_pid: int,
    seed: int = 1,
    on_tick: Callable[[float], None] | None = None,
    result: LoadResult | None = None,
) -> LoadResult:
    """Open loop at ``rate`` requests/s for at least ``min_seconds`` and until ``done()`` (at most
    ``max_seconds``), sampling the RSS of ``rss_pid`` every second. Pass ``result`` to watch it live."""
    result = result if result is not None else LoadResult()
    result.offered_rate = rate
    started = time.monotonic()
    clock = lambda: time.monotonic() - started  # noqa: E731
    traffic = _Traffic(target, random.Random(seed), result, clock)
    pending: set[asyncio.Task] = set()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    next_sample = 0.0
    t0 = time.perf_counter()

    async def send(client: httpx.AsyncClient, scheduled: float) -> None:
        async with slots:
            await traffic.one(client, scheduled)

    async with _client(target) as client:
        i = 0
        while True:
            now = clock()
            if (now >= min_seconds and done()) or now >= max_seconds:
                break
            if now >= next_sample:
                if (rss := rss_kib(rss_pid)) is not None:
                    result.rss_kib.append((now, rss))
                if on_tick:
                    on_tick(now)
                next_sample += 1.0
            delay = i / rate - now
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(client, t0 + i / rate))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            if i % 64 == 0:
                await asyncio.sleep(0)  # let answers be handled even when the schedule is behind
        result.sent_seconds = clock()
        await asyncio.gather(*pending)
    if (rss := rss_kib(rss_pid)) is not None:
        result.rss_kib.append((clock(), rss))
    result.seconds = clock()
    return result
