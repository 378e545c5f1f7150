"""Data quality of the tenant's feed (``GET /v1/quality``) and, for the operator, of the records that named
no tenant (``GET /v1/admin/quality``). Definitions and windows: docs/metrics.md "Data quality"."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from lambdalytics.infra.quality_ledger import UNKNOWN_TENANT
from lambdalytics.schemas.catalog.quality import UNKNOWN_TENANT_LABEL

from ...quality import LedgerMissing, quality_answer
from ...state import ServingState
from ..access import AdminDep, QualityReaderDep
from ..deps import StateDep
from ..params import iso, now_ms, window_seconds

router = APIRouter(prefix="/v1", tags=["quality"])

QUALITY_WINDOW_DAYS = 30
WindowQuery = Query("24h", description="e.g. 1h, 24h, 7d (max 30d); rounded out to whole arrival hours")


def _answer(state: ServingState, tenant_id: str, window: str) -> dict:
    seconds = window_seconds(window, cap_days=QUALITY_WINDOW_DAYS)
    now = now_ms()
    try:
        answer = quality_answer(state.quality.ledger(), tenant_id, seconds, now)
    except LedgerMissing as exc:
        raise HTTPException(503, str(exc)) from None
    return {**answer, "window_from": iso(answer.pop("hours_from_ms")), "as_of": iso(now)}


@router.get("/quality")
def quality(who: QualityReaderDep, state: StateDep, window: str = WindowQuery) -> dict:
    """Dead letters per reason, duplicate and late-event rates, the share of orders attributed to a
    campaign and the time since the last event per topic, over the window, for the caller's tenant."""
    return {"tenant_id": who.tenant_id, **_answer(state, who.tenant_id, window)}


@router.get("/admin/quality")
def unknown_tenant_quality(who: AdminDep, state: StateDep, window: str = WindowQuery) -> dict:
    """The same figures for records whose tenant could not be read (dead letters only): the operator's."""
    return {"tenant_id": UNKNOWN_TENANT_LABEL, **_answer(state, UNKNOWN_TENANT, window)}
