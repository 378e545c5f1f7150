"""What each execution engine cannot compute, as data (ibis's ``UNSUPPORTED_OPS``).

Three engines compute base metrics: Spark SQL (batch views, ``compile.SparkSql``), the embedded speed
store's Python evaluator (``aggregates.update``/``merge``) and Pinot SQL (``compile.PinotSql``). The
catalog rule ``engine-support`` refuses a metric any of them cannot compute, so a gap fails when the
catalog is built — never as a wrong number at query time — and the renderers raise the same reason.
"""

from __future__ import annotations

from ..events import ROW_COLUMNS
from .model import NUMERIC_TYPES, Aggregate, BaseMetric, _Frozen

__all__ = ["EMBEDDED", "ENGINES", "PINOT", "SPARK", "Engine"]


class Engine(_Frozen):
    name: str
    unsupported: frozenset[Aggregate] = frozenset()
    numeric_only: frozenset[Aggregate] = frozenset()  # computed over numeric columns only

    def refusal(self, metric: BaseMetric) -> str | None:
        """Why this engine cannot compute the metric, or None when it can."""
        if metric.aggregate in self.unsupported:
            return f"{self.name} cannot compute {metric.aggregate.value}"
        if metric.aggregate in self.numeric_only and ROW_COLUMNS.get(metric.column) not in NUMERIC_TYPES:
            return f"{self.name} computes {metric.aggregate.value} over numeric columns only, not {metric.column!r}"
        return None


SPARK = Engine(name="spark")
"""COUNT_IF, SUM/MIN/MAX of any orderable column, HLL_SKETCH_AGG (DataSketches): every aggregate."""

EMBEDDED = Engine(name="embedded")
"""Python values and a set of raw values for distinct counts: every aggregate."""

PINOT = Engine(name="pinot", numeric_only=frozenset({Aggregate.min, Aggregate.max}))
"""Pinot's MIN/MAX are numeric (DOUBLE) functions; string columns would need MINSTRING/MAXSTRING,
which the renderer does not emit. Distinct counts are read as raw values (``PinotSql.distinct_value``),
so they are computed, just not as a SQL aggregate."""

ENGINES = (SPARK, EMBEDDED, PINOT)
