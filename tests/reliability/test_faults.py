"""Faults: kill -9 of the archiver, the API worker with the embedded store and batch runs, each restarted."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from lambdalytics.batch.writer import read_manifest

from . import streams, verify
from .oracle import Truth
from .system import System, say

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

STREAM_RATE = 100.0  # events/s while faults land
ARCHIVER_KILLS = 3
API_KILLS = 2  # one at a random moment, one at a random moment after the first batch version
WINDOW_S = 45.0  # archiver kills and the first API kill fall at random moments in [2, WINDOW_S]


class BatchChain:
    """Batch runs during the fault window: one that completes (so later restarts of the API have a
    batch version to load and merge with), one killed at a random moment, and one killed while it
    publishes. Publication is short (the view tables and the manifest commit within some 50 ms, after
    a minute of Spark), so a uniformly random moment would never hit it: a watcher thread stats the
    ``_delta_log`` folders every millisecond and kills the run a random 0-30 ms after the first one
    changes. The final batch run after the window is the restart of the last one. After each kill the
    published view version must be the one from before the run, or — if the kill landed after the
    manifest commit — the new one, complete."""

    def __init__(self, system: System, rng):
        self.sut, self.rng = system, rng
        self.step = 0
        self.kill_at: float | None = None
        self.commits_before = 0
        self.version_before = 0
        self.first_version_at: float | None = None
        self.notes: list[str] = []
        self.start_at = rng.uniform(1, 5)
        self.watcher: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.step == 4

    def _start(self) -> None:
        manifest = read_manifest(self.sut.data_dir)
        self.version_before = manifest.batch_version if manifest else 0
        self.commits_before = self.sut.view_commits()
        self.sut.start_batch()

    def _kill_or_note(self, label: str) -> None:
        proc = self.sut.batch
        assert proc is not None
        if proc.poll() is not None:
            assert proc.returncode == 0, self.sut.log("batch")[-3000:]
            self.notes.append(f"{label}: the run completed before its kill moment (no fault)")
        else:
            fault = self.sut.kill_batch(self.commits_before)
            say(f"faults: t={fault.at_s:.1f}s kill -9 {label} ({fault.detail})")
            manifest = read_manifest(self.sut.data_dir)
            after = manifest.batch_version if manifest else 0
            assert after in (self.version_before, self.version_before + 1), (after, self.version_before)
            for name in manifest.views if manifest else ():
                manifest.table(self.sut.data_dir, name).to_pyarrow_table()  # every table it names reads
            fault.detail += (
                f"; published version after the kill: {after} (before the run: {self.version_before})"
            )
        self.kill_at = None

    def tick(self, now: float) -> None:
        sut, rng = self.sut, self.rng
        if self.step == 0 and now >= self.start_at:
            self._start()
            self.step = 1
        elif self.step == 1 and sut.batch.poll() is not None:
            assert sut.batch.returncode == 0, sut.log("batch")[-3000:]
            self.first_version_at = now
            say(f"faults: t={now:.1f}s batch run completed (version {self.version_before + 1})")
            self._start()
            self.kill_at = now + rng.uniform(2, 15)
            self.step = 2
        elif self.step == 2 and now >= (self.kill_at or 0):
            self._kill_or_note("batch run (random moment)")
            self._start()
            self.step = 3
        elif self.step == 3 and self.watcher is None:
            self.watcher = threading.Thread(target=self._kill_when_publishing, args=(rng.uniform(0, 0.03),))
            self.watcher.start()
        elif self.step == 3 and not self.watcher.is_alive():
            if self.error is not None:
                raise self.error
            self.step = 4

    def _kill_when_publishing(self, delay_s: float) -> None:
        try:
            logs = list((self.sut.data_dir / "views").glob("*/_delta_log"))
            before = {p: p.stat().st_mtime_ns for p in logs}
            while self.sut.batch.poll() is None:
                if any(p.stat().st_mtime_ns != before[p] for p in logs):
                    time.sleep(delay_s)
                    break
                time.sleep(0.001)
            self._kill_or_note(f"batch run ({delay_s * 1000:.0f} ms after its publication began)")
        except BaseException as exc:  # raised in the test's thread by tick()
            self.error = exc


def test_kill_9_archiver_api_and_batch_runs(system, figures, report, rng):
    """Faults: kill -9 of the archiver, the API process with the embedded store and batch runs."""
    system.start_archiver()
    system.start_api()
    system.wait_healthy()
    keys = {t: system.admin_tenant(t) for t in streams.TENANTS}
    stream = streams.events(
        rng.randrange(10**6), stories_per_s=6, seconds=2400, customers=40, end_ms=int(time.time() * 1000)
    )
    streamer = streams.Streamer(
        system.bootstrap, stream, rate=STREAM_RATE, api_url=system.url, keys=keys, http_share=0.25
    )

    plan = sorted(
        [(rng.uniform(2, WINDOW_S), "archiver") for _ in range(ARCHIVER_KILLS)]
        + [(rng.uniform(2, WINDOW_S), "api")]
    )
    late_api_kill = rng.uniform(1, 10)  # seconds after the first batch version was published
    say("faults: plan " + ", ".join(f"{what}@{at:.1f}s" for at, what in plan) + ", batch runs in between")
    chain = BatchChain(system, rng)
    started = time.monotonic()
    system.faults.clear()
    system.started = started
    with streamer:
        while plan or late_api_kill is not None or not chain.done:
            now = time.monotonic() - started
            assert now < 400, "the fault window did not finish"
            chain.tick(now)
            if chain.first_version_at is not None and late_api_kill is not None:
                plan = sorted([*plan, (chain.first_version_at + late_api_kill, "api")])
                late_api_kill = None
            if plan and now >= plan[0][0]:
                _, what = plan.pop(0)
                if what == "archiver":
                    fault = system.kill_archiver()
                    system.start_archiver()
                else:
                    fault = system.kill_api()
                    system.start_api()
                say(f"faults: t={fault.at_s:.1f}s kill -9 {fault.target} ({fault.detail}), restarted")
            for name, proc in (("archiver", system.archiver), ("api", system.api)):
                assert proc.poll() is None, f"{name} died on its own:\n{system.log(name)[-3000:]}"
            time.sleep(0.05)
    window = time.monotonic() - started
    say(f"faults: window over after {window:.0f}s; {len(streamer.acked):,} events acknowledged")

    truth = Truth(streamer.acked)
    system.wait_ready()
    rows = verify.wait_master_holds(
        system.data_dir, {(e["tenant_id"], e["event_id"]) for e in streamer.acked}
    )
    positions = Counter((r["topic"], r["partition"], r["offset"]) for r in rows)
    doubled = sum(n - 1 for n in positions.values() if n > 1)
    acked_positions = {(m.topic, m.partition, m.offset) for m in streamer.positions}
    lost_positions = acked_positions - set(positions)
    ids = {(r["tenant_id"], r["event_id"]) for r in rows}
    acked_ids = {(e["tenant_id"], e["event_id"]) for e in streamer.acked}
    say("faults: master dataset checked; comparing every answer (speed store rebuilt after the kills)")
    converged = verify.wait_until_equal(system.url, truth, keys)

    say("faults: final batch run (the restart of the killed one), then every answer again")
    system.run_batch()
    final = read_manifest(system.data_dir)
    verify.wait_for_version(system.url, final.batch_version)
    final_diff = verify.all_differences(system.url, truth, keys)
    for name, proc in (("archiver", system.archiver), ("api", system.api)):
        assert proc.poll() is None, f"{name} died:\n{system.log(name)[-3000:]}"

    faults = system.faults
    by_target = Counter(f.target for f in faults)
    http_events = len(streamer.acked) - len(streamer.positions)
    figures.figure("fault window", f"{window:.0f} s")
    figures.figure(
        "faults injected (kill -9)", f"{len(faults)}: " + ", ".join(f"{t} ×{n}" for t, n in by_target.items())
    )
    figures.figure(
        "events acknowledged (Kafka / POST /v1/events)", f"{len(streamer.positions):,} / {http_events:,}"
    )
    figures.figure("distinct events (the truth)", len(truth.events))
    figures.figure(
        "HTTP requests (retries after a kill)", f"{streamer.http_attempts:,} ({streamer.http_retries:,})"
    )
    figures.figure("master rows / distinct Kafka positions", f"{len(rows):,} / {len(positions):,}")
    figures.figure(
        "events lost (acknowledged, not in the master)", len(acked_ids - ids) + len(lost_positions)
    )
    figures.figure("events doubled (a Kafka position archived twice)", doubled)
    figures.figure(
        "extra copies of an event_id in the master (generator duplicates, retried POSTs), counted once",
        len(rows) - len(ids),
    )
    figures.figure(
        "customers / campaigns / cohort tables compared",
        f"{len(truth.profiles)} / {len(truth.campaigns)} / {len(keys)}",
    )
    figures.figure("seconds until the restarted speed store matched the truth", round(converged, 1))
    figures.figure("answers differing from the truth after the final batch run", len(final_diff))
    figures.figure("final batch version", final.batch_version)
    figures.table(
        "Faults injected (seconds since the window opened)",
        ["#", "at", "target", "state when killed"],
        [[i + 1, f"{f.at_s:.1f} s", f.target, f.detail] for i, f in enumerate(faults)],
    )
    figures.table(
        "POST /v1/events outcomes (each batch retried with the same event ids until 202)",
        ["outcome", "count"],
        [[str(k), n] for k, n in sorted(streamer.http_statuses.items(), key=str)],
    )
    for note in chain.notes:
        figures.note(note)
    report.add("faults injected (kill -9)", len(faults))
    report.add("events lost", len(acked_ids - ids) + len(lost_positions))
    report.add("events doubled", doubled)

    assert by_target["archiver"] == ARCHIVER_KILLS and by_target["api"] == API_KILLS
    assert by_target["batch run"] >= 1, chain.notes
    assert final.batch_version >= 2
    assert not lost_positions, (
        f"acknowledged positions missing from the master: {sorted(lost_positions)[:10]}"
    )
    assert ids == acked_ids, f"lost: {sorted(acked_ids - ids)[:5]}, unexpected: {sorted(ids - acked_ids)[:5]}"
    assert doubled == 0, [p for p, n in positions.items() if n > 1][:10]
    assert not final_diff, "\n".join(final_diff)
