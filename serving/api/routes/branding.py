"""Branding: the operator's admin API, the owner's own (``PUT /v1/branding``), and the tenant's public look
for pages (any reader). Every change is in the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from lambdalytics.schemas.events import TENANT_ID_PATTERN

from ...branding import Branding, BrandingStore, css_variables
from ..access import AdminDep, ManagerDep, ReaderDep
from ..trail import record

router = APIRouter(prefix="/v1", tags=["branding"])


def branding_store(request: Request) -> BrandingStore:
    """The app's branding store (part of its credentials), for routes that take no ``StateDep``."""
    return request.app.state.serving.credentials.branding


TenantPath = Path(pattern=TENANT_ID_PATTERN)


def _put(request: Request, who, tenant_id: str, body: Branding) -> dict:
    branding_store(request).put(tenant_id, body)
    document = body.model_dump(mode="json")
    record(request, "branding_changed", who, tenant_id=tenant_id, target=tenant_id, branding=document)
    return {"tenant_id": tenant_id, **document}


@router.put("/admin/tenants/{tenant_id}/branding")
def put_branding(body: Branding, request: Request, who: AdminDep, tenant_id: str = TenantPath) -> dict:
    """Replace the tenant's branding and embed policy (the whole document; omitted fields take defaults).
    May be set before the tenant is created."""
    return _put(request, who, tenant_id, body)


@router.get("/admin/tenants/{tenant_id}/branding")
def get_branding(request: Request, who: AdminDep, tenant_id: str = TenantPath) -> dict:
    """The stored branding, or the defaults when none was set."""
    return {"tenant_id": tenant_id, **branding_store(request).get(tenant_id).model_dump(mode="json")}


@router.put("/branding")
def put_my_branding(body: Branding, request: Request, who: ManagerDep) -> dict:
    """An owner (or an admin key) replaces their own tenant's branding and embed policy."""
    return _put(request, who, who.tenant_id, body)


@router.get("/branding")
def my_branding(request: Request, who: ReaderDep) -> dict:
    """The look of the caller's tenant (what the dashboard applies), with its CSS variables; no embed policy."""
    branding = branding_store(request).get(who.tenant_id)
    return {**branding.public(who.tenant_id), "theme": css_variables(branding)}
