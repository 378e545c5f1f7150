from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Path, Query

from ...merge import NotFound, UnknownMetric
from ..deps import NOT_FOUND, ReaderDep, StateDep, customer_scope
from ..freshness import freshness
from ..params import GRANULARITY_MS, iso, time_range

router = APIRouter(prefix="/v1/customers", tags=["customers"])
CustomerId = Path(min_length=1, max_length=128)


@router.get("/{customer_id}/profile")
def profile(customer_id: str = CustomerId, *, who: ReaderDep, state: StateDep) -> dict:
    """Every customer-grain metric and the RFM scores of one customer, batch ⊕ speed."""
    customer_scope(who, customer_id)
    try:
        answer = state.merger.profile(who.tenant_id, customer_id)
    except NotFound:
        raise NOT_FOUND from None
    return {"tenant_id": who.tenant_id, "customer_id": customer_id, **answer, "freshness": freshness(state)}


@router.get("/{customer_id}/timeseries")
def timeseries(
    customer_id: str = CustomerId,
    metric: str = Query(..., description="A customer-grain count/sum metric or a derivation of them."),
    start: str | None = Query(None, description="ISO 8601; default end - 30 days."),
    end: str | None = Query(None, description="ISO 8601; default now."),
    granularity: Literal["hour", "day"] = "hour",
    *,
    who: ReaderDep,
    state: StateDep,
) -> dict:
    customer_scope(who, customer_id)
    start_ms, end_ms = time_range(start, end)
    try:
        points = state.merger.timeseries(
            who.tenant_id, customer_id, metric, start_ms, end_ms, GRANULARITY_MS[granularity]
        )
    except UnknownMetric:
        raise HTTPException(422, f"metric {metric!r} has no time series (see GET /v1/metrics)") from None
    except NotFound:
        raise NOT_FOUND from None
    return {
        "metric": metric,
        "granularity": granularity,
        "points": [{"ts": iso(ts), "value": value} for ts, value in points],
        "freshness": freshness(state),
    }
