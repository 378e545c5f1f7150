"""RFM (recency, frequency, monetary) scoring: one definition for batch and serving.

- R is taken from ``last_order_at``, F is ``orders``, M is ``net_revenue`` (all catalog metrics, so the
  raw values merge like any other).
- Per tenant, the batch layer computes quintile cut points over the customers who ordered at least
  once (:func:`cut_points`, linear interpolation like ``numpy.quantile``); serving applies those cuts to
  the *merged* R/F/M of a customer (:func:`score`), so a fresh order moves a score at once.
- R is cut on the ``last_order_at`` timestamp, not on "days ago": timestamps don't drift as time
  passes, so the batch cuts stay valid until the next run. ``recency_days`` is still reported.
- Segments come from R and F (a common grid); the first matching rule wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["DIMENSIONS", "QUANTILES", "SEGMENTS", "cut_points", "recency_days", "score", "scores", "segment"]

DIMENSIONS = ("r", "f", "m")
QUANTILES = (0.2, 0.4, 0.6, 0.8)
DAY_MS = 86_400_000
R_METRIC, F_METRIC, M_METRIC = "last_order_at", "orders", "net_revenue"

SEGMENTS: tuple[tuple[str, int, int, int, int], ...] = (
    # (label, r_min, r_max, f_min, f_max)
    ("champions", 4, 5, 4, 5),
    ("loyal", 3, 5, 3, 5),
    ("new", 4, 5, 1, 1),
    ("promising", 4, 5, 1, 3),
    ("at_risk", 1, 2, 3, 5),
    ("hibernating", 1, 2, 1, 2),
    ("need_attention", 1, 5, 1, 5),
)


def cut_points(values: Sequence[float] | np.ndarray) -> list[float]:
    """The four quintile cut points of a tenant's values (empty input → no cuts)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return []
    return [float(x) for x in np.quantile(arr, QUANTILES, method="linear")]


def score(value: float, cuts: Sequence[float]) -> int:
    """1..5: one plus the number of cut points the value is above (higher value, higher score)."""
    return 1 + sum(1 for c in cuts if value > c)


def scores(
    last_order_at: int | None,
    frequency: int | None,
    monetary: float,
    cuts: Mapping[str, Sequence[float]] | None,
) -> dict[str, int | str] | None:
    """``{"r", "f", "m", "segment"}`` of a customer's R/F/M under a tenant's cuts (keyed by
    :data:`DIMENSIONS`); None when the customer never ordered or the tenant has no cuts yet."""
    if not cuts or last_order_at is None or not frequency:
        return None
    r, f, m = (
        score(v, cuts[d]) for v, d in zip((last_order_at, frequency, monetary), DIMENSIONS, strict=True)
    )
    return {"r": r, "f": f, "m": m, "segment": segment(r, f)}


def segment(r: int, f: int) -> str:
    return next(label for label, r0, r1, f0, f1 in SEGMENTS if r0 <= r <= r1 and f0 <= f <= f1)


def recency_days(last_order_ms: int, as_of_ms: int) -> int:
    return max(0, (as_of_ms - last_order_ms) // DAY_MS)
