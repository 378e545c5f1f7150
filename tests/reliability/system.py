"""The whole pipeline as real OS processes, each of which a test can kill -9 and restart.

One :class:`System` per test: its own embedded broker (so the broker's offsets and the master dataset in
the test's data dir start together, see the archiver's ``OffsetRegressionError``), and as subprocesses
``python -m lambdalytics.batch.archiver``, ``lambdalytics serve`` (granian main + one worker that holds the
embedded speed store) and ``lambdalytics batch run`` (Python + its Spark JVM). Every child starts in its
own session, so :meth:`System.close` can end each process group it started — even after a test failed
midway — and never touches anything else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lambdalytics.infra.broker import EmbeddedBroker, free_port
from lambdalytics.infra.kafka_io import ensure_topics
from lambdalytics.infra.settings import child_env

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
ADMIN_TOKEN = "reliability-admin-token-0123456789abc"
PARTITIONS = 3
BLOCK_SIZE = 20  # small, so the batch watermark moves with a few hundred events


def say(text: str) -> None:
    """Progress on the terminal (pytest -s shows it)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _group_members(pgid: int, marker: bytes) -> list[int]:
    """Processes in group ``pgid`` whose environment carries ``marker`` (our data dir): a pid number
    reused by someone else's process after ours exited is never signalled."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid and marker in (proc / "environ").read_bytes():
                out.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def rss_kib(pid: int) -> int | None:
    """Resident set size of one process (``VmRSS`` in /proc/<pid>/status), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Fault:
    """One kill -9: what, when (seconds since the test's clock started) and in what state."""

    target: str
    at_s: float
    detail: str


@dataclass
class System:
    data_dir: Path
    api_port: int = field(default_factory=free_port)
    broker: EmbeddedBroker | None = None
    archiver: subprocess.Popen | None = None
    api: subprocess.Popen | None = None
    batch: subprocess.Popen | None = None
    faults: list[Fault] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _batch_started: float = 0.0
    _all: list[subprocess.Popen] = field(default_factory=list)

    # ------------------------------------------------------------------ set-up

    def start_broker(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(log_path=self.data_dir / "logs" / "broker.log").start()
        ensure_topics(self.broker.bootstrap, PARTITIONS)
        return self.broker.bootstrap

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None, "start_broker() first"
        return self.broker.bootstrap

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDALYTICS_")}
        return child_env(
            inherited,
            kafka_bootstrap=self.bootstrap,
            data_dir=self.data_dir,
            api_host="127.0.0.1",
            api_port=self.api_port,
            admin_token=ADMIN_TOKEN,
            token_secret="reliability-" + "s" * 32,
            rate_limit_per_s=1_000_000,
            rate_limit_burst=1_000_000,
            block_size=BLOCK_SIZE,
            batch_poll_seconds=0.5,
            spark_shuffle_partitions=2,
            spark_driver_memory="1g",
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=REPO,
            )
        self._all.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------ archiver

    def start_archiver(self) -> subprocess.Popen:
        self.archiver = self._spawn(
            "archiver",
            [
                str(BIN / "python"),
                "-m",
                "lambdalytics.batch.archiver",
                "--max-batch-records",
                "200",
                "--max-batch-seconds",
                "0.3",
            ],
        )
        return self.archiver

    def kill_archiver(self) -> Fault:
        assert self.archiver is not None
        commits = self.log("archiver").rsplit("archiver resuming", 1)[-1].count(" → v")
        fault = Fault("archiver", self.elapsed(), f"{commits} micro-batches committed since its start")
        self.archiver.send_signal(signal.SIGKILL)
        self.archiver.wait(10)
        self.faults.append(fault)
        return fault

    # ------------------------------------------------------------------ API

    def start_api(self) -> subprocess.Popen:
        self.api = self._spawn("api", [str(BIN / "lambdalytics"), "serve"])
        return self.api

    def api_worker(self, timeout_s: float = 30.0) -> int:
        """The granian worker process: it hosts the app and the embedded speed store."""
        assert self.api is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if kids := _children(self.api.pid):
                return kids[0]
            if self.api.poll() is not None:
                raise RuntimeError(f"API exited with {self.api.returncode}:\n{self.log('api')[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError("the API has no worker process")

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        self._wait(lambda r: r.status_code == 200, "/healthz", timeout_s)

    def wait_ready(self, timeout_s: float = 120.0) -> dict:
        """/readyz: a batch version loaded (or none exists yet) and the speed store caught up."""
        return self._wait(lambda r: r.status_code == 200, "/readyz", timeout_s).json()

    def _wait(self, ok, path: str, timeout_s: float) -> httpx.Response:
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            if self.api is not None and self.api.poll() is not None:
                raise RuntimeError(f"API exited with {self.api.returncode}:\n{self.log('api')[-3000:]}")
            try:
                r = httpx.get(self.url + path, timeout=2)
                if ok(r):
                    return r
                last = r.text
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"{path} not OK after {timeout_s}s: {last}")

    def kill_api(self) -> Fault:
        """kill -9 of the worker that holds the embedded store; granian's main then exits by itself."""
        assert self.api is not None
        worker = self.api_worker()
        try:
            ready = httpx.get(self.url + "/readyz", timeout=1).json()
            state = f"serving batch version {ready['batch_version']}, speed store " + (
                "caught up" if ready["speed_caught_up"] else "still catching up"
            )
        except (httpx.HTTPError, ValueError):
            state = "not answering yet (starting)"
        fault = Fault("api", self.elapsed(), f"worker {worker} {state}")
        os.kill(worker, signal.SIGKILL)
        try:
            self.api.wait(15)
        except subprocess.TimeoutExpired:  # not expected: the main leaves when its worker dies
            fault.detail += "; granian main did not exit, killed too"
            self.api.kill()
            self.api.wait(10)
        self.faults.append(fault)
        return fault

    def admin_tenant(self, tenant: str) -> str:
        r = httpx.post(
            self.url + "/v1/admin/tenants",
            json={"tenant_id": tenant, "name": tenant},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["api_key"]

    # ------------------------------------------------------------------ batch runs

    def start_batch(self) -> subprocess.Popen:
        self.batch = self._spawn("batch", [str(BIN / "lambdalytics"), "batch", "run"])
        self._batch_started = time.monotonic()
        return self.batch

    def run_batch(self, timeout_s: float = 240.0) -> None:
        proc = self.start_batch()
        code = proc.wait(timeout_s)
        assert code == 0, f"batch run failed ({code}):\n{self.log('batch')[-3000:]}"

    def view_commits(self) -> int:
        """Delta commits of all view tables so far: how far a batch run got."""
        views = self.data_dir / "views"
        return sum(1 for _ in views.glob("*/_delta_log/*.json")) if views.exists() else 0

    def kill_batch(self, commits_before: int) -> Fault:
        """kill -9 of the batch run's whole process group (the Python driver and its Spark JVM)."""
        assert self.batch is not None
        written = self.view_commits() - commits_before
        ran = time.monotonic() - self._batch_started
        fault = Fault(
            "batch run", self.elapsed(), f"{ran:.1f} s into the run, {written} view-table commits written"
        )
        self._signal_group(self.batch, signal.SIGKILL)
        self.batch.wait(15)
        self.faults.append(fault)
        return fault

    # ------------------------------------------------------------------ teardown

    def _signal_group(self, proc: subprocess.Popen, sig: int) -> None:
        marker = f"LAMBDALYTICS_DATA_DIR={self.data_dir}\0".encode()
        for pid in _group_members(proc.pid, marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def close(self) -> None:
        """End every process group this system started (SIGTERM, then SIGKILL), then the broker."""
        for proc in reversed(self._all):
            self._signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self._all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(deadline - time.monotonic(), 0.1))
        for proc in self._all:
            # the group may outlive its leader (a granian worker, a Spark JVM)
            self._signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if self.broker is not None:
            self.broker.stop()
