"""Monthly order cohorts: one definition for batch, speed and serving.

A customer's cohort is the UTC month of their first ``order_placed``; ``retention[k]`` is the share of
the cohort with at least one order in cohort month + k (so ``retention[0]`` is 1.0), for k up to the
latest order month seen. The input is each customer's set of order months (:func:`order_months`),
which merges by set union across batch and speed.

:class:`CohortCounts` holds the table as counts, not shares: the batch layer publishes it per tenant,
and serving corrects it for the few customers the speed side touched (take their batch contribution
out, put their merged one in) before computing shares — the cost of an answer is the cohort table
plus those customers, never the tenant's history (ARCHITECTURE §9).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_EPOCH = dt.datetime(1970, 1, 1)

__all__ = ["COHORT_METRIC", "CohortCounts", "month_index", "month_label", "order_months", "retention"]

COHORT_METRIC = "orders"
"""The customer time-series metric whose non-zero hours are a customer's order months (order_placed)."""


def month_index(epoch_ms):
    """Months since 1970-01 (UTC) of epoch-ms times (an int or a numpy array of them)."""
    if isinstance(epoch_ms, int):  # one time: the calendar, without numpy's per-call cost
        day = _EPOCH + dt.timedelta(milliseconds=epoch_ms)
        return (day.year - 1970) * 12 + day.month - 1
    months = np.asarray(epoch_ms, dtype="int64").astype("datetime64[ms]").astype("datetime64[M]")
    out = months.astype("int64")
    return int(out) if out.ndim == 0 else out


def month_label(index: int) -> str:
    return f"{1970 + index // 12:04d}-{index % 12 + 1:02d}"


def order_months(orders_by_bucket: Iterable[tuple[int, Any]]) -> set[int]:
    """A customer's order months from ``(bucket start, COHORT_METRIC state)`` pairs of event-time
    buckets within one month each (hours, or months), the state counting the orders placed in it."""
    return {month_index(start) for start, orders in orders_by_bucket if orders}


@dataclass
class CohortCounts:
    """Per cohort month: ``[size, active at k = 0, 1, …]``, and the latest order month seen."""

    cohorts: dict[int, list[int]] = field(default_factory=dict)
    latest: int | None = None

    @classmethod
    def of(cls, months_by_customer: Mapping[str, Iterable[int]]) -> CohortCounts:
        table = cls()
        for months in months_by_customer.values():
            table.add(set(months))
        return table

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, list[int]]]) -> CohortCounts:
        """Inverse of :meth:`rows`; ``active`` runs to the latest month, which is how it is recovered."""
        table = cls()
        for cohort, size, active in rows:
            table.cohorts[cohort] = [size, *active]
            last = cohort + len(active) - 1
            table.latest = last if table.latest is None else max(table.latest, last)
        return table

    def copy(self) -> CohortCounts:
        return CohortCounts({c: list(v) for c, v in self.cohorts.items()}, self.latest)

    def add(self, months: set[int], sign: int = 1) -> None:
        """Count one customer's order months in (``sign=1``) or out (``-1``: only what was counted in).

        ``latest`` only grows: a customer is taken out only to be put back with a superset of months.
        """
        if not months:
            return
        first = min(months)
        counts = self.cohorts.setdefault(first, [0])
        counts[0] += sign
        for month in months:
            k = month - first + 1
            counts.extend([0] * (k + 1 - len(counts)))
            counts[k] += sign
        if sign > 0:
            last = max(months)
            self.latest = last if self.latest is None else max(self.latest, last)
        if counts[0] == 0:
            del self.cohorts[first]

    def replace(self, before: set[int], after: set[int]) -> None:
        self.add(before, -1)
        self.add(after)

    def rows(self) -> Iterator[tuple[int, int, list[int]]]:
        """``(cohort, size, active[0..latest - cohort])`` sorted by cohort."""
        for cohort in sorted(self.cohorts):
            size, *active = self.cohorts[cohort]
            span = (self.latest if self.latest is not None else cohort) - cohort + 1
            yield cohort, size, [*active[:span], *[0] * (span - len(active))]

    def retention(self, *, start: int | None = None, end: int | None = None) -> list[dict]:
        """Cohort rows ``{"cohort", "size", "retention"}`` for cohorts in [start, end]: shares, last."""
        return [
            {"cohort": month_label(cohort), "size": size, "retention": [round(a / size, 6) for a in active]}
            for cohort, size, active in self.rows()
            if (start is None or cohort >= start) and (end is None or cohort <= end)
        ]


def retention(
    months_by_customer: Mapping[str, Iterable[int]], *, start: int | None = None, end: int | None = None
) -> list[dict]:
    """The cohort table of customers' order months, sorted by cohort, for cohorts in [start, end]."""
    return CohortCounts.of(months_by_customer).retention(start=start, end=end)
