"""Monthly order cohorts: one definition for batch and serving.

A customer's cohort is the UTC month of their first ``order_placed``; ``retention[k]`` is the share of
the cohort with at least one order in cohort month + k (so ``retention[0]`` is 1.0). The input is each
customer's set of order months, which merges by set union across batch and speed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["COHORT_METRIC", "month_index", "month_label", "retention"]

COHORT_METRIC = "orders"
"""The customer time-series metric whose non-zero hours are a customer's order months (order_placed)."""


def month_index(epoch_ms):
    """Months since 1970-01 (UTC) of epoch-ms times (an int or a numpy array of them)."""
    months = np.asarray(epoch_ms, dtype="int64").astype("datetime64[ms]").astype("datetime64[M]")
    out = months.astype("int64")
    return int(out) if out.ndim == 0 else out


def month_label(index: int) -> str:
    return f"{1970 + index // 12:04d}-{index % 12 + 1:02d}"


def retention(
    order_months: Mapping[str, Iterable[int]],
    *,
    start: int | None = None,
    end: int | None = None,
    last_month: int | None = None,
) -> list[dict]:
    """Cohort rows ``{"cohort", "size", "retention"}`` sorted by cohort, for cohorts in [start, end].

    ``retention`` runs from the cohort month to ``last_month`` (default: the latest month seen).
    """
    cohorts: dict[int, list[set[int]]] = defaultdict(list)
    latest = last_month
    for months in order_months.values():
        ms = set(months)
        if not ms:
            continue
        first = min(ms)
        cohorts[first].append(ms)
        if last_month is None:
            latest = max(latest if latest is not None else first, max(ms))
    rows = []
    for cohort in sorted(cohorts):
        if (start is not None and cohort < start) or (end is not None and cohort > end):
            continue
        members = cohorts[cohort]
        size = len(members)
        span = (latest or cohort) - cohort
        shares = [round(sum(1 for ms in members if cohort + k in ms) / size, 6) for k in range(span + 1)]
        rows.append({"cohort": month_label(cohort), "size": size, "retention": shares})
    return rows
