"""The archiver's erasure fence on the real broker: every Delta commit records the erasure list it was
checked against, an idle archiver records a new erasure in a zero-row commit, and the purge's second pass
waits for that commit — not for a time — then removes the rows that raced the list."""

from __future__ import annotations

import threading
import time

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.erasure import _await_fence, _delete_master
from lambdalytics.batch.master import (
    ERASURES_SEQ_KEY,
    batch_commit_info,
    master_path,
    read_progress,
    recorded_fence,
)
from lambdalytics.infra.erasures import ErasureList, ErasureLog, archiver_running
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.settings import Settings

pytestmark = pytest.mark.integration
SECRET = "erasure-fence-secret-0123456789-abcdefghij"
T0 = 1_767_225_600_000


def _views(tenant: str, customer: str, n: int, tag: str) -> list[dict]:
    return [
        {
            "event_id": f"{tag}-{i}",
            "tenant_id": tenant,
            "customer_id": customer,
            "event_type": "page_view",
            "event_time": T0 + i,
            "session_id": "s",
        }
        for i in range(n)
    ]


class _RecordsOnTheFirstRow(ErasureList):
    """The real list, plus a hook run once when the archiver checks the victim's first row: the erasure
    is recorded while that batch is open, after the batch read the list, so its rows are checked against
    a list without it — the race the second pass exists for, made deterministic. Its copy is re-read
    only at a batch's start (``fence``), never mid-batch."""

    def __init__(self, settings: Settings, victim: str, hook):
        super().__init__(settings, component="archiver", refresh_s=3600.0)
        self._victim, self._hook = victim, hook

    def skips(self, row) -> bool:
        if self._hook is not None and row["customer_id"] == self._victim:
            hook, self._hook = self._hook, None
            hook()
        return super().skips(row)


def _master_rows(data_dir, tenant: str, customer: str) -> int:
    table = DeltaTable(str(master_path(data_dir))).to_pyarrow_table(columns=["tenant_id", "customer_id"])
    mask = pc.and_(pc.equal(table["tenant_id"], tenant), pc.equal(table["customer_id"], customer))
    return table.filter(mask).num_rows


def test_the_second_pass_waits_for_the_archivers_fence_then_removes_what_raced(
    kafka_bootstrap, unique, tmp_path
):
    ensure_topics(kafka_bootstrap, 3)
    tenant, victim = f"fence-{unique}", "victim"
    settings = Settings(data_dir=tmp_path, erasure_secret=SECRET)
    erasures = ErasureLog.open(settings)
    recorded: list = []

    def record_erasure() -> None:
        recorded.append(erasures.request(tenant, victim, [victim])[0])

    with EventProducer(kafka_bootstrap) as producer:  # in Kafka before the archiver starts
        for e in _views(tenant, victim, 4, f"{tenant}-raced"):
            producer.send_obj(e)
    stop = threading.Event()
    archiver = Archiver(
        kafka_bootstrap,
        tmp_path,
        max_batch_seconds=3.0,  # the victim's four rows, in Kafka before it starts, land in one batch
        erasures=_RecordsOnTheFirstRow(settings, victim, record_erasure),
    )
    thread = threading.Thread(target=archiver.run, kwargs={"stop_event": stop})
    assert not archiver_running(tmp_path)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not recorded and time.monotonic() < deadline:
            time.sleep(0.05)
        (erasure,) = recorded
        assert erasure.seq == 1 and archiver_running(tmp_path)

        # the second pass's wait ends at the archiver's commit that records the erasure
        batch = _await_fence(tmp_path, erasure.seq, wait_s=60, say=lambda _: None)
        assert batch is not None and recorded_fence(master_path(tmp_path)) == erasure.seq
        info = batch_commit_info(master_path(tmp_path), batch)
        assert info[ERASURES_SEQ_KEY] == erasure.seq
        # the raced batch landed the victim's rows (checked against seq 0); the second pass removes them
        raced = _master_rows(tmp_path, tenant, victim)
        assert raced == 4
        assert _delete_master(master_path(tmp_path), erasure)[0] == raced

        # from the fence on, nothing of the victim lands: a re-send is skipped, a bystander lands
        with EventProducer(kafka_bootstrap) as producer:
            for e in [*_views(tenant, victim, 3, f"{tenant}-late"), *_views(tenant, "other", 2, f"{tenant}-o")]:
                producer.send_obj(e)
        deadline = time.monotonic() + 60
        while _master_rows(tmp_path, tenant, "other") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _master_rows(tmp_path, tenant, "other") == 2
        assert _master_rows(tmp_path, tenant, victim) == 0 and archiver.stats.erased_skipped == 3
    finally:
        stop.set()
        thread.join(30)
        erasures.close()

    # no archiver runs: nothing can race, the wait ends at once (None: no archiver batch named)
    assert not archiver_running(tmp_path)
    assert _await_fence(tmp_path, 2, wait_s=0, say=lambda _: None) is None
    assert read_progress(master_path(tmp_path)).batch_seq >= 2
