"""History survives a broker restart: two embedded brokers (each a memory-only log starting at offset 0)
over one data folder, through the archiver, Spark, the embedded API as ``lambdalytics serve`` builds it,
compared with ground truth — and, between the restart and the first batch run over the old epoch, reads
fail closed with the reason, never a smaller number."""

from __future__ import annotations

import threading
import time
import uuid

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.job import run_batch
from lambdalytics.batch.master import master_path, read_progress
from lambdalytics.cli import serve
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.broker import EmbeddedBroker
from lambdalytics.infra.epochs import EpochTable
from lambdalytics.infra.kafka_io import ensure_topics
from lambdalytics.infra.settings import Settings

from ..cli.test_serve import _until
from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET
from ..serving.test_e2e import produce, truth

pytestmark = pytest.mark.e2e

B = 5  # the block size: small, so the epoch's base rounds up visibly


def _stream(tenant: str, seed: int, start_ms: int) -> list[dict]:
    config = GeneratorConfig(
        seed=seed,
        rate=6,
        duration_s=60,
        duplicates=0.05,
        late=0.1,
        tenants=("demo-food",),
        customers_per_tenant=12,
        start_ms=start_ms,
    )
    return [{**e, "tenant_id": tenant, "event_id": f"{seed}-{e['event_id']}"} for e in generate(config)]


def _metrics(client: TestClient, headers: dict, customers) -> dict[str, tuple] | int:
    """Per customer (events, orders, revenue in micros), or the first non-200 status code."""
    out = {}
    for customer in customers:
        r = client.get(f"/v1/customers/{customer}/profile", headers=headers)
        if r.status_code != 200:
            return r.status_code
        m = r.json()["metrics"]
        out[customer] = (m["events_total"], m["orders"], round(m["revenue"] * 1_000_000))
    return out


def _expected(events: list[dict]) -> dict[str, tuple]:
    return {c: (t["events_total"], t["orders"], t["revenue_micros"]) for c, t in truth(events).items()}


def test_answers_after_a_broker_restart_include_both_epochs_exactly(tmp_path, monkeypatch, spark):
    for name, value in {
        "DATA_DIR": str(tmp_path),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "TOKEN_SECRET": TOKEN_SECRET,
        "BLOCK_SIZE": str(B),
        "BATCH_POLL_SECONDS": "0.5",
        "RATE_LIMIT_PER_S": "10000",
        "RATE_LIMIT_BURST": "10000",
    }.items():
        monkeypatch.setenv(f"LAMBDALYTICS_{name}", value)
    monkeypatch.setattr(serve, "die_with_parent", lambda: None)  # this is the test process
    tenant = f"restart-{uuid.uuid4().hex[:8]}"
    first = _stream(tenant, 1, 1_767_225_600_000)
    second = _stream(tenant, 2, 1_767_312_000_000)  # the next day, other stories, other ids
    everything = first + second
    customers = sorted(truth(everything))

    # ---- epoch 0: produce, archive, batch; the API answers the truth
    with EmbeddedBroker() as before:
        monkeypatch.setenv("LAMBDALYTICS_KAFKA_BOOTSTRAP", before.bootstrap)
        ensure_topics(before.bootstrap, 3)
        produce(before.bootstrap, first)
        Archiver(before.bootstrap, tmp_path, block_size=B, max_batch_seconds=0.5).run(idle_exit_seconds=2)
        archived_before = read_progress(master_path(tmp_path)).offsets
        assert run_batch(Settings(), spark=spark, show_progress=False).batch_version == 1
        app = serve.create_embedded_app()
        key = app.state.serving.credentials.registry.create(tenant, tenant)
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(app) as client:
            assert _until(lambda: _metrics(client, headers, customers) == _expected(first), 120)

    # ---- epoch 1: a new broker, offsets from 0 again, over the same data folder
    with EmbeddedBroker() as after:
        assert after.cluster_id != before.cluster_id
        monkeypatch.setenv("LAMBDALYTICS_KAFKA_BOOTSTRAP", after.bootstrap)
        ensure_topics(after.bootstrap, 3)
        app = serve.create_embedded_app()
        with TestClient(app) as client:
            # no archiver has entered the new epoch yet: closed, saying why
            waiting = _until(
                lambda: (
                    (r := client.get(f"/v1/customers/{customers[0]}/profile", headers=headers)).status_code
                    == 503
                    and r
                )
            )
            assert "restart epoch" in waiting.json()["detail"], waiting.json()

            archiver = Archiver(after.bootstrap, tmp_path, block_size=B, max_batch_seconds=0.5)
            stop = threading.Event()
            archiving = threading.Thread(target=archiver.run, kwargs={"stop_event": stop})
            archiving.start()
            try:
                assert archiver.entered_epoch.wait(30)
                epoch = EpochTable(tmp_path).for_cluster(after.cluster_id)
                assert epoch.number == 1
                for tp, offset in archived_before.items():  # the base: everything archived, rounded up to B
                    assert offset <= epoch.base.get(tp, 0) < offset + B and epoch.base.get(tp, 0) % B == 0
                produce(after.bootstrap, second)

                # until a batch run covers epoch 0, every read fails closed with the reason — never less
                closed = []
                for _ in range(10):
                    r = client.get(f"/v1/customers/{customers[0]}/profile", headers=headers)
                    assert r.status_code == 503, r.json()
                    closed.append(r.json()["detail"])
                    time.sleep(0.1)
                assert all("broker restarted" in d or "restart epoch" in d for d in closed), closed
                assert "broker restarted" in closed[-1], closed[-1]
                ready = client.get("/readyz")
                assert ready.status_code == 503 and "broker restarted" in ready.json()["error"]

                assert _until(lambda: archiver.stats.rows >= len(second))
                manifest = run_batch(Settings(), spark=spark, show_progress=False)
                assert manifest.batch_version == 2
                assert all(manifest.watermark.get(tp, 0) >= base for tp, base in epoch.base.items())
                # both epochs, exactly; the key minted before the restart still reads
                assert _until(lambda: _metrics(client, headers, customers) == _expected(everything), 120), (
                    _metrics(client, headers, customers),
                    _expected(everything),
                )
                assert _until(lambda: client.get("/readyz").status_code == 200)
            finally:
                stop.set()
                archiving.join(30)

    # the master holds both epochs once each, on one logical offset line
    master = DeltaTable(str(master_path(tmp_path))).to_pyarrow_table()
    mine = master.filter(pc.equal(master["tenant_id"], tenant))
    assert mine.num_rows == len(everything)  # every record that reached a broker (duplicates included)
    positions = list(
        zip(
            master["topic"].to_pylist(),
            master["partition"].to_pylist(),
            master["offset"].to_pylist(),
            strict=True,
        )
    )
    assert len(set(positions)) == len(positions)
    second_ids = {e["event_id"] for e in second}
    for row in mine.select(["topic", "partition", "offset", "event_id"]).to_pylist():
        if row["event_id"] in second_ids:
            assert row["offset"] >= epoch.base.get((row["topic"], row["partition"]), 0)
