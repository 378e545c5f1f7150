"""Every command the ``lambdalytics`` app defines, run once on its happy path as a user runs it.

The parameters come from the typer app itself: a new command without a case here fails
``test_command_happy_path[<command>]``. Long-running commands (``up``, ``serve``, ``broker``, ``archive``)
are started, checked while they run and stopped with a signal.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import typer

from lambdalytics.cli.commands import SCHEMA_DIR, app
from lambdalytics.infra.broker import EmbeddedBroker, free_port

from ..speed.test_pinot import Controller
from .sources.test_olist import write_fixture
from .sources.test_online_retail import ROWS, write_csv

pytestmark = pytest.mark.integration


def _command_paths(group, prefix: str = "") -> Iterator[str]:
    """``up``, ``batch run``, ...: every leaf of the (typer-vendored) click command tree."""
    for name, command in group.commands.items():
        if getattr(command, "commands", None):
            yield from _command_paths(command, f"{prefix}{name} ")
        else:
            yield prefix + name


COMMANDS = sorted(_command_paths(typer.main.get_command(app)))


def _env(**values: str) -> dict[str, str]:
    return {**os.environ, **{f"LAMBDALYTICS_{k.upper()}": v for k, v in values.items()}}


def cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lambdalytics.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lambdalytics.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def until(check: Callable[[], object], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


# ------------------------------------------------------------------------ shared steps (module scope)


@pytest.fixture(scope="module")
def smoke_bootstrap() -> Iterator[str]:
    """A broker of the smoke tests' own: the commands write fixed tenants and event ids (the demo, the
    replayed fixtures), which would otherwise be duplicates of other tests' events on the session broker."""
    if configured := os.environ.get("LAMBDALYTICS_KAFKA_BOOTSTRAP"):
        yield configured
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture(scope="module")
def kafka_env(smoke_bootstrap, tmp_path_factory) -> dict[str, str]:
    return _env(
        kafka_bootstrap=smoke_bootstrap,
        data_dir=str(tmp_path_factory.mktemp("smoke")),
        spark_driver_memory="1g",
        spark_shuffle_partitions="2",
        block_size="10",  # a batch cut that covers some of the few events archived
    )


@pytest.fixture(scope="module")
def archived(kafka_env) -> tuple[int, str]:
    """``generate`` some events, then ``archive`` until the master dataset holds them; SIGTERM."""
    ok(cli("generate", "--duration", "20", "--rate", "5", "--start", "2026-01-01T00:00:00Z", env=kafka_env))
    proc = start("archive", "--max-batch-seconds", "0.5", env=kafka_env)
    master = Path(kafka_env["LAMBDALYTICS_DATA_DIR"]) / "master" / "_delta_log"
    try:
        until(lambda: master.exists() and any(master.glob("*.json")), "the first master commit")
    finally:
        code, _, err = stop(proc)
    return code, err


@pytest.fixture(scope="module")
def batch_ran(archived, kafka_env) -> str:
    return ok(cli("batch", "run", env=kafka_env)).stderr


# ------------------------------------------------------------------------ one case per command


def case_up(request, tmp_path):
    env = _env(data_dir=str(tmp_path), kafka_bootstrap="", api_port=str(free_port()))
    done = ok(cli("up", "--no-demo", "--duration", "3", env=env))
    assert "Lambdalytics is up" in done.stdout and "stopped" in done.stdout


def case_serve(request, tmp_path):
    port = free_port()
    env = {**request.getfixturevalue("kafka_env"), "LAMBDALYTICS_API_PORT": str(port)}
    env["LAMBDALYTICS_DATA_DIR"] = str(tmp_path)
    proc = start("serve", env=env)
    try:
        until(lambda: answers(f"http://127.0.0.1:{port}/readyz"), "serve: /readyz 200")
    finally:
        stop(proc)


def case_archive(request, tmp_path):
    code, err = request.getfixturevalue("archived")
    assert code == 143 and "archived" in err  # SIGTERM: the batch in hand committed, then exit


def case_batch_run(request, tmp_path):
    assert "batch version" in request.getfixturevalue("batch_ran")


def case_batch_backfill(request, tmp_path):
    request.getfixturevalue("batch_ran")
    env = request.getfixturevalue("kafka_env")
    done = ok(cli("batch", "backfill", "--since", "2026-01-01", "--until", "2026-01-01", env=env))
    # a new version, or the same one when the recomputation changed nothing (it is idempotent)
    assert "(backfill)" in done.stderr or "batch version 1 stays" in done.stderr


def case_batch_compact(request, tmp_path):
    request.getfixturevalue("batch_ran")
    env = request.getfixturevalue("kafka_env")
    done = ok(cli("batch", "compact", "--keep", "2", env=env))
    assert "master:" in done.stderr and "view versions kept" in done.stderr
    refused = cli("batch", "compact", "--keep", "1", env=env)  # N >= 2: always a version to roll back to
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def case_broker(request, tmp_path):
    proc = start("broker", env=_env(data_dir=str(tmp_path), kafka_bootstrap=""))
    bootstrap = proc.stdout.readline().strip()
    assert bootstrap.startswith("127.0.0.1:")
    done = ok(cli("topics", env=_env(data_dir=str(tmp_path), kafka_bootstrap="")))  # found via run file
    assert json.loads(done.stdout)["events.deadletter"] >= 1
    assert stop(proc, signal.SIGINT)[0] == 0


def case_topics(request, tmp_path):
    done = ok(cli("topics", env=request.getfixturevalue("kafka_env")))
    assert {"events.behavioral", "events.transaction", "events.support", "events.deadletter"} <= set(
        json.loads(done.stdout)
    )


def case_generate(request, tmp_path):
    done = ok(cli("generate", "--duration", "5", "--rate", "5", env=request.getfixturevalue("kafka_env")))
    assert "rejected 0" in done.stderr


def case_replay_online_retail(request, tmp_path):
    path = write_csv(tmp_path / "online_retail.csv", ROWS)
    env = request.getfixturevalue("kafka_env")
    # a tenant per country: ids apart from the one-tenant replay of the real file (tests/e2e), even when
    # every test shares an external broker
    done = ok(cli("replay", "online-retail", "--path", str(path), "--tenant-by", "country", env=env))
    assert "sent" in done.stderr


def case_replay_olist(request, tmp_path):
    env = request.getfixturevalue("kafka_env")
    done = ok(cli("replay", "olist", "--path", str(write_fixture(tmp_path / "olist")), env=env))
    assert "sent" in done.stderr


def case_schemas_export(request, tmp_path):
    ok(cli("schemas", "export", "--out", str(tmp_path), env=_env()))
    written = sorted(p.name for p in tmp_path.glob("*.schema.json"))
    assert written == sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json")) and written
    ok(cli("schemas", "export", "--check", env=_env()))


def case_schemas_validate(request, tmp_path):
    path = tmp_path / "events.jsonl"
    ok(cli("generate", "--duration", "10", "--jsonl", str(path), env=_env()))
    assert "0 rejected" in ok(cli("schemas", "validate", str(path), env=_env())).stderr


def case_metrics(request, tmp_path):
    rows = json.loads(ok(cli("metrics", "--json", env=_env())).stdout)
    assert "avg_order_value" in ok(cli("metrics", env=_env())).stdout
    assert {"name", "grain", "formula", "unit"} <= set(rows[0])


def case_metrics_add(request, tmp_path):
    case_metrics(request, tmp_path)  # `metrics` alone lists the catalog (a group with a default action)
    example = Path(__file__).resolve().parents[2] / "examples" / "metrics.toml"
    done = ok(cli("metrics", "add", str(example), env=_env(data_dir=str(tmp_path))))
    assert "registered metric set v1" in done.stdout + done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[[metric]]\nname = 'x'\n")
    refused = cli("metrics", "add", str(bad), env=_env(data_dir=str(tmp_path)))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def case_erase(request, tmp_path):
    request.getfixturevalue("batch_ran")
    env = request.getfixturevalue("kafka_env")
    from deltalake import DeltaTable

    rows = (
        DeltaTable(str(Path(env["LAMBDALYTICS_DATA_DIR"]) / "master"))
        .to_pyarrow_dataset()
        .head(1)
        .to_pylist()
    )
    tenant, customer = rows[0]["tenant_id"], rows[0]["customer_id"]
    done = ok(cli("erase", "--tenant", tenant, "--customer", customer, env=env))
    assert "erasure" in done.stdout + done.stderr
    refused = cli("erase", "--tenant", "Not A Tenant!", "--customer", customer, env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


class _ControllerServer(http.server.BaseHTTPRequestHandler):
    """The Pinot controller test double (``Controller``) behind a real HTTP port."""

    controller = Controller()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = httpx.Request(self.command, f"http://controller{self.path}", content=body)
        response = self.controller(request)
        self.send_response(response.status_code)
        self.send_header("Content-Type", response.headers.get("content-type", "text/plain"))
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


def case_pinot_apply(request, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ControllerServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            **request.getfixturevalue("kafka_env"),
            "LAMBDALYTICS_PINOT_CONTROLLER_URL": f"http://127.0.0.1:{server.server_address[1]}",
        }
        done = ok(cli("pinot", "apply", env=env))
        assert done.stderr.count("created") == 3  # a REALTIME table per event topic
    finally:
        server.shutdown()
        server.server_close()
    # and without a controller, it says so (exit 2), with no traceback
    env["LAMBDALYTICS_PINOT_CONTROLLER_URL"] = f"http://127.0.0.1:{free_port()}"
    refused = cli("pinot", "apply", env=env)
    assert refused.returncode == 2 and "Pinot controller" in refused.stderr
    assert "Traceback" not in refused.stderr


CASES: dict[str, Callable] = {
    "up": case_up,
    "serve": case_serve,
    "archive": case_archive,
    "batch run": case_batch_run,
    "batch backfill": case_batch_backfill,
    "batch compact": case_batch_compact,
    "broker": case_broker,
    "topics": case_topics,
    "generate": case_generate,
    "replay online-retail": case_replay_online_retail,
    "replay olist": case_replay_olist,
    "schemas export": case_schemas_export,
    "schemas validate": case_schemas_validate,
    "metrics add": case_metrics_add,
    "erase": case_erase,
    "pinot apply": case_pinot_apply,
}


@pytest.mark.timeout(1200)  # the batch cases start Spark; a shared two-core box takes minutes
@pytest.mark.parametrize("command", COMMANDS)
def test_command_happy_path(command, request, tmp_path):
    assert command in CASES, f"`lambdalytics {command}` has no smoke case in {__file__}"
    CASES[command](request, tmp_path)


def test_every_smoke_case_is_a_command():
    assert set(CASES) == set(COMMANDS)
