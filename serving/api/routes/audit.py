"""``GET /v1/audit``: the audit log, paged oldest first. Owners and admin keys read their tenant's
entries, the operator's admin token every entry (``tenant`` narrows it). There is no route that edits
or deletes an entry."""

from __future__ import annotations

from fastapi import APIRouter, Query

from lambdalytics.schemas.events import TENANT_ID_PATTERN

from ...audit import MAX_PAGE
from ..access import AuditorDep
from ..deps import StateDep

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit")
def audit_log(
    who: AuditorDep,
    state: StateDep,
    after: int = Query(0, ge=0, le=2**63 - 1, description="the last seq of the previous page"),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    tenant: str | None = Query(None, pattern=TENANT_ID_PATTERN, description="admin token only"),
) -> dict:
    """Who did what, when and from where. ``next_after`` is the ``after`` of the next page (null: none)."""
    scope = who.tenant_id if who.kind != "admin" else tenant
    entries = state.credentials.audit.page(scope, after=after, limit=limit)
    full = len(entries) == limit
    return {"entries": [e.public() for e in entries], "next_after": entries[-1].seq if full else None}
