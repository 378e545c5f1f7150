"""The batch job, unchanged, on a real Spark standalone cluster: a master and a worker started from the
installed pyspark distribution, a ``lambdalytics batch run`` pointed at them by
``LAMBDALYTICS_SPARK_MASTER``, and every view table equal to a ``local[*]`` run over the same master
dataset. On one box the master dataset's local path is readable by the executors as it is."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyspark
import pytest

from lambdalytics.batch.job import run_batch
from lambdalytics.batch.writer import read_manifest
from lambdalytics.infra.broker import free_port
from lambdalytics.infra.settings import Settings, child_env

from ..reliability.system import _group_members
from . import oracle
from .test_batch_job import BLOCK, land, landed_rows

# JVM start-ups and every stage's executor round trips make a cluster run slow on a loaded 2-core box
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
SPARK_HOME = Path(pyspark.__file__).parent
WAIT_S = 120  # a deadline for states (JVM start-up on a loaded box), not a timing assertion


@dataclass(frozen=True)
class Cluster:
    url: str  # spark://127.0.0.1:P
    master_ui: str
    worker_ui: str
    env: dict[str, str]  # the marked environment every process of this cluster test runs with
    logs: Path

    def state(self, ui: str) -> dict:
        return httpx.get(f"{ui}/json/", timeout=5).json()


def _wait(condition: Callable[[], object], what: str, logs: Path) -> object:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if result := condition():
                return result
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs.glob("*.log"))
    raise TimeoutError(f"{what} within {WAIT_S} s\n{tails}")


@contextlib.contextmanager
def _process_group(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child in its own session; on exit its whole group (a JVM's own children too) is ended."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    marker = f"LAMBDALYTICS_DATA_DIR={env['LAMBDALYTICS_DATA_DIR']}\0".encode()
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _group_members(proc.pid, marker):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            deadline = time.monotonic() + 30
            while _group_members(proc.pid, marker) and time.monotonic() < deadline:
                time.sleep(0.1)
        if left := _group_members(proc.pid, marker):
            raise RuntimeError(f"processes left behind by {argv[:2]}: {left}")


def _spark_class(main: str, *args: str) -> list[str]:
    return [str(SPARK_HOME / "bin" / "spark-class"), main, *args]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A standalone master + one worker (2 cores, 2 GiB for executors) on free loopback ports."""
    root = tmp_path_factory.mktemp("spark-standalone")
    logs = root / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "512m",
        "LAMBDALYTICS_DATA_DIR": str(root),  # marks every process of this cluster for the teardown
    }
    port, master_ui, worker_ui = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    master = _spark_class(
        "org.apache.spark.deploy.master.Master",
        *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(master_ui)),
    )
    worker = _spark_class(
        "org.apache.spark.deploy.worker.Worker",
        url,
        *("--host", "127.0.0.1", "--cores", "2", "--memory", "2g"),
        *("--webui-port", str(worker_ui), "--work-dir", str(root / "work")),
    )
    started = Cluster(url, f"http://127.0.0.1:{master_ui}", f"http://127.0.0.1:{worker_ui}", env, logs)
    with (
        _process_group(master, env, logs / "master.log"),
        _process_group(worker, env, logs / "worker.log"),
    ):
        _wait(
            lambda: [w for w in started.state(started.master_ui)["workers"] if w["state"] == "ALIVE"],
            "the worker registers with the master",
            logs,
        )
        yield started


def _canonical(table: pa.Table) -> list[tuple]:
    """Rows in one order, HLL sketches by their estimate: the bytes depend on how partials merged."""
    sketches = {
        f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
    }
    rows = [
        tuple(oracle.hll_estimate(v) if k in sketches and v is not None else v for k, v in row.items())
        for row in table.to_pylist()
    ]
    return sorted(rows, key=repr)


def test_batch_run_on_a_standalone_cluster_equals_local(cluster, spark, tmp_path):
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"
    land(on_cluster, landed_rows(seed=11, n_days=2))
    shutil.copytree(on_cluster, local)  # the same master dataset, version for version

    env = child_env(
        cluster.env,
        data_dir=on_cluster,
        block_size=BLOCK,
        spark_master=cluster.url,
        spark_driver_memory="1g",
        spark_shuffle_partitions=4,
        spark_conf="spark.executor.memory=1g",
    )
    argv = [sys.executable, "-m", "lambdalytics.cli", "batch", "run"]
    with _process_group(argv, env, cluster.logs / "driver.log") as driver:
        assert driver.wait(600) == 0, (cluster.logs / "driver.log").read_text(errors="replace")[-3000:]

    app = _wait(
        lambda: [
            a for a in cluster.state(cluster.master_ui)["completedapps"] if a["name"] == "lambdalytics-batch"
        ],
        "the batch run is a finished application of the master",
        cluster.logs,
    )[0]
    assert app["state"] == "FINISHED"
    ran = [e for e in cluster.state(cluster.worker_ui)["finishedexecutors"] if e["appid"] == app["id"]]
    assert ran, "the run's tasks must have executed on the worker"

    assert spark.sparkContext.master == "local[*]"
    expected = run_batch(Settings(data_dir=local, block_size=BLOCK), spark=spark, show_progress=False)
    got = read_manifest(on_cluster)
    assert (got.batch_version, got.watermark, got.watermark_time, got.master_version, got.events) == (
        expected.batch_version,
        expected.watermark,
        expected.watermark_time,
        expected.master_version,
        expected.events,
    )
    assert got.events > 0 and set(got.views) == set(expected.views)
    for name in expected.views:
        want = expected.table(local, name).to_pyarrow_table()
        have = got.table(on_cluster, name).to_pyarrow_table()
        assert have.schema == want.schema, name
        assert _canonical(have) == _canonical(want), name
    assert got.table(on_cluster, "customer_profile").to_pyarrow_table().num_rows > 0


def test_a_live_session_on_another_master_is_refused(spark):
    """getOrCreate would hand back the local session: a cluster run must fail instead of going local."""
    from lambdalytics.batch.spark import build_session

    # the fixture's own options, so the shared session's SQL settings stay as they are
    other = Settings(spark_master="local[1]", spark_shuffle_partitions=4, spark_driver_memory="2g")
    with pytest.raises(RuntimeError, match="already running"):
        build_session(other)
    assert spark.sparkContext.master == "local[*]"
