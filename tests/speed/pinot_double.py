"""A contract double of the Pinot broker's ``POST /query/sql``, for socket-free tests of the Pinot store.

It holds the rows Pinot would hold after ingesting an event stream with ``infra/pinot/`` (schema columns
from ``events.schema.json``; first copy of ``(tenant_id, event_id)`` per partition within the dedup TTL;
the ingestion filter; money through the same ``roundDecimal(times(amount, 1000000))`` transform, in
IEEE doubles as the JVM computes it) and runs the received SQL on DuckDB. Only what differs is translated:

- Pinot's ``DATETRUNC(unit, col, 'MILLISECONDS')`` becomes a DuckDB macro with Pinot's meaning;
- a statement without LIMIT gets ``LIMIT 10``, Pinot's default (also for GROUP BY);
- JOINs, subqueries, CTEs and set operations are refused as the single-stage engine refuses them
  (unless ``useMultistageEngine=true``);
- answers use Pinot's response fields and types: COUNT is LONG, SUM/MIN/MAX are DOUBLE (a JSON float),
  and an aggregate over no row is 0.0 / "Infinity" / "-Infinity" unless ``enableNullHandling=true``;
- GROUP BY keeps at most ``num_groups_limit`` groups and then sets ``numGroupsLimitReached`` (Pinot's
  numGroupsLimit, 100,000 per segment by default).

Errors come back as Pinot sends them: HTTP 200 with an ``exceptions`` list.
"""

from __future__ import annotations

import copy
import json
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib.resources import files
from typing import Any

import duckdb
import httpx
import pyarrow as pa

from lambdalytics.schemas.events import MICROS

PINOT_TO_DUCKDB = {
    "STRING": "VARCHAR",
    "JSON": "VARCHAR",
    "LONG": "BIGINT",
    "INT": "INTEGER",
    "DOUBLE": "DOUBLE",
}
PINOT_TO_ARROW = {"STRING": pa.string(), "JSON": pa.string(), "LONG": pa.int64(), "INT": pa.int32()}
DUCKDB_TO_PINOT = {
    "VARCHAR": "STRING",
    "BIGINT": "LONG",
    "INTEGER": "INT",
    "DOUBLE": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "HUGEINT": "LONG",
}
# Pinot's default null placeholders when null handling is off (query option enableNullHandling absent)
NULL_PLACEHOLDER = {"STRING": "null", "LONG": -(2**63), "INT": -(2**31), "DOUBLE": "-Infinity"}
EMPTY_AGGREGATE = {"sum": 0.0, "min": "Infinity", "max": "-Infinity"}
MIN_TIME_MS, MAX_TIME_MS = 31_536_000_000, 3_187_296_000_000  # the ingestion filter's valid range
HOUR_MS = 3_600_000

_MACROS = """
CREATE MACRO pinot_datetrunc(unit, t, input_unit) AS
  CASE
    WHEN upper(input_unit) <> 'MILLISECONDS' THEN error('double: DATETRUNC input unit must be MILLISECONDS')
    WHEN upper(unit) = 'HOUR' THEN t - ((t % 3600000) + 3600000) % 3600000
    WHEN upper(unit) = 'DAY' THEN t - ((t % 86400000) + 86400000) % 86400000
    WHEN upper(unit) = 'MONTH' THEN epoch_ms(date_trunc('month', make_timestamp(t * 1000)))
    ELSE error('double: unsupported DATETRUNC unit ' || unit)
  END
"""
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def pinot_schema() -> dict[str, Any]:
    return json.loads((files("lambdalytics.infra") / "pinot" / "events.schema.json").read_text())


def schema_columns() -> dict[str, str]:
    """Column -> Pinot data type, from ``infra/pinot/events.schema.json``."""
    schema = pinot_schema()
    return {
        spec["name"]: spec["dataType"]
        for group in ("dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs")
        for spec in schema.get(group, ())
    }


def money_json(micros: int) -> int | float:
    """The JSON number our producers send for an amount of ``micros`` (``events._money_json``)."""
    amount = Decimal(micros) / MICROS
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def java_round(x: float) -> int:
    """``Math.round(double)``: floor(x + 0.5), computed exactly."""
    floor = math.floor(x)
    return floor + (1 if x - floor >= 0.5 else 0)


def pinot_micros(amount: int | float | None) -> int | None:
    """What ``roundDecimal(times(amount, 1000000))`` stores for a JSON ``amount`` (doubles, like the JVM)."""
    return None if amount is None else java_round(float(amount) * 1_000_000.0)


class UnsupportedQuery(Exception):
    pass


class PinotBrokerDouble:
    """``POST /query/sql`` over DuckDB tables named like the Pinot tables."""

    def __init__(
        self,
        tables: Mapping[str, Iterable[dict[str, Any]]],
        *,
        num_groups_limit: int = 100_000,
    ):
        self.columns = schema_columns()
        self.num_groups_limit = num_groups_limit
        self.received: list[dict[str, Any]] = []  # every request body, in arrival order
        self.faults: list[dict[str, Any]] = []  # per coming request: fields to override (None: remove)
        self._lock = threading.Lock()
        self._db = duckdb.connect()
        self._db.execute("SET threads = 1")  # tiny tables: one thread answers fastest
        self._db.execute(_MACROS)
        self._parsed: dict[str, dict[str, Any]] = {}
        self._answers: dict[tuple[str, str], dict[str, Any]] = {}
        arrow_schema = pa.schema([(name, PINOT_TO_ARROW[t]) for name, t in self.columns.items()])
        self.row_counts: dict[str, int] = {}
        for table, rows in tables.items():
            data = pa.Table.from_pylist(
                [{c: row.get(c) for c in self.columns} for row in rows], schema=arrow_schema
            )
            self._db.register("incoming", data)
            columns = ", ".join(
                f'CAST("{c}" AS {PINOT_TO_DUCKDB[t]}) AS "{c}"' for c, t in self.columns.items()
            )
            self._db.execute(f'CREATE TABLE "{table}" AS SELECT {columns} FROM incoming')
            self._db.unregister("incoming")
            self.row_counts[table] = data.num_rows

    @classmethod
    def from_stream(
        cls,
        records: Iterable[tuple[dict, str, int, int, int]],
        table_by_topic: Mapping[str, str],
        *,
        dedup_ttl_ms: int = 24 * HOUR_MS,
        start_offsets: Mapping[tuple[str, int], int] | None = None,
        **kwargs: Any,
    ) -> PinotBrokerDouble:
        """Rows as Pinot ingests ``(row, topic, partition, offset, broker_ms)`` records (``to_row`` dicts).

        ``start_offsets``: consumption of a partition began there (earlier records never reached Pinot).
        Dedup is per table and partition, as Pinot's dedup metadata is: a key is forgotten once its first
        copy's ``broker_time`` is older than the largest seen minus the TTL (``dedupTimeColumn``).
        """
        start_offsets = start_offsets or {}
        seen: dict[tuple[str, int], dict[tuple[str, str], int]] = {}
        largest: dict[tuple[str, int], int] = {}
        tables: dict[str, list[dict[str, Any]]] = {table: [] for table in table_by_topic.values()}
        for row, topic, partition, offset, broker_ms in records:
            tp = (topic, partition)
            if offset < start_offsets.get(tp, 0):
                continue
            ingested = {
                **row,
                "amount_micros": pinot_micros(
                    None if row["amount_micros"] is None else money_json(row["amount_micros"])
                ),
                "cost_micros": pinot_micros(
                    None if row["cost_micros"] is None else money_json(row["cost_micros"])
                ),
                "partition": partition,
                "offset": offset,
                "broker_time": broker_ms,
            }
            if any(
                ingested[c] is None
                for c in ("tenant_id", "event_id", "customer_id", "event_type", "event_time")
            ):
                continue  # filterConfig
            if not MIN_TIME_MS <= ingested["event_time"] <= MAX_TIME_MS:
                continue
            largest[tp] = max(largest.get(tp, broker_ms), broker_ms)
            keys = seen.setdefault(tp, {})
            key = (row["tenant_id"], row["event_id"])
            first = keys.get(key)
            if first is not None and not first < largest[tp] - dedup_ttl_ms:
                continue  # a duplicate within the TTL: dropped at ingestion
            keys[key] = broker_ms
            tables[table_by_topic[topic]].append(ingested)
        return cls(tables, **kwargs)

    # ------------------------------------------------------------------ HTTP

    def client(self, base_url: str = "http://pinot-broker:8099") -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle), base_url=base_url)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/query/sql"):
            return httpx.Response(
                404, json={"code": 404, "error": f"no route {request.method} {request.url.path}"}
            )
        body = json.loads(request.content)
        with self._lock:
            self.received.append(body)
            fault = self.faults.pop(0) if self.faults else {}
            key = (body["sql"], body.get("queryOptions", ""))
            if key not in self._answers:  # the tables never change: the same statement, the same answer
                self._answers[key] = self.query(*key)
            answer = copy.deepcopy(self._answers[key])
        if "status_code" in fault:
            return httpx.Response(fault["status_code"], json=fault.get("body", {}))
        for field, value in fault.items():  # None removes the field, as an older or broken broker might
            if value is None:
                answer.pop(field, None)
            else:
                answer[field] = value
        return httpx.Response(200, json=answer)

    # ------------------------------------------------------------------ SQL

    def query(self, sql: str, query_options: str = "") -> dict[str, Any]:
        started = time.perf_counter()
        options = dict(o.split("=", 1) for o in query_options.split(";") if "=" in o)
        null_handling = options.get("enableNullHandling", "false").lower() == "true"
        try:
            statement = self._parse(sql)
            if options.get("useMultistageEngine", "false").lower() != "true":
                _check_single_stage(statement)
            translated = _outside_literals(
                sql, lambda s: re.sub(r"\bDATETRUNC\s*\(", "pinot_datetrunc(", s, flags=re.I)
            )
            if not any(m["type"] == "LIMIT_MODIFIER" for m in statement["modifiers"]):
                translated += " LIMIT 10"
            cursor = self._db.execute(translated)
            rows = cursor.fetchall()
            description = cursor.description
        except (duckdb.Error, UnsupportedQuery) as exc:
            code = 150 if isinstance(exc, UnsupportedQuery | duckdb.ParserException) else 200
            return self._response([], [], [], started, exceptions=[{"errorCode": code, "message": str(exc)}])
        names = [d[0] for d in description]
        kinds = [_aggregate_kind(item) for item in statement["select_list"]]
        types = [
            {"count": "LONG", "count_star": "LONG", "sum": "DOUBLE", "min": "DOUBLE", "max": "DOUBLE"}.get(
                kind or "", DUCKDB_TO_PINOT.get(str(d[1]), "STRING")
            )
            for kind, d in zip(kinds, description, strict=True)
        ]
        groups_limited = False
        if statement.get("group_expressions") and len(rows) > self.num_groups_limit:
            rows, groups_limited = rows[: self.num_groups_limit], True
        out = [
            [_pinot_value(v, t, k, null_handling) for v, t, k in zip(row, types, kinds, strict=True)]
            for row in rows
        ]
        return self._response(
            names, types, out, started, groups_limited=groups_limited, table=_table(statement)
        )

    def _parse(self, sql: str) -> dict[str, Any]:
        if (cached := self._parsed.get(sql)) is not None:
            return cached
        raw = self._db.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
        parsed = json.loads(raw)
        if parsed.get("error"):
            raise UnsupportedQuery(f"SQLParsingError: {parsed.get('error_message', 'cannot parse')}")
        if len(parsed["statements"]) != 1:
            raise UnsupportedQuery("SQLParsingError: exactly one statement per request")
        statement = parsed["statements"][0]["node"]
        statement["has_subquery"] = '"SUBQUERY"' in raw
        self._parsed[sql] = statement
        return statement

    def _response(self, names, types, rows, started, *, exceptions=(), groups_limited=False, table=None):
        return {
            "resultTable": {"dataSchema": {"columnNames": names, "columnDataTypes": types}, "rows": rows},
            "numRowsResultSet": len(rows),
            "partialResult": bool(exceptions) or groups_limited,
            "exceptions": list(exceptions),
            "numGroupsLimitReached": groups_limited,
            "timeUsedMs": int((time.perf_counter() - started) * 1000),
            "numServersQueried": 1,
            "numServersResponded": 1,
            "numSegmentsQueried": 1,
            "numSegmentsProcessed": 1,
            "numSegmentsMatched": 1 if rows else 0,
            "numConsumingSegmentsQueried": 1,
            "numDocsScanned": 0,
            "totalDocs": self.row_counts.get(table or "", 0),
            "minConsumingFreshnessTimeMs": 0,
        }


def _outside_literals(sql: str, change) -> str:
    out, last = [], 0
    for m in _STRING_LITERAL.finditer(sql):
        out += [change(sql[last : m.start()]), m.group(0)]
        last = m.end()
    return "".join([*out, change(sql[last:])])


def _check_single_stage(statement: dict[str, Any]) -> None:
    if statement["type"] != "SELECT_NODE":
        raise UnsupportedQuery(f"SQLParsingError: {statement['type']} needs the multi-stage engine")
    if statement.get("cte_map", {}).get("map"):
        raise UnsupportedQuery("SQLParsingError: WITH (CTE) needs the multi-stage engine")
    if statement["from_table"]["type"] != "BASE_TABLE":
        raise UnsupportedQuery(
            f"SQLParsingError: FROM {statement['from_table']['type']} needs the multi-stage engine"
        )
    if statement["has_subquery"]:
        raise UnsupportedQuery("SQLParsingError: subqueries need the multi-stage engine")


def _table(statement: dict[str, Any]) -> str | None:
    return statement.get("from_table", {}).get("table_name")


def _aggregate_kind(item: dict[str, Any]) -> str | None:
    if item.get("class") == "FUNCTION" and item.get("function_name") in (
        "count",
        "count_star",
        "sum",
        "min",
        "max",
    ):
        return item["function_name"]
    return None


def _pinot_value(value: Any, pinot_type: str, kind: str | None, null_handling: bool) -> Any:
    if value is None:
        if null_handling:
            return None
        if kind in EMPTY_AGGREGATE:
            return EMPTY_AGGREGATE[kind]
        return NULL_PLACEHOLDER.get(pinot_type)
    if pinot_type == "DOUBLE":
        return float(value)
    if pinot_type in ("LONG", "INT"):
        return int(value)
    return value
