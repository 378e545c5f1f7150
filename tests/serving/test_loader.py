"""The batch loader: two refreshes racing (poll thread and a finished batch run) never go backwards; a
version the speed store cannot merge with (another block size, a partition it never consumed) answers
503 with the reason, never a smaller number."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from lambdalytics.batch.writer import ViewWriter, read_manifest
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving import loader as loader_module
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.loader import BatchLoader
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit


def test_a_slow_load_of_an_older_version_never_replaces_a_newer_one(monkeypatch, tmp_path):
    v1 = SimpleNamespace(batch_version=1, watermark={("events.behavioral", 0): 10}, block_size=10)
    v2 = SimpleNamespace(batch_version=2, watermark={("events.behavioral", 0): 20}, block_size=10)
    manifests = iter([v1, v2, v2])
    v1_loading = threading.Event()

    def load(data_dir, manifest):
        if manifest is v1:  # the first refresh is slow; meanwhile the batch run finishes v2
            v1_loading.set()
            time.sleep(0.5)
        index = BatchIndex.empty()
        index.manifest = manifest
        return index

    monkeypatch.setattr(loader_module, "read_manifest", lambda data_dir: next(manifests))
    monkeypatch.setattr(BatchIndex, "load", staticmethod(load))
    store = EmbeddedSpeedStore(block_size=10)
    store.move_to("events.behavioral", 0, 0)  # consumed from the beginning, nothing there yet
    loader = BatchLoader(tmp_path, store)
    slow = threading.Thread(target=loader.refresh)
    slow.start()
    v1_loading.wait(5)
    loader.refresh()
    slow.join(5)
    assert loader.current().version == 2
    # the speed store dropped below v2's W, and v2 (the served version) can still be answered
    assert store.customer("t", "c", loader.current().watermark)["events_total"] == 0


def test_the_speed_store_hears_of_a_version_once_and_only_after_it_serves_it(monkeypatch, tmp_path):
    v1 = SimpleNamespace(batch_version=1, watermark={("events.behavioral", 0): 10}, block_size=10)

    def load(data_dir, manifest):
        index = BatchIndex.empty()
        index.manifest = manifest
        return index

    monkeypatch.setattr(loader_module, "read_manifest", lambda data_dir: v1)
    monkeypatch.setattr(BatchIndex, "load", staticmethod(load))
    heard: list[tuple[dict, int | None, int]] = []

    class Listening(EmbeddedSpeedStore):
        def on_batch_published(self, watermark, *, block_size=None):
            heard.append((watermark, block_size, loader.current().version))  # served by then
            super().on_batch_published(watermark, block_size=block_size)

    loader = BatchLoader(tmp_path, Listening(block_size=10))
    assert loader.refresh() and not loader.refresh()  # the same manifest again: nothing new
    assert heard == [(v1.watermark, 10, 1)]


def test_a_poll_that_raises_is_restarted_by_the_supervisor_and_the_version_arrives(monkeypatch, tmp_path):
    """Load failures are handled in the poll itself (``last_error``, the loaded version keeps serving);
    anything that still escapes a poll is the supervisor's: logged, counted, the loop restarted."""
    v1 = SimpleNamespace(batch_version=1, watermark={("events.behavioral", 0): 10}, block_size=10)
    manifests = iter([None])  # at start: nothing published yet; then v1

    def load(data_dir, manifest):
        index = BatchIndex.empty()
        index.manifest = manifest
        return index

    monkeypatch.setattr(loader_module, "read_manifest", lambda data_dir: next(manifests, v1))
    monkeypatch.setattr(BatchIndex, "load", staticmethod(load))
    real_refresh, polls = BatchLoader.refresh, []

    def refresh_failing_once(self):
        polls.append(1)
        if len(polls) == 2:  # the first poll of the thread (the first call is start()'s own)
            raise OSError("injected: a view file vanished mid-read")
        return real_refresh(self)

    monkeypatch.setattr(BatchLoader, "refresh", refresh_failing_once)
    loader = BatchLoader(tmp_path, EmbeddedSpeedStore(block_size=10), poll_seconds=0.01).start()
    try:
        deadline = time.monotonic() + 60
        while loader.current().version != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loader.current().version == 1
        status = loader.worker.status()
        assert status.up and status.restarts == 1
        assert status.last_error == "OSError: injected: a view file vanished mid-read"
    finally:
        loader.stop()
    assert loader.worker.status().state == "stopped"


def test_a_version_vacuumed_while_held_or_loading_never_crashes_the_api(monkeypatch, tmp_path):
    """Retention removes a version's files: the loaded (in-memory) one keeps serving, a load that lost
    the race fails into ``last_error`` and the next poll takes the newest version."""
    import pyarrow as pa

    from lambdalytics.batch.compaction import MaintenancePolicy, maintain
    from lambdalytics.batch.writer import ViewWriter, read_manifest

    def publish(i: int):
        view = ViewWriter(tmp_path)
        view.write("v", pa.table({"n": [i]}))
        return view.publish(
            previous=read_manifest(tmp_path),
            watermark={("t", 0): i},
            watermark_time=None,
            master_version=0,
            events=i,
        )

    def load(data_dir, manifest):  # a real Delta read of the version's files, like BatchIndex.load
        index = BatchIndex.empty()
        index.manifest = manifest
        index.rows = manifest.table(data_dir, "v").to_pyarrow_table().to_pylist()
        return index

    monkeypatch.setattr(BatchIndex, "load", staticmethod(load))
    v1 = publish(1)
    loader = BatchLoader(tmp_path, EmbeddedSpeedStore(block_size=1))
    assert loader.refresh() and loader.current().version == 1
    publish(2), publish(3)
    maintain(tmp_path, MaintenancePolicy(keep=2, retention_hours=0))
    with pytest.raises(FileNotFoundError):
        v1.table(tmp_path, "v").to_pyarrow_table()
    assert loader.current().version == 1 and loader.current().rows == [{"n": 1}]  # held: still served

    # a loader that read the manifest of v1 just before retention removed it
    late = BatchLoader(tmp_path, EmbeddedSpeedStore(block_size=1))
    monkeypatch.setattr(loader_module, "read_manifest", lambda data_dir: v1)
    late.start()  # no exception out of start-up: the API comes up
    late.stop()
    assert late.current().version == 0 and "batch version 1 unreadable" in (late.last_error or "")
    monkeypatch.setattr(loader_module, "read_manifest", read_manifest)
    assert late.refresh() and late.current().version == 3 and late.last_error is None
    assert late.current().rows == [{"n": 3}]


TP = ("events.behavioral", 0)


def _serving(tmp_path, monkeypatch, *, batch_block: int, watermark: dict, speed_block: int, events: int):
    """Serving over a real published manifest (no view rows: only the speed side holds events) and an
    embedded store that consumed ``events`` page views of customer ``one`` on TP from offset 0."""
    writer = ViewWriter(tmp_path)
    writer.publish(
        previous=None,
        watermark=watermark,
        block_size=batch_block,
        watermark_time=None,
        master_version=0,
        events=0,
    )
    assert read_manifest(tmp_path).block_size == batch_block  # B is recorded with W

    def load(data_dir, manifest):
        index = BatchIndex.empty()
        index.manifest = manifest
        return index

    monkeypatch.setattr(BatchIndex, "load", staticmethod(load))
    store = EmbeddedSpeedStore(block_size=speed_block)
    for offset in range(events):
        event = validate_event(
            {
                "event_id": f"e{offset}",
                "tenant_id": "t",
                "customer_id": "one",
                "event_type": "page_view",
                "event_time": 1_767_225_600_000 + offset,
            }
        )
        store.ingest(to_row(event), *TP, offset, offset)
    state = ServingState(
        Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET), store
    )
    assert state.loader.refresh()
    key = state.credentials.registry.create("t", "T")
    return state, TestClient(create_app(state)), {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("speed_block", [300, 1000])
def test_a_version_cut_with_another_block_size_answers_503_not_800(tmp_path, monkeypatch, speed_block):
    """Reproduced on main: cut with B=1000 at W=1000, served with B=300, the speed side answered 800 of
    the 1000 events above W (its block 900-1199 lies below W); the same B answers all 1000."""
    state, client, auth = _serving(
        tmp_path, monkeypatch, batch_block=1000, watermark={TP: 1000}, speed_block=speed_block, events=2000
    )
    try:
        answer = client.get("/v1/customers/one/profile", headers=auth)
        if speed_block == 1000:
            assert answer.status_code == 200 and answer.json()["metrics"]["events_total"] == 1000
        else:
            assert answer.status_code == 503
            assert "cut with block size 1000, the speed side keeps blocks of 300" in answer.json()["detail"]
    finally:
        state.close()


def test_a_watermark_naming_a_partition_the_store_never_consumed_answers_503(tmp_path, monkeypatch):
    never = ("events.behavioral", 5)
    state, client, auth = _serving(
        tmp_path, monkeypatch, batch_block=10, watermark={TP: 0, never: 0}, speed_block=10, events=3
    )
    try:
        answer = client.get("/v1/customers/one/profile", headers=auth)
        assert answer.status_code == 503
        assert "('events.behavioral', 5): not consumed by the speed store" in answer.json()["detail"]
    finally:
        state.close()
