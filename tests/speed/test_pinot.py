"""What only the Pinot speed store has: broker answers, SQL, configs, ``pinot_admin``, a real Pinot.

Its answers are checked against the oracle, as the embedded store's are, in ``test_store_contract.py``,
through the broker double (``pinot_double.py``: the rows Pinot would hold after ingesting a stream with
``infra/pinot/``, the received SQL run on DuckDB). Here: every incomplete broker answer fails closed, the
SQL's shape and snapshot, the configs' drift against the catalog, ``pinot_admin``, and the same contract
reads against a real ``apachepinot/pinot`` container wherever a Docker engine answers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalytics.infra import metric_registry
from lambdalytics.infra.erasures import REMAINS, ErasureList, ErasureLog
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.catalog import CATALOG, GRAIN_KEYS, BaseMetric
from lambdalytics.schemas.events import ROW_COLUMNS, validate_event
from lambdalytics.schemas.topics import EVENT_TOPICS
from lambdalytics.speed.config import DEDUP_WINDOW_MS, TABLE_BY_TOPIC, PinotConfig
from lambdalytics.speed.pinot import PinotSpeedStore
from lambdalytics.speed.pinot_admin import PinotAdminError, apply, check, schema_for, table_config_for
from lambdalytics.speed.store import CoverageError

from .contract import (
    BLOCK,
    EVERYTHING,
    assert_answers,
    erased_customers,
    loaded,
    oracle_of,
    pinot_store,
    reads,
)
from .oracle import SpeedOracle
from .pinot_double import PinotBrokerDouble, money_json, pinot_micros, pinot_schema, schema_columns
from .streams import PARTITIONS, end_offsets, stream, watermark

SNAPSHOTS = Path(__file__).parent / "snapshots"


# ------------------------------------------------------------------------------------------ fail closed


FAULTS = {
    "groups limit reached": {"numGroupsLimitReached": True},
    "partial result": {"partialResult": True},
    "a server did not respond": {"numServersQueried": 2, "numServersResponded": 1},
    "server counts missing": {"numServersQueried": None, "numServersResponded": None},
    "segments unavailable": {"exceptions": [{"errorCode": 305, "message": "1 segments unavailable"}]},
    "broker error": {"status_code": 503, "body": {"code": 503, "error": "no broker"}},
}


@pytest.mark.unit
@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("position", [0, 3, -1])  # a coverage statement, the first data statement, the last
def test_incomplete_broker_answers_raise_coverage_error(fault, position):
    double = PinotBrokerDouble.from_stream(stream(1)[:400], TABLE_BY_TOPIC)
    store = pinot_store(double, parallelism=1)
    statements = 3 + len(store.explain("customer_hours", "demo-food", "food-c00000", {}, *EVERYTHING))
    double.faults = [{} for _ in range(statements)]
    double.faults[position] = dict(FAULTS[fault])
    with pytest.raises(CoverageError):
        store.customer_hours("demo-food", "food-c00000", {}, *EVERYTHING)


@pytest.mark.unit
def test_trimmed_groups_in_the_double_raise_too():
    """The double trims GROUP BY like Pinot's numGroupsLimit; the store must notice, not undercount."""
    double = PinotBrokerDouble.from_stream(stream(1), TABLE_BY_TOPIC, num_groups_limit=5)
    with pytest.raises(CoverageError, match="numGroupsLimitReached"):
        pinot_store(double).tenant_entities("demo-food", "order", {})


@pytest.mark.unit
def test_more_rows_than_max_rows_is_refused_not_truncated():
    double = PinotBrokerDouble.from_stream(stream(1), TABLE_BY_TOPIC)
    with pytest.raises(CoverageError, match="max_rows"):
        pinot_store(double, max_rows=3).tenant_entities("demo-food", "order", {})
    assert all(s["sql"].endswith("LIMIT 4") for s in double.received if "GROUP BY" in s["sql"])


@pytest.mark.unit
def test_double_sums_are_exact_ints_or_refused():
    base = {c: None for c in ROW_COLUMNS}
    paid = {
        **base,
        "tenant_id": "t",
        "customer_id": "c",
        "event_type": "order_paid",
        "event_time": 1_767_225_600_000,
    }
    rows = [
        {**paid, "event_id": "a", "amount_micros": 2**52, "partition": 0, "offset": 0, "broker_time": 1},
        {**paid, "event_id": "b", "amount_micros": 2**52 + 1, "partition": 0, "offset": 1, "broker_time": 1},
    ]
    tables = {table: [] for table in TABLE_BY_TOPIC.values()}
    store = pinot_store(PinotBrokerDouble({**tables, "events_transaction": rows[:1]}))
    revenue = store.customer("t", "c", {})["revenue"]
    assert revenue == 2**52 and type(revenue) is int  # a DOUBLE on the wire, an exact int in the partial
    store = pinot_store(PinotBrokerDouble({**tables, "events_transaction": rows}))
    with pytest.raises(CoverageError, match="exact"):  # 2**53 + 1 cannot survive a DOUBLE
        store.customer("t", "c", {})


# ------------------------------------------------------------------------------------------- SQL shape


@pytest.mark.unit
def test_every_statement_has_an_explicit_limit_aliases_and_quoted_identifiers():
    records = stream(1)
    double = PinotBrokerDouble.from_stream(records, TABLE_BY_TOPIC)
    store = pinot_store(double)
    w = watermark(records, "half", BLOCK)
    store.customer("demo-ads", "ads-c00002", w)
    store.customer_hours("demo-ads", "ads-c00002", w, *EVERYTHING)
    store.customer_entities("demo-food", "food-c00001", "order", w)
    store.campaign_hours("demo-ads", "camp-01", w, *EVERYTHING)
    store.tenant_entities("demo-saas", "ticket", w)
    store.order_months("demo-food", w)
    store.status()
    db = duckdb.connect()
    assert len(double.received) > 20
    for body in double.received:
        sql = body["sql"]
        assert body["queryOptions"] == "timeoutMs=5000"
        node = json.loads(db.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])["statements"][0][
            "node"
        ]
        assert any(m["type"] == "LIMIT_MODIFIER" for m in node["modifiers"]), sql
        assert all(item["alias"] for item in node["select_list"]), sql
        assert node["from_table"]["table_name"] in TABLE_BY_TOPIC.values()
        assert f'FROM "{node["from_table"]["table_name"]}"' in sql
        columns = {c for c in _column_refs(node)}
        assert columns <= set(schema_columns()), columns - set(schema_columns())
        assert all(f'"{c}"' in sql for c in columns), sql  # quoted wherever used
    assert any('"offset" >= ' in b["sql"] for b in double.received)


def _column_refs(node):
    if isinstance(node, dict):
        if node.get("class") == "COLUMN_REF":
            yield node["column_names"][-1]
        for v in node.values():
            yield from _column_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _column_refs(v)


@pytest.mark.unit
def test_customer_sql_snapshot():
    """The statements of one customer read, as the broker receives them (review SQL changes here)."""
    w = {("events.behavioral", 0): 1280, ("events.behavioral", 2): 770, ("events.transaction", 1): 70}
    with PinotSpeedStore(PinotConfig()) as store:
        statements = [*store.explain("customer", "demo-food", "food-c00001", w), *store.explain("coverage")]
    text = "\n".join(statements) + "\n"
    path = SNAPSHOTS / "pinot_customer.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert text == path.read_text(), (
        "generated SQL changed; rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    )


@pytest.mark.unit
def test_a_registered_metric_compiles_into_the_customer_statement(tmp_path):
    """A catalog-file metric is one more column of the customer statement, rendered by PinotSql from its
    entry, with its companion count (the SQL docs/pinot.md shows); the built-in store has no such column."""
    metric_registry.add(tmp_path, Path(__file__).parents[2] / "examples" / "metrics.toml")
    registered = pinot_store(PinotBrokerDouble.from_stream([], TABLE_BY_TOPIC), registered_metrics=tmp_path)
    cond = """"event_type" IN ('order_paid') AND "amount_micros" IS NOT NULL"""
    want = [
        f'MAX("amount_micros") FILTER (WHERE {cond}) AS "largest_order"',
        f'COUNT(*) FILTER (WHERE {cond}) AS "largest_order__matched"',
    ]
    statements = registered.explain("customer", "demo-food", "food-c00001", {})
    transaction = [q for q in statements if '"events_transaction"' in q]
    assert len(transaction) == 1 and all(w in transaction[0] for w in want)
    assert not any("largest_order" in q for q in statements if q is not transaction[0])  # no other table
    built_in = pinot_store(PinotBrokerDouble.from_stream([], TABLE_BY_TOPIC))
    assert not any("largest_order" in q for q in built_in.explain("customer", "demo-food", "food-c00001", {}))


@pytest.mark.unit
def test_user_values_are_quoted_literals_not_sql():
    double = PinotBrokerDouble.from_stream(stream(1)[:200], TABLE_BY_TOPIC)
    store = pinot_store(double)
    evil = "x' OR '1'='1 %(tenant)s %s %("
    assert store.customer("demo-food", evil, {})["events_total"] == 0
    before = len(double.received)
    assert store.customer(evil, "food-c00000", {})["events_total"] == 0
    # the read's own query (a coverage query may come with it when its cached answer has aged out)
    sent = [q["sql"] for q in double.received[before:]]
    assert any("'x'' OR ''1''=''1 %(tenant)s %s %('" in sql for sql in sent), sent


@pytest.mark.unit
def test_the_double_behaves_like_the_single_stage_broker():
    double = PinotBrokerDouble.from_stream(stream(1)[:300], TABLE_BY_TOPIC)
    ok = double.query(
        'SELECT "customer_id" AS "c", COUNT(*) AS "n", SUM("cost_micros") AS "s" FROM "events_behavioral" GROUP BY "customer_id"'
    )
    assert len(ok["resultTable"]["rows"]) == 10  # Pinot's default LIMIT 10
    assert ok["resultTable"]["dataSchema"]["columnDataTypes"] == ["STRING", "LONG", "DOUBLE"]
    for sql in (
        'SELECT COUNT(*) AS "n" FROM "events_behavioral" a JOIN "events_support" b ON a."tenant_id" = b."tenant_id" LIMIT 1',
        'SELECT COUNT(*) AS "n" FROM "events_behavioral" WHERE "customer_id" IN (SELECT "customer_id" FROM "events_support") LIMIT 1',
        'WITH x AS (SELECT 1 AS "one") SELECT "one" FROM x LIMIT 1',
    ):
        answer = double.query(sql)
        assert answer["exceptions"] and answer["exceptions"][0]["errorCode"] == 150, sql
    empty = double.query(
        'SELECT MIN("event_time") AS "m", SUM("amount_micros") AS "s" FROM "events_support" WHERE "tenant_id" = \'none\' LIMIT 1'
    )
    assert empty["resultTable"]["rows"] == [["Infinity", 0.0]]  # no null handling: Pinot's placeholders


# --------------------------------------------------------------------------------- configs vs catalog


_PINOT_TYPE = {"string": "STRING", "int64": "LONG", "int32": "INT"}


@pytest.mark.unit
def test_pinot_schema_covers_the_row_columns_and_every_catalog_reference():
    columns = schema_columns()
    for name, kind in ROW_COLUMNS.items():
        expected = "JSON" if name == "properties" else _PINOT_TYPE[kind]
        assert columns.get(name) == expected, f"{name}: Pinot {columns.get(name)}, rows {kind}"
    referenced = {"tenant_id", "customer_id", "event_type", "event_time"}
    for m in CATALOG.of_kind(BaseMetric):
        referenced |= {*m.filter.non_null, *([m.column] if m.column else []), *GRAIN_KEYS[m.grain]}
    referenced |= {e.id_column for e in CATALOG.entities}
    assert referenced <= set(columns), referenced - set(columns)
    assert {"partition": "INT", "offset": "LONG", "broker_time": "LONG"}.items() <= columns.items()
    schema = pinot_schema()
    assert schema["primaryKeyColumns"] == ["tenant_id", "event_id"]  # the idempotency key of the contract
    assert [s["name"] for s in schema["dateTimeFieldSpecs"]] == ["event_time"]
    assert schema["dateTimeFieldSpecs"][0]["format"] == "1:MILLISECONDS:EPOCH"


@pytest.mark.unit
def test_table_config_wires_offsets_dedup_and_filter():
    config = table_config_for("events_behavioral", "events.behavioral", "kafka:9092")
    assert "${" not in json.dumps(config)
    stream_config = config["ingestionConfig"]["streamIngestionConfig"]["streamConfigMaps"][0]
    assert stream_config["stream.kafka.topic.name"] == "events.behavioral"
    assert stream_config["stream.kafka.broker.list"] == "kafka:9092"
    assert stream_config["stream.kafka.metadata.populate"] == "true"
    assert stream_config["stream.kafka.consumer.factory.class.name"].endswith("kafka30.KafkaConsumerFactory")
    assert stream_config["stream.kafka.consumer.prop.auto.offset.reset"] == "smallest"
    transforms = {
        t["columnName"]: t["transformFunction"] for t in config["ingestionConfig"]["transformConfigs"]
    }
    assert transforms["partition"] == '"__metadata$partition"'
    assert transforms["offset"] == '"__metadata$offset"'
    assert transforms["broker_time"] == '"__metadata$recordTimestamp"'
    assert transforms["amount_micros"] == "roundDecimal(times(amount, 1000000))"
    assert set(transforms) <= set(schema_columns())
    assert config["segmentsConfig"]["timeColumnName"] == "event_time"
    # a segment past retention leaves the deep store at once (no Deleted_Segments copy of erased rows)
    assert config["segmentsConfig"]["deletedSegmentsRetentionPeriod"] == "0d"
    assert config["segmentsConfig"]["retentionTimeUnit"] == "DAYS"  # what every erasure receipt states
    assert f"{config['segmentsConfig']['retentionTimeValue']} days after the newest event time" in REMAINS
    assert config["tableIndexConfig"]["nullHandlingEnabled"] is True  # IS NOT NULL filters need null vectors
    assert config["routing"]["instanceSelectorType"] == "strictReplicaGroup"  # required for dedup
    dedup = config["dedupConfig"]
    assert dedup["dedupEnabled"] and schema_columns()[dedup["dedupTimeColumn"]] == "LONG"
    assert dedup["metadataTTL"] == DEDUP_WINDOW_MS  # the embedded store's default window, in broker time
    flt = config["ingestionConfig"]["filterConfig"]["filterFunction"]
    for column in ("tenant_id", "event_id", "customer_id", "event_time"):
        assert f"{column} IS NULL" in flt
    assert schema_for("events_support")["schemaName"] == "events_support"


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(micros=st.integers(0, 2**51 - 1))
def test_the_money_transform_is_exact_below_2_pow_51_micros(micros):
    """``roundDecimal(times(amount, 1000000))`` in doubles gives the contract's exact micros.

    Parsing the JSON decimal and multiplying each round once (relative error <= 2**-53 each), so the result
    is within micros * 2**-52 of the exact value: below 0.5, i.e. exact after rounding, while micros < 2**51
    (amounts below ~2.25 billion currency units per event).
    """
    assert pinot_micros(money_json(micros)) == micros


@pytest.mark.unit
def test_the_stream_money_survives_the_transform():
    rows = [r[0] for r in stream(1)]
    money = [r[c] for r in rows for c in ("amount_micros", "cost_micros") if r[c] is not None]
    assert money and all(pinot_micros(money_json(m)) == m for m in money)


@pytest.mark.unit
def test_status_reports_positions_and_lag():
    """Events and the upper bound of positions are in the contract suite; lag and the lower bound here."""
    status = loaded("pinot", 1).status()
    end = end_offsets(stream(1))
    # max stored offset + 1: a lower bound of the consumed position (a trailing duplicate is not stored)
    assert all(end[tp] - 20 < status.positions[tp] <= end[tp] for tp in end)
    newest = max(r[4] for r in stream(1))
    assert abs(status.lag_ms - (int(time.time() * 1000) - newest)) < 60_000
    assert status.caught_up is False  # SQL cannot tell; documented


# -------------------------------------------------------------------------------------------- erasure


@pytest.mark.unit
def test_erasures_outlive_a_restart_and_cover_records_that_arrive_later(tmp_path):
    """The Pinot store's exclusion of erased customers is read from the erasure log: a store opened after
    the erasures completed (the log holds keyed hashes only, never the ids) answers every read as if the
    customers never existed — also for records of theirs Pinot ingests after the restart — while Pinot
    itself still holds their rows (it purges nothing; docs/pinot.md, "Erasure")."""
    records = stream(1)
    erased = erased_customers(records)
    later = [  # a re-sent and a new event of each erased customer, ingested after the restart
        (
            dict(row, event_id=f"{row['event_id']}{suffix}", event_time=row["event_time"] + 1),
            topic,
            p,
            10**6 + i,
            ms,
        )
        for i, (row, topic, p, _, ms) in enumerate(
            r for r in records if (r[0]["tenant_id"], r[0]["customer_id"]) in erased
        )
        for suffix in ("", "-new")
    ][:8]
    settings_ = Settings(data_dir=tmp_path)
    log = ErasureLog.open(settings_)
    for tenant, customer in erased:  # recorded first, then the running store told (serving.erasure)
        log.request(tenant, customer, [customer])
    first = pinot_store(
        PinotBrokerDouble.from_stream(records, TABLE_BY_TOPIC),
        parallelism=1,
        erasures=ErasureList(settings_, component="pinot"),
    )
    for tenant, customer in erased:
        first.erase(tenant, [customer])
    first.close()
    for erasure in log.after():
        log.complete(erasure.erasure_id)
    assert all(e.state == "complete" and not e.customer_ids for e in log.after())

    double = PinotBrokerDouble.from_stream([*records, *later], TABLE_BY_TOPIC)
    restarted = pinot_store(double, parallelism=1, erasures=ErasureList(settings_, component="pinot"))
    kept = [r for r in records if (r[0]["tenant_id"], r[0]["customer_id"]) not in erased]
    for cut in ("zero", "half"):
        assert_answers(restarted, SpeedOracle(kept), reads(records, watermark(records, cut, BLOCK)))
    forgetful = pinot_store(double, parallelism=1)  # the same rows, no erasure log: Pinot still holds them
    for tenant, customer in erased:
        assert forgetful.customer(tenant, customer, {})["events_total"] > 0
    log.close()


# ---------------------------------------------------------------------------------------- pinot_admin


class Controller:
    """A MockTransport controller: records requests, answers from a script keyed by (method, path)."""

    def __init__(self, script: dict[tuple[str, str], httpx.Response] | None = None):
        self.script = script or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        if key in self.script:
            return self.script[key]
        if request.method == "GET" and request.url.path == "/health":
            return httpx.Response(200, text="OK")
        if request.method == "POST" and request.url.path == "/schemas":
            name = json.loads(request.content)["schemaName"]
            return httpx.Response(
                200, json={"unrecognizedProperties": {}, "status": f"{name} successfully added"}
            )
        if request.method == "POST" and request.url.path == "/tables":
            name = json.loads(request.content)["tableName"]
            return httpx.Response(
                200,
                json={"unrecognizedProperties": {}, "status": f"Table {name}_REALTIME successfully added"},
            )
        if request.method == "PUT" and request.url.path.startswith("/tables/"):
            return httpx.Response(200, json={"status": f"Table config updated for {request.url.path[8:]}"})
        return httpx.Response(404, json={"code": 404, "error": "HTTP 404 Not Found"})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


@pytest.mark.unit
@pytest.mark.parametrize("created", [200, 201])
def test_apply_creates_schema_then_table_for_every_topic(created):
    added = httpx.Response(created, json={"unrecognizedProperties": {}, "status": "Table successfully added"})
    controller = Controller({("POST", "/tables"): added} if created == 201 else {})
    done = apply("http://controller:9000/", "kafka:9092", client=controller.client())
    assert [(r.method, r.url.path) for r in controller.requests] == [
        ("POST", "/schemas"),
        ("POST", "/tables"),
    ] * 3
    assert all(
        r.url.params.get("override") == "true" for r in controller.requests if r.url.path == "/schemas"
    )
    bodies = [json.loads(r.content) for r in controller.requests]
    assert [b.get("schemaName") or b["tableName"] for b in bodies] == [
        t for t in TABLE_BY_TOPIC.values() for _ in (0, 1)
    ]
    topics = [b["ingestionConfig"]["streamIngestionConfig"]["streamConfigMaps"][0] for b in bodies[1::2]]
    assert [t["stream.kafka.topic.name"] for t in topics] == list(EVENT_TOPICS)
    assert {t["stream.kafka.broker.list"] for t in topics} == {"kafka:9092"}
    assert "${" not in json.dumps(bodies)
    assert len(done) == 6 and "created" in done[1] and "successfully added" in done[1]


@pytest.mark.unit
def test_apply_updates_a_table_that_exists():
    conflict = httpx.Response(
        409, json={"code": 409, "error": "Table events_behavioral_REALTIME already exists"}
    )
    controller = Controller({("POST", "/tables"): conflict})
    done = apply("http://controller:9000", "kafka:9092", client=controller.client())
    puts = [r for r in controller.requests if r.method == "PUT"]
    assert [r.url.path for r in puts] == [f"/tables/{t}" for t in TABLE_BY_TOPIC.values()]
    assert all("updated" in line for line in done[1::2])


@pytest.mark.unit
def test_apply_reports_the_controllers_message():
    bad = httpx.Response(
        400, json={"code": 400, "error": "Invalid table config: Failed to find schema for table"}
    )
    controller = Controller({("POST", "/tables"): bad})
    with pytest.raises(PinotAdminError, match="table events_behavioral.*HTTP 400.*Failed to find schema"):
        apply("http://controller:9000", "kafka:9092", client=controller.client())
    update_refused = httpx.Response(400, json={"code": 400, "error": "Invalid table config: dedup must stay"})
    conflict = httpx.Response(409, json={"code": 409, "error": "exists"})
    controller = Controller(
        {("POST", "/tables"): conflict, ("PUT", "/tables/events_behavioral"): update_refused}
    )
    with pytest.raises(PinotAdminError, match="update failed.*dedup must stay"):
        apply("http://controller:9000", "kafka:9092", client=controller.client())


@pytest.mark.unit
def test_check_says_how_to_fix_a_missing_or_unhealthy_controller():
    assert "OK" in check("http://controller:9000", client=Controller().client())

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(PinotAdminError, match="cannot reach.*docker run"):
        check("http://controller:9000", client=httpx.Client(transport=httpx.MockTransport(refuse)))
    down = Controller({("GET", "/health"): httpx.Response(503, text="not ready")})
    with pytest.raises(PinotAdminError, match="not healthy.*503"):
        check("http://controller:9000", client=down.client())


# ----------------------------------------------------------------------------------- real Pinot (Docker)

PINOT_IMAGE = os.environ.get("LAMBDALYTICS_PINOT_IMAGE", "apachepinot/pinot:1.4.0")


def _docker_unavailable() -> str | None:
    """Checked before any container object exists: testcontainers raises at construction without an engine."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return (
            "no Docker engine (no DOCKER_HOST, no /var/run/docker.sock); the contract reads against a real "
            f"{PINOT_IMAGE} and Kafka runs wherever one answers"
        )
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return (
            f"no Docker engine answers ({exc.__class__.__name__}); the contract reads against a real {PINOT_IMAGE} "
            "and Kafka runs wherever one does"
        )
    return None


def _until(what: str, probe, timeout_s: float):
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - still starting
            last = exc
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last error: {last})")


def _event_bytes(row: dict) -> tuple[bytes, bytes]:
    """The canonical JSON a producer of ours sends for a ``to_row`` dict."""
    obj = {
        k: v
        for k, v in row.items()
        if v is not None and k not in ("amount_micros", "cost_micros", "properties")
    }
    if row["amount_micros"] is not None:
        obj["amount"] = money_json(row["amount_micros"])
    if row["cost_micros"] is not None:
        obj["cost"] = money_json(row["cost_micros"])
    if row["properties"] is not None:
        obj["properties"] = json.loads(row["properties"])
    event = validate_event(obj)
    return event.to_json(), event.key


@pytest.mark.unit
def test_the_records_produced_for_real_pinot_are_the_streams_events():
    """What the Docker test sends decodes back to the very rows the embedded store ingests."""
    from lambdalytics.schemas.events import decode_event, to_row

    for row, topic, _, _, _ in stream(1)[:2000]:
        value, key = _event_bytes(row)
        assert to_row(decode_event(topic, value, key)) == row


@pytest.mark.docker
@pytest.mark.timeout(1200)
def test_parity_against_a_real_pinot_and_kafka():
    if (reason := _docker_unavailable()) is not None:
        pytest.skip(reason)
    from kafka import KafkaProducer
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    from lambdalytics.infra.kafka_io import ensure_topics

    records = stream(1)
    expected = PinotBrokerDouble.from_stream(records, TABLE_BY_TOPIC).row_counts
    with Network() as network:
        kafka = KafkaContainer().with_network(network).with_network_aliases("kafka")
        pinot = (
            DockerContainer(PINOT_IMAGE)
            .with_network(network)
            .with_env("JAVA_OPTS", "-Xms1G -Xmx2G")
            .with_command("QuickStart -type EMPTY")
            .with_exposed_ports(9000, 8000)
        )
        with kafka, pinot:
            bootstrap = kafka.get_bootstrap_server()
            host = pinot.get_container_host_ip()
            controller = f"http://{host}:{pinot.get_exposed_port(9000)}"
            broker = f"http://{host}:{pinot.get_exposed_port(8000)}"
            _until("the Pinot controller", lambda: check(controller), 600)
            ensure_topics(bootstrap, partitions=PARTITIONS, topics=EVENT_TOPICS)
            producer = KafkaProducer(
                bootstrap_servers=bootstrap, acks="all", max_in_flight_requests_per_connection=1
            )
            # broker timestamps shifted to end now (the stream is dated 2026-01): Kafka's time retention
            # would otherwise delete the records; only their spacing matters (the dedup TTL)
            shift = int(time.time() * 1000) - max(r[4] for r in records)
            for row, topic, partition, offset, broker_ms in records:
                value, key = _event_bytes(row)
                sent = producer.send(
                    topic, value=value, key=key, partition=partition, timestamp_ms=broker_ms + shift
                )
                assert sent.get(timeout=30).offset == offset  # the stream's positions are the real ones
            producer.close()
            # Pinot reaches Kafka inside the Docker network; retried while the server registers
            _until("the tables to be created", lambda: apply(controller, "kafka:9092"), 300)
            store = PinotSpeedStore(
                PinotConfig(broker_url=broker, controller_url=controller, query_timeout_ms=20_000)
            )

            def ingested() -> bool:
                counts = {t: store._execute(_count(store, t)) for t in expected}  # noqa: SLF001
                return all(int(rows[0]["n"]) == expected[t] for t, rows in counts.items())

            _until("Pinot to ingest the stream (after dedup)", ingested, 600)
            for cut in ("zero", "half", "mixed"):
                assert_answers(store, oracle_of(1), reads(records, watermark(records, cut, BLOCK)))
            store.close()


def _count(store: PinotSpeedStore, table: str):
    from lambdalytics.speed.pinot import _Query

    return _Query("count", table, f'SELECT COUNT(*) AS "n" FROM "{table}" LIMIT 1', (), 1, False)
