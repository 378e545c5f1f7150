from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import Field

from lambdalytics.schemas.events import TENANT_ID_PATTERN

from ...request_model import RequestModel
from ..access import AdminDep, DashboardTokenDep, SharerDep
from ..deps import StateDep
from ..params import iso
from ..trail import record

router = APIRouter(prefix="/v1", tags=["admin"])


class NewTenant(RequestModel):
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)


class NewEmbedToken(RequestModel):
    """What one embed may show. Every embed token also reads the tenant's live metrics."""

    customer_id: str | None = Field(None, min_length=1, max_length=128)
    campaign_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=50
    )
    cohorts: bool = Field(False, description="may show the tenant's cohort retention table")
    ttl_seconds: int = Field(3600, ge=1, le=86400)


class NewDashboardToken(RequestModel):
    ttl_seconds: int = Field(8 * 3600, ge=60, le=86400)


@router.post("/admin/tenants", status_code=201)
def create_tenant(body: NewTenant, request: Request, who: AdminDep, state: StateDep) -> dict:
    """Create a tenant; its API key (every scope) is in this answer only (stored hashed)."""
    key = state.credentials.registry.create(body.tenant_id, body.name)
    if key is None:
        raise HTTPException(409, "tenant exists; rotate its key instead")
    record(request, "tenant_created", who, tenant_id=body.tenant_id, target=body.tenant_id)
    return {"tenant_id": body.tenant_id, "api_key": key}


@router.post("/admin/tenants/{tenant_id}/rotate-key")
def rotate_key(
    request: Request, who: AdminDep, state: StateDep, tenant_id: str = Path(pattern=TENANT_ID_PATTERN)
) -> dict:
    key = state.credentials.registry.rotate(tenant_id)
    if key is None:
        raise HTTPException(404, "not found")
    record(request, "tenant_key_rotated", who, tenant_id=tenant_id, target=tenant_id)
    return {"tenant_id": tenant_id, "api_key": key}


@router.post("/admin/batch-runs", status_code=202)
def trigger_batch_run(request: Request, who: AdminDep, state: StateDep) -> dict:
    """Start a batch run in a process of its own (never Spark in an API worker); 409 while one runs."""
    run_id = state.runs.trigger()
    if run_id is None:
        raise HTTPException(409, "a batch run is already running")
    record(request, "batch_run_triggered", who, target=str(run_id))
    return {"run_id": run_id}


@router.get("/admin/batch-runs/latest")
def latest_batch_run(who: AdminDep, state: StateDep) -> dict:
    """The latest run triggered here (by any worker, before or after a restart): the same from every worker."""
    run = state.runs.latest()
    if run is None:
        raise HTTPException(404, "no batch run triggered yet")
    return {
        "run_id": run.run_id,
        "state": run.state,
        "batch_version": run.batch_version,
        "started_at": iso(run.started_at_ms),
        "finished_at": iso(run.finished_at_ms) if run.finished_at_ms is not None else None,
        "error": run.error,
    }


@router.post("/embed-tokens", status_code=201)
def embed_token(body: NewEmbedToken, who: SharerDep, state: StateDep) -> dict:
    """A signed token for a browser: one customer, the named campaigns and/or the cohort table of this
    tenant, plus the tenant's live metrics. Revoked with the key that minted it (and by a rotation)."""
    token, exp = state.credentials.signer.issue(
        who.tenant_id,
        body.customer_id,
        body.ttl_seconds,
        generation=who.generation,  # a rotation of this key revokes the token
        campaigns=tuple(body.campaign_ids),
        cohorts=body.cohorts,
        key_id=who.key_id,
    )
    return {"token": token, "expires_at": iso(exp * 1000)}


@router.post("/dashboard-tokens", status_code=201)
def dashboard_token(body: NewDashboardToken, who: DashboardTokenDep, state: StateDep) -> dict:
    """A read-only bearer token of the whole tenant for API clients that must not hold the key. The
    dashboard itself signs users in with a server-side session instead (revoked at sign-out)."""
    token, exp = state.credentials.signer.issue_dashboard(
        who.tenant_id, body.ttl_seconds, generation=who.generation, key_id=who.key_id
    )
    return {"token": token, "expires_at": iso(exp * 1000)}
