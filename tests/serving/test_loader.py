"""The batch loader: two refreshes racing (poll thread and a finished batch run) never go backwards."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from lambdalytics.serving import loader as loader_module
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.loader import BatchLoader
from lambdalytics.speed.embedded import EmbeddedSpeedStore

pytestmark = pytest.mark.unit


def test_a_slow_load_of_an_older_version_never_replaces_a_newer_one(monkeypatch, tmp_path):
    v1 = SimpleNamespace(batch_version=1, watermark={("events.behavioral", 0): 10})
    v2 = SimpleNamespace(batch_version=2, watermark={("events.behavioral", 0): 20})
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
    v1 = SimpleNamespace(batch_version=1, watermark={("events.behavioral", 0): 10})

    def load(data_dir, manifest):
        index = BatchIndex.empty()
        index.manifest = manifest
        return index

    monkeypatch.setattr(loader_module, "read_manifest", lambda data_dir: v1)
    monkeypatch.setattr(BatchIndex, "load", staticmethod(load))
    heard: list[tuple[dict, int]] = []

    class Listening(EmbeddedSpeedStore):
        def on_batch_published(self, watermark):
            heard.append((watermark, loader.current().version))  # what serving answers from by then
            super().on_batch_published(watermark)

    loader = BatchLoader(tmp_path, Listening(block_size=10))
    assert loader.refresh() and not loader.refresh()  # the same manifest again: nothing new
    assert heard == [(v1.watermark, 1)]


def test_a_load_that_raises_is_restarted_by_the_supervisor_and_the_version_arrives(monkeypatch, tmp_path):
    v1 = SimpleNamespace(batch_version=1, watermark={("events.behavioral", 0): 10})
    manifests = iter([None])  # at start: nothing published yet; then v1, whose first load fails
    loads = []

    def load(data_dir, manifest):
        loads.append(manifest)
        if len(loads) == 1:
            raise OSError("injected: a view file vanished mid-read")
        index = BatchIndex.empty()
        index.manifest = manifest
        return index

    monkeypatch.setattr(loader_module, "read_manifest", lambda data_dir: next(manifests, v1))
    monkeypatch.setattr(BatchIndex, "load", staticmethod(load))
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
