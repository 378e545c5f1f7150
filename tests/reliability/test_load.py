"""Load: mixed API traffic at the measured sustainable rate while events stream and a batch run swaps."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from . import loadgen, streams, verify
from .oracle import Truth
from .system import say

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

MIN_SECONDS = 60.0  # the 60 s window; extended until the swap has been seen for a while
STREAM_RATE = 60.0  # events/s of the live stream during the load
CHECKED = {
    "profile": "frozen customer: exact, every metric",
    "timeseries": "frozen customer: exact, every hour",
    "campaign": "frozen campaign: exact totals",
    "profile-live": "live customer: 200 (or 404 before its first event is visible)",
    "live": "200, well-formed",
    "cohorts": "200, well-formed (live customers change them)",
}
PROBE_SHARE = 0.8  # offered rate = this share of the slowest 5 s of a closed-loop probe during a Spark run


def test_load_with_streaming_and_a_version_swap(system, figures, report, rng):
    """Load: 60 s of mixed traffic while events stream and a batch run swaps versions."""
    system.start_archiver()
    system.start_api()
    system.wait_healthy()
    keys = {t: system.admin_tenant(t) for t in streams.TENANTS}
    now_ms = int(time.time() * 1000)

    say("load: producing the frozen customers' events")
    frozen_events = streams.events(
        rng.randrange(10**6), stories_per_s=4, seconds=900, customers=40, end_ms=now_ms - 600_000
    )
    positions = streams.produce_all(system.bootstrap, frozen_events)
    truth = Truth(frozen_events)
    verify.wait_archived(system.data_dir, positions)
    system.wait_ready()
    verify.wait_until_equal(system.url, truth, keys)  # answered by the speed store alone (no batch yet)
    frozen = sorted(truth.profiles)
    frozen_campaigns = sorted(truth.campaigns)
    assert len(frozen) > 50 and frozen_campaigns

    live_events = streams.variant(
        streams.events(rng.randrange(10**6), stories_per_s=6, seconds=1800, customers=40, end_ms=now_ms),
        "live",
    )
    streamer = streams.Streamer(
        system.bootstrap, live_events, rate=STREAM_RATE, api_url=system.url, keys=keys, http_share=0.2
    )
    target = loadgen.Target(
        url=system.url,
        keys=keys,
        truth=truth,
        frozen=frozen,
        frozen_campaigns=frozen_campaigns,
        streaming=lambda: streamer.customers,
    )
    result = loadgen.LoadResult()
    batch_started: dict[str, float] = {}
    with streamer:
        say(f"load: {len(frozen_events):,} frozen events archived; first batch run, probing during it")
        first = system.start_batch()
        probe = asyncio.run(
            loadgen.probe(target, lambda: first.poll() is not None, seed=rng.randrange(10**6))
        )
        rate = round(max(10.0, PROBE_SHARE * probe.slowest_rate))
        say(
            f"load: closed-loop probe during the first batch run: {probe.requests / probe.seconds:.0f} req/s "
            f"on average, {probe.slowest_rate:.0f} req/s in its slowest 5 s; offering {rate} req/s"
        )
        assert probe.server_errors == 0 and not probe.wrong, (probe.statuses, probe.wrong[:5])
        assert first.returncode == 0, system.log("batch")[-3000:]
        verify.wait_for_version(system.url, 1)
        worker = system.api_worker()

        def on_tick(t: float) -> None:
            if t >= 5.0 and not batch_started:
                batch_started["at"] = t
                system.start_batch()
                say(f"load: t={t:.0f}s second batch run started")
            elif int(t) % 15 == 0:
                say(f"load: t={t:.0f}s, {result.requests:,} answers so far")

        def swapped() -> bool:
            """The second batch run finished and the API answered with its version."""
            finished = bool(batch_started) and system.batch.poll() is not None
            return finished and any(v > 1 for v in result.versions)

        asyncio.run(
            loadgen.run(
                target,
                rate,
                min_seconds=MIN_SECONDS,
                max_seconds=240.0,
                done=swapped,
                rss_pid=worker,
                seed=rng.randrange(10**6),
                on_tick=on_tick,
                result=result,
            )
        )
    batch_code = system.batch.wait(240) if system.batch else None
    say(
        f"load: {result.requests:,} requests in {result.seconds:.0f}s, statuses {dict(result.statuses)}, "
        f"versions seen {result.versions}"
    )

    rss = result.rss_kib
    warm = statistics.median(v for t, v in rss if t <= 10.0)
    end = statistics.median(v for _, v in rss[-5:])
    peak = max(v for _, v in rss)
    figures.figure(
        "closed-loop probe during the first batch run (8 clients): mean / slowest 5 s",
        f"{probe.requests / probe.seconds:.0f} / {probe.slowest_rate:.0f} req/s over {probe.seconds:.0f} s",
    )
    figures.figure("probe answers checked against the truth (across the swap to version 1)", probe.checked)
    figures.figure("offered rate (open loop)", f"{rate} req/s")
    figures.figure(
        "load window (sending / until the last answer)",
        f"{result.sent_seconds:.0f} s / {result.seconds:.0f} s",
    )
    figures.figure("requests served (probe + window)", f"{probe.requests:,} + {result.requests:,}")
    figures.figure("answers checked against the truth", result.checked)
    figures.figure("wrong answers", len(result.wrong))
    figures.figure("5xx responses", result.server_errors)
    figures.figure("transport errors / timeouts", sum(result.transport_errors.values()))
    figures.figure("latency p50 / p99", f"{result.percentile(0.5):.1f} / {result.percentile(0.99):.1f} ms")
    figures.figure("batch versions served during the window", ", ".join(map(str, sorted(result.versions))))
    figures.figure(
        "new version first answered at",
        ", ".join(f"v{v}: {t:.1f} s" for v, t in sorted(result.versions.items()) if v > 1) or "—",
    )
    figures.figure("batch run started at", f"{batch_started.get('at', float('nan')):.1f} s")
    figures.figure(
        "API worker RSS after warm-up / end / peak",
        f"{warm / 1024:.0f} / {end / 1024:.0f} / {peak / 1024:.0f} MiB",
    )
    figures.figure(
        "live events acknowledged during the load (of them via POST /v1/events)",
        f"{len(streamer.acked):,} ({len(streamer.acked) - len(streamer.positions):,})",
    )
    figures.figure("profile requests for live customers not visible yet (404)", result.streaming_404)
    figures.figure("frozen customers / campaigns", f"{len(frozen)} / {len(frozen_campaigns)}")
    timeline = result.timeline()
    for row in timeline:
        say(f"load: {row}")
    figures.table(
        "Answers over time (latency counted from the scheduled send time)",
        ["window", "answers", "answers/s", "p50 ms", "p99 ms"],
        timeline,
    )
    figures.table(
        "Requests by kind (window)",
        ["kind", "requests", "checked how"],
        [[k, n, CHECKED[k]] for k, n in sorted(result.by_kind.items())],
    )
    figures.table(
        "Responses by status", ["status", "count"], [[s, n] for s, n in sorted(result.statuses.items())]
    )
    report.add("API requests served", probe.requests + result.requests)
    report.add("5xx responses", probe.server_errors + result.server_errors)
    report.add("wrong answers", len(probe.wrong) + len(result.wrong))
    for wrong in result.wrong[:10]:
        figures.note(f"wrong answer: {wrong}")

    assert batch_code == 0, system.log("batch")[-3000:]
    assert result.server_errors == 0, result.statuses
    assert not result.transport_errors, result.transport_errors
    assert not result.wrong, "\n".join(result.wrong[:20])
    assert result.sent_seconds >= MIN_SECONDS
    assert 1 in result.versions and max(result.versions) > 1, "no version swap was observed during the load"
    assert result.checked > 0.7 * result.requests
    assert end <= warm * 1.5 + 64 * 1024, f"RSS grew from {warm} KiB to {end} KiB"

    say("load: final check of every customer, frozen and live")
    everything = Truth(frozen_events + streamer.acked)
    verify.wait_until_equal(system.url, everything, keys)
    figures.figure("customers differing from the truth after the load (frozen + live)", 0)
    report.add("events lost", 0)
