"""Admin batch runs are processes of their own whose record every worker reads: two API instances over
one data dir (as two workers, or one API before and after a restart) answer the same latest run, refuse
a second run while one is alive, and report a run whose process died as failed."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lambdalytics.batch.runs import DIED, ENTRY_POINT, BatchRuns
from lambdalytics.infra.settings import Settings
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The real entry point, started once the test opens the gate (a FIFO): until then the run is alive.
GATE = "import os, sys; open(sys.argv[1]).read(); os.execv(sys.argv[2], sys.argv[2:])"


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        block_size=10,
        spark_driver_memory="1g",
        spark_shuffle_partitions=4,
    )


@pytest.fixture
def workers(tmp_path):
    """Two API instances over one data dir, and a gate the next run waits behind when ``gated``."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    states = [ServingState(_settings(tmp_path / "data"), EmbeddedSpeedStore(block_size=10)) for _ in "ab"]
    clients = [TestClient(create_app(state)) for state in states]

    def gated() -> None:
        for state in states:
            state.runs = BatchRuns(
                state.settings, command=(sys.executable, "-c", GATE, str(gate), *ENTRY_POINT)
            )

    def open_gate() -> None:
        with gate.open("w"):  # blocks until the run process opens its end
            pass

    yield states, clients, gated, open_gate
    for state in states:
        if state.runs.process is not None and state.runs.process.poll() is None:
            state.runs.process.kill()
            state.runs.process.wait()
        state.close()


def _latest(client: TestClient) -> dict:
    r = client.get("/v1/admin/batch-runs/latest", headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


def test_no_run_yet_is_404_everywhere(workers):
    _, clients, _, _ = workers
    for client in clients:
        assert client.get("/v1/admin/batch-runs/latest", headers=ADMIN).status_code == 404


def test_a_second_trigger_from_any_worker_while_one_runs_is_409_and_all_see_one_run(workers):
    states, (a, b), gated, open_gate = workers
    gated()
    started = a.post("/v1/admin/batch-runs", headers=ADMIN)
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    running = _latest(b)
    assert running["run_id"] == run_id and running["state"] == "running" and running["finished_at"] is None
    assert _latest(a) == running
    for client in (b, a):
        refused = client.post("/v1/admin/batch-runs", headers=ADMIN)
        assert refused.status_code == 409 and refused.json() == {"detail": "a batch run is already running"}
    open_gate()
    assert states[0].runs.process.wait(timeout=300) == 0
    done = _latest(b)
    assert done == _latest(a)
    assert done["run_id"] == run_id and done["state"] == "succeeded" and done["error"] is None
    assert done["batch_version"] is None and done["finished_at"] >= done["started_at"]  # nothing archived yet
    # an API started later (a restart) reads the same record
    later = ServingState(states[0].settings, EmbeddedSpeedStore(block_size=10))
    try:
        assert _latest(TestClient(create_app(later))) == done
    finally:
        later.close()


def test_a_run_whose_process_died_is_reported_failed_and_a_new_run_may_start(workers):
    states, (a, b), gated, open_gate = workers
    gated()
    run_id = a.post("/v1/admin/batch-runs", headers=ADMIN).json()["run_id"]
    os.kill(states[0].runs.process.pid, signal.SIGKILL)
    assert states[0].runs.process.wait(timeout=60) == -signal.SIGKILL
    failed = _latest(b)
    assert failed["run_id"] == run_id and failed["state"] == "failed" and failed["error"] == DIED
    assert failed["finished_at"] is not None and _latest(a) == failed
    again = b.post("/v1/admin/batch-runs", headers=ADMIN)
    assert again.status_code == 202 and again.json()["run_id"] != run_id
    open_gate()
    assert states[1].runs.process.wait(timeout=300) == 0
    assert _latest(a)["state"] == "succeeded"


def test_a_run_publishes_a_version_every_worker_loads(workers):
    from tests.batch.test_batch_job import land, landed_rows

    states, (a, b), _, _ = workers
    land(Path(states[0].settings.data_dir), landed_rows(seed=3, n_days=1))
    assert a.post("/v1/admin/batch-runs", headers=ADMIN).status_code == 202
    assert states[0].runs.process.wait(timeout=600) == 0, (
        Path(states[0].settings.data_dir) / "run" / "batch-run.log"
    ).read_text()[-3000:]
    done = _latest(b)
    assert done["state"] == "succeeded" and done["batch_version"] == 1
    for state in states:  # what the loader's poll does: no callback from the run needed
        state.loader.refresh()
        assert state.loader.current().version == 1
