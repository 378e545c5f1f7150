"""``lambdalytics up``: the whole pipeline on one machine (what ``make run`` starts).

Broker (embedded unless configured) → topics → archiver (thread) → API with the embedded speed store
(``lambdalytics serve`` subprocess) → periodic batch runs (``lambdalytics batch run`` subprocesses, so
each Spark JVM comes and goes cleanly) → a live demo stream. Prints the demo tenants' keys, an embed
token and the URLs; Ctrl-C (or ``--duration``) stops everything.

The embedded broker keeps its log in memory, so its offsets restart at 0 with every start: a master
dataset from an earlier run would claim offsets the new log has not reached. With the embedded broker,
``up`` therefore works in a fresh ``$DATA_DIR/embedded-<UTC time>`` folder each time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.writer import read_manifest
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.runtime import running_broker
from lambdalytics.infra.settings import Settings, child_env
from lambdalytics.serving import private_files
from lambdalytics.serving.credentials import Credentials

from .sources.generator import TENANTS, GeneratorConfig, generate
from .sources.pacing import send_paced

console = Console()


def _stream_demo(bootstrap: str, cfg: GeneratorConfig, stop: threading.Event) -> None:
    def until_stopped():
        for event in generate(cfg):
            if stop.is_set():
                return
            yield event

    with EventProducer(bootstrap) as producer:
        send_paced(until_stopped(), producer, speedup=1.0, show_progress=False)


def _batch_loop(env: dict[str, str], interval_s: float, log_path: Path, stop: threading.Event) -> None:
    while not stop.wait(interval_s):
        with log_path.open("ab") as log:
            subprocess.run(
                [sys.executable, "-m", "lambdalytics.cli", "batch", "run"],
                env=env,
                stdout=log,
                stderr=log,
                check=False,
            )


def _wait_ready(url: str, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def run_up(
    settings: Settings,
    *,
    demo: bool = True,
    rate: float = 20.0,
    duration_s: float | None = None,
    seed: int = 7,
) -> None:
    base_dir = Path(settings.data_dir)
    if not settings.kafka_bootstrap:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        settings = settings.model_copy(update={"data_dir": base_dir / f"embedded-{stamp}"})
    data_dir = Path(settings.data_dir)
    (data_dir / "run").mkdir(parents=True, exist_ok=True)
    logging.getLogger("lambdalytics.batch.archiver").setLevel(logging.WARNING)  # the status line reports it
    stop = threading.Event()
    threads: list[threading.Thread] = []
    api: subprocess.Popen | None = None
    with running_broker(settings.model_copy(update={"data_dir": base_dir})) as bootstrap:
        partitions = ensure_topics(bootstrap, settings.kafka_partitions)
        console.print(f"[bold green]Kafka[/] {bootstrap} {partitions}\n[bold]data[/] {data_dir}")
        env = child_env(
            kafka_bootstrap=bootstrap,
            data_dir=data_dir,
            api_host=settings.api_host,
            api_port=settings.api_port,
        )
        archiver = Archiver(bootstrap, data_dir)
        threads.append(
            threading.Thread(target=archiver.run, kwargs={"stop_event": stop}, name="archiver", daemon=True)
        )
        creds = Credentials.open(settings)  # the same the API process opens: they live in DATA_DIR/run
        keys = {t: creds.registry.create(t, t) or creds.registry.rotate(t) for t in TENANTS} if demo else {}
        with (data_dir / "run" / "api.log").open("ab") as api_log:
            api = subprocess.Popen(
                [sys.executable, "-m", "lambdalytics.cli", "serve"],
                env=env,
                stdout=api_log,
                stderr=api_log,
            )
        url = f"http://{settings.api_host}:{settings.api_port}"
        threads.append(
            threading.Thread(
                target=_batch_loop,
                args=(env, settings.batch_interval_seconds, data_dir / "run" / "batch.log", stop),
                name="batch-scheduler",
                daemon=True,
            )
        )
        if demo:
            cfg = GeneratorConfig(
                seed=seed, rate=rate, duration_s=365 * 86_400, start_ms=int(time.time() * 1000)
            )
            threads.append(
                threading.Thread(target=_stream_demo, args=(bootstrap, cfg, stop), name="demo", daemon=True)
            )
        for t in threads:
            t.start()
        if not _wait_ready(url):
            console.print(f"[red]API did not start; see {data_dir / 'run' / 'api.log'}[/]")
        _print_welcome(url, creds, keys, data_dir)
        started = time.monotonic()
        try:
            while duration_s is None or time.monotonic() - started < duration_s:
                time.sleep(min(10.0, duration_s or 10.0))
                manifest = read_manifest(data_dir) if (data_dir / "views").exists() else None
                s = archiver.stats
                console.print(
                    f"[dim]{time.monotonic() - started:>6.0f}s[/] archived {s.rows:,} events "
                    f"({s.dead_lettered:,} dead-lettered) · batch version "
                    f"{manifest.batch_version if manifest else 0} · API {url}",
                    soft_wrap=True,
                )
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            stop.set()
            if api is not None:
                api.terminate()
                try:
                    api.wait(10)
                except subprocess.TimeoutExpired:
                    api.kill()
            for t in threads:
                t.join(timeout=15)


def _print_welcome(url: str, creds: Credentials, keys: dict[str, str | None], data_dir: Path) -> None:
    """Plain lines, never truncated: users copy these."""
    lines = {
        "API": url,
        "OpenAPI": f"{url}/docs",
        "dashboard (sign in with a tenant key)": f"{url}/dashboard",
        "admin token": creds.admin_token,
    }
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
