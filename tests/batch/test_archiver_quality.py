"""The archiver classifies each record into the quality ledger once, on the real broker: dead letters per
reason and tenant (the unparsable ones under the unknown tenant), copies, late records, orders and their
attribution, events on identified customers — and a replay of everything (master lost, ledger kept) adds
nothing."""

from __future__ import annotations

import shutil
import time

import orjson
import pytest

from lambdalytics.batch.archiver import run_archiver
from lambdalytics.batch.master import master_path
from lambdalytics.batch.quality import tenant_of_invalid
from lambdalytics.infra.event_index import event_index_path
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.quality_ledger import UNKNOWN_TENANT, QualityLedger, ledger_path
from lambdalytics.schemas.catalog import HOUR_MS

pytestmark = pytest.mark.integration


def _feed(tenant: str, now: int) -> list[dict]:
    base = {"tenant_id": tenant, "customer_id": "c1"}
    views = [
        {**base, "event_id": f"v{i}", "event_type": "page_view", "event_time": now - 1000} for i in range(6)
    ]
    late = {**base, "event_id": "late", "event_type": "page_view", "event_time": now - 2 * HOUR_MS}
    orders = [
        {**base, "event_id": "o1", "event_type": "order_placed", "event_time": now, "order_id": "o1"},
        {**base, "event_id": "o2", "event_type": "order_placed", "event_time": now, "order_id": "o2"},
        {
            **base,
            "event_id": "o3",
            "event_type": "order_placed",
            "event_time": now,
            "order_id": "o3",
            "campaign_id": "spring",
        },
    ]
    copies = [views[0], orders[2]]  # re-sent: counted as duplicates, the attributed order once
    c2 = {**base, "customer_id": "c2"}  # identified by an identify, c3 by an alias it survives
    identified = [
        {**c2, "event_id": "i1", "event_type": "identify", "event_time": now, "traits": {"plan": "pro"}},
        {**c2, "event_id": "i2", "event_type": "page_view", "event_time": now},
        {
            **c2,
            "customer_id": "c3",
            "event_id": "a1",
            "event_type": "alias",
            "event_time": now,
            "previous_id": "c4",
        },
    ]
    return [*views, late, *orders, *copies, *identified]


def test_each_record_is_classified_once_and_a_replay_adds_nothing(kafka_bootstrap, unique, tmp_path):
    ensure_topics(kafka_bootstrap, 3)
    tenant, now = f"q-{unique}", int(time.time() * 1000)
    with EventProducer(kafka_bootstrap) as producer:
        for obj in _feed(tenant, now):
            producer.send_obj(obj)
        producer.send_raw("events.behavioral", b'{"event_id": "x"', key=f"{tenant}:c1".encode())
        producer.send_raw("events.support", b"\xff not utf-8", key=f"{tenant}:c1".encode())
        producer.send_raw("events.support", b"[1, 2", key=None)  # no tenant anywhere
    run_archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5, idle_exit_seconds=3.0)

    def counts() -> tuple[dict, dict, dict]:
        with QualityLedger.open(ledger_path(tmp_path), create=False) as ledger:
            window = ledger.window(tenant, now - HOUR_MS, now + HOUR_MS)
            return (
                window,
                ledger.last_events(tenant),
                ledger.window(UNKNOWN_TENANT, now - HOUR_MS, now + HOUR_MS),
            )

    window, last, unknown = counts()
    assert window == {
        "records": 15,
        "events": 13,
        "identified_events": 3,  # c2's identify and page view, c3's alias; nothing of c1 (never identified)
        "duplicates": 2,
        "late": 1,
        "orders": 3,
        "attributed_orders": 1,
        "dead_letters:invalid_json": 1,
        "dead_letters:invalid_utf8": 1,
    }
    assert set(last) == {"events.behavioral", "events.transaction"}  # support only had invalid records
    assert all(now - 5_000 <= ms <= now + 60_000 for ms in last.values())
    assert unknown.get("dead_letters:invalid_json", 0) >= 1  # other tests' garbage shares this bucket

    # the Delta commit lost after the ledger counted: the archiver re-reads every record, counts none
    shutil.rmtree(master_path(tmp_path))
    shutil.rmtree(event_index_path(tmp_path))
    run_archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5, idle_exit_seconds=3.0)
    assert counts() == (window, last, unknown)


def test_the_tenant_of_an_invalid_record_is_read_only_when_well_formed():
    assert tenant_of_invalid(orjson.dumps({"tenant_id": "acme", "x": 1}), None) == "acme"
    assert tenant_of_invalid(b'{"tenant_id": "acme"', b"beta:c1") == "beta"  # truncated JSON: the key
    assert tenant_of_invalid(orjson.dumps({"tenant_id": "no spaces allowed"}), None) is None
    assert tenant_of_invalid(orjson.dumps([1, 2]), b"\xff\xfe:c") is None
    assert tenant_of_invalid(None, None) is None
