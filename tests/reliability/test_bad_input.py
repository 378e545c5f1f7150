"""Bad input: malformed events via Kafka and POST /v1/events are dead-lettered or rejected with a reason."""

from __future__ import annotations

import re
import time
from collections import Counter

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from lambdalytics.infra.kafka_io import EventProducer, read_dead_letter
from lambdalytics.schemas.topics import DEADLETTER_TOPIC, record_key

from . import corpus, verify
from .oracle import Truth
from .system import say

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

TENANT, OTHER = "demo-food", "demo-ads"
NEIGHBOUR_TYPE = {corpus.TX: "order_paid", corpus.BEHAVIORAL: "page_view", corpus.SUPPORT: "ticket_opened"}


def neighbour(event_id: str, customer: str, topic: str, now_ms: int, i: int) -> dict:
    """A valid event of ``topic``'s family, for ``customer``: lands in the same partition as the case."""
    e = {
        "event_id": event_id,
        "tenant_id": TENANT,
        "customer_id": customer,
        "event_type": NEIGHBOUR_TYPE[topic],
        "event_time": now_ms - i * 1000,
    }
    if topic == corpus.TX:
        e |= {"order_id": f"{event_id}-order", "amount": round(1 + i * 0.37, 2), "currency": "EUR"}
    if topic == corpus.SUPPORT:
        e["ticket_id"] = f"{event_id}-ticket"
    return e


def dead_letters(bootstrap: str, expect: int, timeout_s: float = 60.0) -> dict[tuple, list]:
    """Dead letters by source position (at-least-once: a position may appear more than once)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024
    )
    parts = consumer.partitions_for_topic(DEADLETTER_TOPIC)
    consumer.assign([TopicPartition(DEADLETTER_TOPIC, p) for p in parts])
    consumer.seek_to_beginning()
    found: dict[tuple, list] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                for record in batch:
                    d = read_dead_letter(record)
                    found.setdefault((d.source_topic, d.source_partition, d.source_offset), []).append(d)
    finally:
        consumer.close()
    return found


def invalid_records_metric(url: str, expect: Counter, timeout_s: float = 60.0) -> Counter:
    """``lambdalytics_invalid_records{reason}``: what the API's speed consumer skipped, read until it
    reaches ``expect`` or the deadline (some bad records sit on other partitions than their neighbours,
    so the neighbours being visible does not prove those were consumed yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(url + "/metrics", timeout=10).text
        found = re.findall(r'^lambdalytics_invalid_records\{reason="([^"]+)"\} ([0-9.e+]+)$', text, re.M)
        counts = Counter({reason: int(float(n)) for reason, n in found})
        if counts == expect or time.monotonic() > deadline:
            return counts
        time.sleep(0.3)


def test_malformed_events_via_kafka_and_http(system, figures, report):
    """Bad input: a corpus of malformed events via Kafka and POST /v1/events."""
    system.start_archiver()
    system.start_api()
    system.wait_healthy()
    keys = {TENANT: system.admin_tenant(TENANT), OTHER: system.admin_tenant(OTHER)}
    worker = system.api_worker()
    now_ms = int(time.time() * 1000) - 60_000
    cases = corpus.cases(TENANT, OTHER, "kafka-neighbour", now_ms)
    kinds = Counter(c.kind for c in cases)

    say(f"bad input: {len(cases)} malformed records to Kafka, each between two valid neighbours")
    valid: list[dict] = []
    bad_sent: list[tuple[corpus.BadInput, object]] = []
    neighbour_positions = []
    with EventProducer(system.bootstrap) as producer:
        for i, case in enumerate(cases):
            before = neighbour(f"kafka-{i}-before", "kafka-neighbour", case.topic, now_ms, 2 * i)
            after = neighbour(f"kafka-{i}-after", "kafka-neighbour", case.topic, now_ms, 2 * i + 1)
            f_before = producer.send_obj(before)
            f_bad = producer.send_raw(
                case.topic, case.value, key=case.key or record_key(TENANT, "kafka-neighbour")
            )
            f_after = producer.send_obj(after)
            producer.flush()
            neighbour_positions += [f_before.get(30), f_after.get(30)]
            bad_sent.append((case, f_bad.get(30)))
            valid += [before, after]
    bad_positions = {(m.topic, m.partition, m.offset): case for case, m in bad_sent}

    say("bad input: the same corpus through POST /v1/events")
    http_rows = []
    rejected_neighbours: list[dict] = []
    with httpx.Client(base_url=system.url, timeout=60) as http:
        auth = {"Authorization": f"Bearer {keys[TENANT]}", "Content-Type": "application/json"}

        def post(body: bytes) -> httpx.Response:
            return http.post("/v1/events", content=body, headers=auth)

        for i, case in enumerate(c for c in cases if c.http_reason):
            ok = neighbour(f"http-{i}", "http-neighbour", corpus.BEHAVIORAL, now_ms, i)
            r = post(orjson.dumps(ok))
            assert r.status_code == 202, r.text
            valid.append(ok)
            alone = post(case.value)
            # the same bad event inside a batch of valid ones: all refused, nothing produced
            a = neighbour(f"rejected-{i}-a", "rejected-neighbour", corpus.TX, now_ms, i)
            b = neighbour(f"rejected-{i}-b", "rejected-neighbour", corpus.BEHAVIORAL, now_ms, i)
            rejected_neighbours += [a, b]
            mixed = post(b"[" + orjson.dumps(a) + b"," + case.value + b"," + orjson.dumps(b) + b"]")
            reasons = _reasons(alone)
            mixed_reasons = _reasons(mixed)
            http_rows.append([case.kind, case.name, alone.status_code, ", ".join(reasons) or alone.text[:80]])
            # (a JSON array body is a batch: each of its items is refused)
            assert alone.status_code == 422 and set(reasons) == {case.http_reason}, (
                case.name,
                alone.text[:500],
            )
            if case.http_reason in ("invalid_json", "invalid_utf8"):  # the whole body is not JSON / UTF-8
                assert mixed.status_code == 422 and mixed_reasons == [case.http_reason], (
                    case.name,
                    mixed.text,
                )
            else:
                assert mixed.status_code == 422, (case.name, mixed.text[:500])
                assert [(e["index"], e["reason"]) for e in mixed.json()["detail"]] == [(1, case.http_reason)]
        # request-level limits
        huge = post(b" " * (11 * 1024 * 1024) + orjson.dumps(ok))  # valid JSON, but a 11 MiB body
        empty = post(b"[]")
        too_many = post(orjson.dumps([ok] * 1001))
        http_rows += [
            ["huge payload", "11 MiB request body", huge.status_code, huge.json().get("detail")],
            ["batch size", "empty array", empty.status_code, ", ".join(_reasons(empty))],
            ["batch size", "1,001 events", too_many.status_code, ", ".join(_reasons(too_many))],
        ]
        assert huge.status_code == 413, huge.text[:300]
        assert (empty.status_code, _reasons(empty)) == (422, ["batch_size"])
        assert (too_many.status_code, _reasons(too_many)) == (422, ["batch_size"])

    say("bad input: checking dead letters, consumers, answers and the master dataset")
    letters = dead_letters(system.bootstrap, expect=len(bad_positions))
    rows = []
    missing, wrong_reason = [], []
    for pos, case in bad_positions.items():
        got = {d.reason for d in letters.get(pos, [])}
        rows.append([case.kind, case.name, case.topic, ", ".join(sorted(got)) or "MISSING"])
        if not got:
            missing.append(case.name)
        elif got != {case.kafka_reason}:
            wrong_reason.append((case.name, got, case.kafka_reason))
    neighbour_letters = {(m.topic, m.partition, m.offset) for m in neighbour_positions} & set(letters)

    truth = Truth(valid)
    verify.wait_until_equal(system.url, truth, {TENANT: keys[TENANT]})
    master = verify.wait_master_holds(system.data_dir, {(e["tenant_id"], e["event_id"]) for e in valid})
    master_ids = {(r["tenant_id"], r["event_id"]) for r in master}
    master_positions = {(r["topic"], r["partition"], r["offset"]) for r in master}
    leaked = [e["event_id"] for e in rejected_neighbours if (TENANT, e["event_id"]) in master_ids]
    rejected_profile = httpx.get(
        system.url + "/v1/customers/rejected-neighbour/profile",
        headers={"Authorization": f"Bearer {keys[TENANT]}"},
        timeout=10,
    )
    expected_skips = Counter(c.kafka_reason for c in bad_positions.values())
    skipped = invalid_records_metric(system.url, expect=expected_skips)
    alive = system.archiver.poll() is None and system.api.poll() is None and system.api_worker() == worker
    tracebacks = system.log("archiver").count("Traceback") + system.log("api").count("Traceback")

    figures.figure("malformed records sent via Kafka", len(bad_positions))
    figures.figure(
        "… dead-lettered with the expected reason", len(bad_positions) - len(missing) - len(wrong_reason)
    )
    figures.figure("malformed requests sent via POST /v1/events", len(http_rows))
    figures.figure(
        "… rejected with a machine-readable reason", sum(1 for r in http_rows if 400 <= r[2] < 500)
    )
    valid_ids = {(e["tenant_id"], e["event_id"]) for e in valid}
    figures.figure(
        "valid neighbours sent / counted by the API (answers equal the truth) / in the master",
        f"{len(valid)} / {len(truth.events)} / {len(valid_ids & master_ids)}",
    )
    figures.figure("events of rejected HTTP batches that leaked", len(leaked))
    figures.figure("records the API's speed consumer skipped", sum(skipped.values()))
    figures.figure("archiver and API still the same live processes", alive)
    figures.figure("tracebacks in their logs", tracebacks)
    figures.table(
        "Kafka corpus (raw bytes, between two valid events)",
        ["kind", "case", "topic", "dead-letter reason"],
        rows,
    )
    figures.table("POST /v1/events corpus", ["kind", "case", "status", "reason"], http_rows)
    report.add("bad inputs tried", len(bad_positions) + len(http_rows))
    report.add(
        "bad inputs dead-lettered or rejected",
        len(bad_positions)
        - len(missing)
        - len(wrong_reason)
        + sum(1 for r in http_rows if 400 <= r[2] < 500),
    )

    assert set(kinds) >= {
        "bad JSON",
        "wrong types",
        "missing fields",
        "huge payload",
        "wrong tenant",
        "invalid UTF-8",
    }
    assert not missing, f"not dead-lettered: {missing}"
    assert not wrong_reason, wrong_reason
    assert not neighbour_letters, "a valid neighbour was dead-lettered"
    assert not (master_positions & set(bad_positions)), "a malformed record reached the master dataset"
    assert master_ids == {(TENANT, e["event_id"]) for e in valid}
    assert not leaked and rejected_profile.status_code == 404, leaked
    report.add("events lost", len(valid_ids - master_ids))
    assert skipped == expected_skips, skipped
    assert alive and tracebacks == 0


def _reasons(r: httpx.Response) -> list[str]:
    try:
        detail = r.json().get("detail")
    except ValueError:
        return []
    return [e.get("reason") for e in detail] if isinstance(detail, list) else []
