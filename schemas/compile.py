"""Catalog → SQL aggregate expressions, one renderer per engine.

The base SQL here is standard; each dialect overrides only what differs (metricflow's renderer
pattern), and names its :class:`~lambdalytics.schemas.catalog.Engine` — what it cannot compute, as
data — so that compiling an unsupported metric fails with :class:`UnsupportedAggregate` (the catalog
rule ``engine-support`` refuses such a metric before any compile). Spark (batch) and, with the speed
layer, Pinot render from the same :class:`~lambdalytics.schemas.catalog.BaseMetric` and
:class:`~lambdalytics.schemas.catalog.Entity` entries, so a filter or aggregate changes in one place.
"""

from __future__ import annotations

from typing import ClassVar

from .catalog import Aggregate, BaseMetric, Entity, EventFilter
from .catalog.engines import PINOT, SPARK, Engine

__all__ = [
    "HLL_LG_K",
    "SparkSql",
    "SqlDialect",
    "UnsupportedAggregate",
    "python_predicate",
    "python_required",
]

HLL_LG_K = 12
"""DataSketches HLL lg_k used by every layer (sketches only union when built compatibly)."""


class UnsupportedAggregate(NotImplementedError):
    """This engine cannot compute this metric (metricflow's ``UnsupportedEngineFeatureError``)."""

    def __init__(self, metric: str, reason: str):
        super().__init__(f"{metric}: {reason}")


def _quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class SqlDialect:
    engine: ClassVar[Engine] = Engine(name="sql", unsupported=frozenset({Aggregate.hll_distinct}))
    """Standard SQL has no DataSketches HLL; a dialect that has one names its own engine."""

    def ident(self, column: str) -> str:
        return column

    def predicate(self, f: EventFilter) -> str:
        parts = []
        if f.event_types != "*":
            types = ", ".join(_quote_str(t) for t in f.event_types)
            parts.append(f"{self.ident('event_type')} IN ({types})")
        parts += [f"{self.ident(c)} IS NOT NULL" for c in f.non_null]
        return " AND ".join(parts) or "TRUE"

    def count_if(self, cond: str) -> str:
        return f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"

    def hll(self, expr: str) -> str:
        raise NotImplementedError

    def refuse(self, metric: BaseMetric) -> None:
        """Raise :class:`UnsupportedAggregate` when this engine cannot compute the metric."""
        if reason := self.engine.refusal(metric):
            raise UnsupportedAggregate(metric.name, reason)

    def aggregate(self, metric: BaseMetric) -> str:
        """The SQL aggregate expression of one base metric (without alias)."""
        self.refuse(metric)
        cond = self.predicate(metric.filter)
        match metric.aggregate:
            case Aggregate.count:
                return self.count_if(cond)
            case Aggregate.sum | Aggregate.min | Aggregate.max:
                return self.filtered_aggregate(
                    metric.aggregate.value.upper(), self.ident(metric.column), cond
                )
            case Aggregate.hll_distinct:
                return self.hll(f"CASE WHEN {cond} THEN {self.ident(metric.column)} END")
        raise UnsupportedAggregate(metric.name, f"{self.engine.name} has no rendering of {metric.aggregate}")

    def filtered_aggregate(self, function: str, column: str, cond: str) -> str:
        """``function`` over ``column`` for the rows passing ``cond`` (the one place dialects differ)."""
        return f"{function}(CASE WHEN {cond} THEN {column} END)"

    def merge_aggregate(self, metric: BaseMetric, column: str) -> str:
        """The SQL aggregate that merges view values of one base metric (``schemas.aggregates.merge``).

        Applied to the rows of one key from several versions (the previous view and the new events'
        view): counts and sums add, min/max keep the extreme, sketches union. SQL aggregates skip
        NULL, which is the identity here as in ``aggregates.merge`` (a SUM that saw no matching event).
        """
        self.refuse(metric)
        column = self.ident(column)
        match metric.aggregate:
            case Aggregate.count | Aggregate.sum:
                return f"SUM({column})"
            case Aggregate.min | Aggregate.max:
                return f"{metric.aggregate.value.upper()}({column})"
            case Aggregate.hll_distinct:
                return self.hll_union_agg(column)
        raise UnsupportedAggregate(metric.name, f"{self.engine.name} has no merge of {metric.aggregate}")

    def merge_milestone(self, column: str) -> str:
        """First times of one milestone merge as their minimum (``aggregates.merge_milestones``)."""
        return f"MIN({self.ident(column)})"

    def hll_union_agg(self, column: str) -> str:
        raise NotImplementedError

    def milestone(self, entity: Entity, name: str) -> str:
        """First time (min event_time) the entity reached one milestone."""
        ms = entity.milestone(name)
        return f"MIN(CASE WHEN {self.ident('event_type')} = {_quote_str(ms.event_type)} THEN {self.ident('event_time')} END)"

    def entity_filter(self, entity: Entity) -> str:
        types = ", ".join(_quote_str(m.event_type) for m in entity.milestones)
        return f"{self.ident(entity.id_column)} IS NOT NULL AND {self.ident('event_type')} IN ({types})"


class SparkSql(SqlDialect):
    """Spark SQL 4.x: ``count_if``; ``hll_sketch_agg`` writes Apache DataSketches HLL binaries."""

    engine = SPARK

    def latest(self, time: str = "event_time", offset: str = "offset", value: str = "value") -> str:
        """The latest-by-(event_time, offset) aggregate (``aggregates.latest``) as one struct: Spark
        orders structs field by field, so the MAX is the row with the greatest (time, offset). The same
        expression merges view rows, so a fold of two versions is this aggregate again."""
        return f"MAX(STRUCT(`{time}` AS event_time, `{offset}` AS offset, `{value}` AS value))"

    def trait_entries(self, column: str = "traits") -> str:
        """An identify's traits JSON as (trait, value text) rows: ``schemas.traits.value_text`` per value."""
        return f"EXPLODE(FROM_JSON(`{column}`, 'MAP<STRING, STRING>')) AS (trait, value)"

    def count_if(self, cond: str) -> str:
        return f"COUNT_IF({cond})"

    def hll(self, expr: str) -> str:
        return f"HLL_SKETCH_AGG({expr}, {HLL_LG_K})"

    def hll_union_agg(self, column: str) -> str:
        """Union of sketch binaries, all built with :data:`HLL_LG_K` (equal lg_k required)."""
        return f"HLL_UNION_AGG({column}, false)"


def python_required(f: EventFilter, event_type: str) -> tuple[str, ...] | None:
    """The filter for events of one type (the embedded speed store's renderer, resolved once per type):
    None when no event of that type passes, else the columns that must be set on the row."""
    if f.event_types != "*" and event_type not in f.event_types:
        return None
    return f.non_null


def python_predicate(f: EventFilter):
    """The filter as a function of one row dict."""

    def matches(row) -> bool:
        required = python_required(f, row["event_type"])
        return required is not None and all(row[c] is not None for c in required)

    return matches


class PinotSql(SqlDialect):
    """Apache Pinot 1.4 single-stage SQL, for the Pinot speed store (``speed.pinot``).

    What differs from the base renderer, and why:

    - Identifiers are always double-quoted: ``offset`` and ``partition`` are reserved words, and a
      quoted name can never be read as a keyword or function.
    - Conditional aggregates use ``AGG(col) FILTER (WHERE cond)`` instead of ``AGG(CASE WHEN ...)``:
      without query-level null handling Pinot fills the rows a CASE's missing ELSE leaves with a
      placeholder value (``NullValuePlaceHolder``, 0), which a MIN would then return.
    - Pinot answers an aggregate over no row with 0 (SUM) or ±Infinity (MIN/MAX) rather than NULL, so
      every SUM/MIN/MAX has a companion :meth:`matched` count; the store reads "no matching row" from
      it, and the raw state is ``None`` exactly when the embedded store's would be.
    - Distinct counts are not rendered as aggregates (:meth:`aggregate` refuses them): Pinot's HLL is
      not a DataSketches binary and could not be merged with the batch sketch. The speed side returns
      the raw distinct values instead (:meth:`distinct_value`), which the merge adds to the batch sketch.
    - MIN/MAX are numeric functions in Pinot: :data:`~lambdalytics.schemas.catalog.engines.PINOT`.
    """

    engine = PINOT

    def aggregate(self, metric: BaseMetric) -> str:
        if metric.aggregate is Aggregate.hll_distinct:
            raise UnsupportedAggregate(metric.name, "pinot reads distinct counts as values (distinct_value)")
        return super().aggregate(metric)

    def ident(self, column: str) -> str:
        return '"' + column.replace('"', '""') + '"'

    def literal(self, value: str | int) -> str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"cannot render {type(value).__name__} as a Pinot literal")
        return str(value) if isinstance(value, int) else _quote_str(value)

    def filtered(self, expr: str, cond: str) -> str:
        return expr if cond == "TRUE" else f"{expr} FILTER (WHERE {cond})"

    def count_if(self, cond: str) -> str:
        return self.filtered("COUNT(*)", cond)

    def filtered_aggregate(self, function: str, column: str, cond: str) -> str:
        return self.filtered(f"{function}({column})", cond)

    def matched(self, metric: BaseMetric) -> str:
        """Rows the metric's aggregate saw: 0 means its raw state is None (no matching event)."""
        return self.count_if(self.predicate(metric.filter))

    def distinct_value(self, metric: BaseMetric) -> tuple[str, str]:
        """(value expression, row predicate) whose distinct values are the raw state of a distinct metric."""
        if metric.aggregate is not Aggregate.hll_distinct:
            raise UnsupportedAggregate(metric.name, f"{metric.aggregate} is rendered by aggregate()")
        self.refuse(metric)
        return self.ident(metric.column), self.predicate(metric.filter)

    def identify_rows(self) -> tuple[list[tuple[str, str]], str]:
        """(columns, predicate) of the identify rows whose traits fold into latest states in Python
        (``speed.traits.fold_identify``, ``aggregates.latest``): Pinot has no struct MAX, and the rows
        above W are few."""
        columns = [(c, self.ident(c)) for c in ("event_time", "offset", "traits")]
        return columns, f"{self.ident('event_type')} = 'identify' AND {self.ident('traits')} IS NOT NULL"

    def milestone_predicate(self, entity: Entity, name: str) -> str:
        return f"{self.ident('event_type')} = {_quote_str(entity.milestone(name).event_type)}"

    def milestone(self, entity: Entity, name: str) -> str:
        return self.filtered(f"MIN({self.ident('event_time')})", self.milestone_predicate(entity, name))

    def milestone_matched(self, entity: Entity, name: str) -> str:
        return self.count_if(self.milestone_predicate(entity, name))

    def time_bucket(self, unit: str, column: str = "event_time") -> str:
        """Start (epoch ms, UTC) of the ``HOUR``/``DAY``/``MONTH`` containing an epoch-ms column."""
        if unit not in ("HOUR", "DAY", "MONTH"):
            raise ValueError(f"unsupported time bucket {unit!r}")
        return f"DATETRUNC('{unit}', {self.ident(column)}, 'MILLISECONDS')"


__all__ += ["PinotSql"]
