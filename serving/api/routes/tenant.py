"""Campaign, live-orders and cohort answers: tenant-level reads."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path, Query

from ...merge import NotFound
from ..deps import NOT_FOUND, ReaderDep, StateDep, campaign_scope, cohort_scope
from ..freshness import freshness
from ..params import GRANULARITY_MS, iso, month_of, time_range, window_seconds

router = APIRouter(prefix="/v1", tags=["tenant"])


@router.get("/campaigns/{campaign_id}/stats")
def campaign_stats(
    campaign_id: str = Path(min_length=1, max_length=128),
    start: str | None = None,
    end: str | None = None,
    granularity: Literal["hour", "day"] = "day",
    *,
    who: ReaderDep,
    state: StateDep,
) -> dict:
    campaign_scope(who, campaign_id)
    start_ms, end_ms = time_range(start, end)
    try:
        totals, points = state.merger.campaign(
            who.tenant_id, campaign_id, start_ms, end_ms, GRANULARITY_MS[granularity]
        )
    except NotFound:
        raise NOT_FOUND from None
    return {
        "campaign_id": campaign_id,
        "totals": totals,
        "points": [{"ts": iso(ts), **values} for ts, values in points],
        "freshness": freshness(state),
    }


@router.get("/live/orders")
def live_orders(
    window: str = Query("30m", description="e.g. 30m, 2h, 1d (max 7d)"), *, who: ReaderDep, state: StateDep
) -> dict:
    seconds = window_seconds(window)
    answer = state.merger.live_orders(who.tenant_id, seconds * 1000)
    return {**answer, "window_seconds": seconds, "freshness": freshness(state)}


@router.get("/cohorts/retention")
def cohorts(
    start: str | None = Query(None, description="First cohort month, YYYY-MM"),
    end: str | None = Query(None, description="Last cohort month, YYYY-MM"),
    *,
    who: ReaderDep,
    state: StateDep,
) -> dict:
    cohort_scope(who)
    rows = state.merger.cohorts(who.tenant_id, month_of(start, "start"), month_of(end, "end"))
    return {"cohorts": rows, "freshness": freshness(state)}
