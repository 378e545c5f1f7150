"""``lambdalytics up``: the whole pipeline on one machine (what ``make run`` starts).

Broker (embedded unless configured) → topics → archiver (thread) → API with the embedded speed store
(``lambdalytics serve`` subprocess) → periodic batch runs (``lambdalytics batch run`` subprocesses, so
each Spark JVM comes and goes cleanly) → a live demo stream. The archiver compacts the master and
applies view retention every ``compact_interval_seconds`` (``batch.compaction``). Prints the demo
tenants' keys, a demo owner's dashboard sign-in per demo tenant, an embed token and the URLs. Every part runs as a supervised worker
(``infra.supervisor``: a crash is logged, counted in the status line and restarted with backoff).
Ctrl-C, SIGTERM or ``--duration`` stops everything in order — demo, API, batch loop, archiver (its
current batch committed), broker — within 10 s; the children run in their own process groups so a
terminal's Ctrl-C reaches only ``up``.

History survives a restart: ``up`` works in one data folder (``$LAMBDALYTICS_DATA_DIR``, default
``data/``), so the master, the views, the tenants, their keys and the secrets carry over. The embedded
broker keeps its log in memory and starts at offset 0 each time; every start is a new *restart epoch*
(``infra.epochs``) whose offsets continue the logical line after everything archived, so W, blocks and the
merge carry on. After a restart the served version's W lies below the new epoch's base: reads fail closed
(503, and ``/readyz`` says why) until a batch run covers the previous epochs, which ``up`` starts at once.
The demo tenants are created once; a later ``up`` keeps their keys (read back from
``run/credentials.json`` while they still authenticate).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
from rich.console import Console

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.compaction import MaintenancePolicy
from lambdalytics.batch.master import master_path
from lambdalytics.batch.writer import read_manifest
from lambdalytics.infra import metric_registry, private_files
from lambdalytics.infra.broker import die_with_parent
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.runtime import running_broker
from lambdalytics.infra.settings import Settings, child_env
from lambdalytics.infra.supervisor import Supervised, stop_on_signals
from lambdalytics.serving.credentials import Credentials

from .sources.generator import TENANTS, GeneratorConfig, generate
from .sources.pacing import send_paced

console = Console()

# Seconds each step of the shutdown may take before the next one starts (the API is killed after its
# share): demo, API, batch loop, archiver, then the broker — together within 10 s.
_STOP_TIMEOUTS_S = {"demo": 1.5, "api": 3.0, "batch": 1.5, "archiver": 3.0}
_STOP_BUDGET_S = 8.5  # all workers together; the broker's own stop takes well under a second
# The embedded broker's log dies with it: once stopped, the archiver lands what it still holds for this
# long (within its share above) — the demo and the API stopped before it, so nothing new arrives.
_DRAIN_S = 2.0


def _spawn(args: list[str], env: dict[str, str], log) -> subprocess.Popen:
    """A ``lambdalytics`` child in its own process group: a terminal's Ctrl-C reaches only ``up``, which
    stops the children itself, in order. It dies with ``up`` even if ``up`` is killed -9."""
    return subprocess.Popen(
        [sys.executable, "-m", "lambdalytics.cli", *args],
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=die_with_parent,
    )


def _end(proc: subprocess.Popen, timeout_s: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve_api(env: dict[str, str], log_path: Path, data_dir: Path, stop: threading.Event) -> None:
    """The API process, as a supervised worker: an exit nobody asked for is a crash (restarted).

    A new registered metric set (``lambdalytics metrics add``) restarts it on purpose: its embedded speed
    stores open with the new catalog and consume the topics from their start, so they hold the new
    metrics for every event at or above W (docs/metrics.md, "Catalog files"); reads fail closed while
    they catch up."""
    with log_path.open("ab") as log:
        while True:
            registered = metric_registry.current(data_dir).version
            proc = _spawn(["serve"], env, log)
            try:
                while proc.poll() is None and not stop.wait(0.5):
                    if metric_registry.current(data_dir).version != registered:
                        console.print(f"registered metric set changed: restarting the API (see {log_path})")
                        break
            finally:
                _end(proc, _STOP_TIMEOUTS_S["api"])
            if stop.is_set() or metric_registry.current(data_dir).version == registered:
                break
    if not stop.is_set():
        raise RuntimeError(f"the API exited with code {proc.returncode} (see {log_path})")


def _stream_demo(bootstrap: str, cfg: GeneratorConfig, stop: threading.Event) -> None:
    def until_stopped():
        for event in generate(cfg):
            if stop.is_set():
                return
            yield event

    producer = EventProducer(bootstrap)
    try:
        send_paced(until_stopped(), producer, speedup=1.0, show_progress=False)
    finally:
        producer.close(1.0)


def _demo_worker(bootstrap: str, cfg: GeneratorConfig):
    """Each (re)start streams fresh stories from now, with a new seed: a restart reuses no event id."""
    runs = itertools.count()

    def run(stop: threading.Event) -> None:
        fresh = dataclasses.replace(cfg, seed=cfg.seed + next(runs), start_ms=int(time.time() * 1000))
        _stream_demo(bootstrap, fresh, stop)

    return run


def _batch_loop(
    env: dict[str, str],
    interval_s: float,
    log_path: Path,
    stop: threading.Event,
    *,
    at_once: threading.Event | None = None,
) -> None:
    """A batch run every ``interval_s``; the first as soon as ``at_once`` is set (a restart over a kept
    master: the archiver has entered the new epoch, and until a run covers the previous one reads fail
    closed)."""
    first = at_once is not None
    if first:
        while not at_once.wait(0.2):
            if stop.is_set():
                return
    while (first and not stop.is_set()) or not stop.wait(interval_s):
        first = False
        with log_path.open("ab") as log:
            proc = _spawn(["batch", "run"], env, log)
            try:
                while proc.poll() is None and not stop.wait(0.2):
                    pass
            finally:
                _end(proc, _STOP_TIMEOUTS_S["batch"])  # a stopped run publishes nothing: fine


def _wait_ready(url: str, stop: threading.Event, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return True
        except OSError:
            stop.wait(0.3)
    return False


def run_up(
    settings: Settings,
    *,
    demo: bool = True,
    rate: float = 20.0,
    duration_s: float | None = None,
    seed: int = 7,
) -> int:
    """Run until ``duration_s`` passes or SIGINT/SIGTERM arrives; then stop demo, API, batch loop,
    archiver and broker, in that order. Returns the exit code (143 after SIGTERM, else 0)."""
    data_dir = Path(settings.data_dir)
    restarted = master_path(data_dir).exists()  # history to keep: the first batch run starts at once
    run_dir = data_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("lambdalytics.batch.archiver").setLevel(logging.WARNING)  # the status line reports it
    stop = threading.Event()
    with (
        stop_on_signals(stop) as received,
        running_broker(settings, master_exists=restarted) as bootstrap,
    ):
        partitions = ensure_topics(bootstrap, settings.kafka_partitions)
        console.print(f"[bold green]Kafka[/] {bootstrap} {partitions}\n[bold]data[/] {data_dir}")
        env = child_env(
            kafka_bootstrap=bootstrap,
            data_dir=data_dir,
            api_host=settings.api_host,
            api_port=settings.api_port,
        )
        creds = Credentials.open(settings)  # the same the API process opens: they live in DATA_DIR/run
        keys = _demo_keys(creds, data_dir) if demo else {}
        owners = {t: _demo_owner(creds, t) for t in TENANTS} if demo else {}
        archiver = Archiver(
            bootstrap,
            data_dir,
            maintenance=MaintenancePolicy.from_settings(settings),  # compacts the master
            block_size=settings.block_size,
        )
        drain_s = 0.0 if settings.kafka_bootstrap else _DRAIN_S
        workers = {
            "archiver": Supervised("archiver", lambda s: archiver.run(stop_event=s, drain_seconds=drain_s))
        }
        workers["api"] = Supervised("api", functools.partial(_serve_api, env, run_dir / "api.log", data_dir))
        workers["batch"] = Supervised(
            "batch",
            functools.partial(
                _batch_loop,
                env,
                settings.batch_interval_seconds,
                run_dir / "batch.log",
                at_once=archiver.entered_epoch if restarted else None,
            ),
        )
        if demo:
            cfg = GeneratorConfig(seed=seed, rate=rate, duration_s=365 * 86_400)
            workers["demo"] = Supervised("demo", _demo_worker(bootstrap, cfg))
        url = f"http://{settings.api_host}:{settings.api_port}"
        try:
            for worker in workers.values():
                worker.start()
            if not _wait_ready(url, stop) and not stop.is_set():
                console.print(f"[red]API did not start; see {run_dir / 'api.log'}[/]")
            if not stop.is_set():
                _print_welcome(url, creds, keys, owners, data_dir)
                if restarted and not settings.kafka_bootstrap:  # a new embedded log: a new restart epoch
                    console.print(
                        f"[bold]history kept[/] in {data_dir}: until the batch run started now covers the "
                        "previous run, reads answer 503 with the reason",
                        soft_wrap=True,
                    )
            started = time.monotonic()
            while not stop.wait(min(10.0, duration_s or 10.0)):
                _print_status(started, archiver, data_dir, url, workers.values())
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
        finally:
            console.print("stopping…")
            deadline = time.monotonic() + _STOP_BUDGET_S
            for name in ("demo", "api", "batch", "archiver"):  # then the broker, leaving the block
                if name in workers:
                    share = _STOP_TIMEOUTS_S[name] + 1
                    workers[name].stop(max(0.5, min(share, deadline - time.monotonic())))
    console.print("stopped")
    return 143 if signal.SIGTERM in received else 0


def _demo_keys(creds: Credentials, data_dir: Path) -> dict[str, str | None]:
    """The demo tenants' keys, idempotently: a tenant made by an earlier ``up`` keeps its key (read back
    from that run's ``credentials.json``) while the key still authenticates it; a new tenant is created;
    one whose key is not known any more (the file lost, the key rotated elsewhere) gets a rotated key."""
    try:
        previous = orjson.loads((data_dir / "run" / "credentials.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        previous = {}
    keys: dict[str, str | None] = {}
    for tenant in TENANTS:
        old = previous.get(f"{tenant} key") if isinstance(previous, dict) else None
        if isinstance(old, str) and old and creds.registry.tenant_of(old) == tenant:
            keys[tenant] = old
        else:
            keys[tenant] = creds.registry.create(tenant, tenant) or creds.registry.rotate(tenant)
    return keys


def _print_status(started: float, archiver: Archiver, data_dir: Path, url: str, workers) -> None:
    manifest = read_manifest(data_dir) if (data_dir / "views").exists() else None
    s = archiver.stats
    troubled = [w.describe() for w in (w.status() for w in workers) if w.restarts or not w.up]
    console.print(
        f"[dim]{time.monotonic() - started:>6.0f}s[/] archived {s.rows:,} events "
        f"({s.dead_lettered:,} dead-lettered) · batch version "
        f"{manifest.batch_version if manifest else 0} · API {url} · "
        + ("workers: " + ", ".join(troubled) if troubled else "all workers up"),
        soft_wrap=True,
    )


def _demo_owner(creds: Credentials, tenant: str) -> tuple[str, str]:
    """A demo tenant's owner account with a fresh password (reset when it exists from an earlier run)."""
    email, password = f"owner@{tenant}.example", secrets.token_urlsafe(12)
    existing = creds.users.by_email(email)
    if existing is None:
        creds.users.create(tenant, email, "owner", password)
    else:
        creds.users.set_password(tenant, existing.user_id, password)
    return email, password


def _print_welcome(
    url: str,
    creds: Credentials,
    keys: dict[str, str | None],
    owners: dict[str, tuple[str, str]],
    data_dir: Path,
) -> None:
    """Plain lines, never truncated: users copy these."""
    lines = {
        "API": url,
        "OpenAPI": f"{url}/docs",
        "dashboard (sign in with a demo owner below)": f"{url}/dashboard",
        "admin token": creds.admin_token,
    }
    lines.update(
        {f"{tenant} sign-in": f"{email} / {password}" for tenant, (email, password) in owners.items()}
    )
    lines.update({f"{tenant} key": key or "" for tenant, key in keys.items()})
    if keys:
        generation = creds.registry.generation("demo-food") or 0  # the key just made or rotated
        token, _ = creds.signer.issue("demo-food", "food-c00000", 86_400, generation=generation)
        lines["embed token (demo-food, food-c00000)"] = token
        lines["widget"] = f"{url}/embed/customer-card?token={token}"
        lines["try"] = (
            f"curl -H 'Authorization: Bearer {keys['demo-food']}' {url}/v1/customers/food-c00000/profile"
        )
    path = data_dir / "run" / "credentials.json"
    private_files.replace(path, json.dumps(lines, indent=2))  # mode 0600 from its first byte
    console.rule("[bold green]Lambdalytics is up")
    for name, value in lines.items():
        console.print(f"[bold]{name}:[/] {value}", soft_wrap=True, highlight=False)
    console.print(f"(also in {path})", soft_wrap=True)
    console.rule()
