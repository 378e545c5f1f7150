"""Branding admin API (admin token) and the tenant's public look for pages (any reader token)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from lambdalytics.schemas.events import TENANT_ID_PATTERN

from ...branding import Branding, BrandingStore, css_variables
from ..deps import AdminDep, ReaderDep

router = APIRouter(prefix="/v1", tags=["branding"])


def branding_store(request: Request) -> BrandingStore:
    """The app's branding store (part of its credentials), for routes that take no ``StateDep``."""
    return request.app.state.serving.credentials.branding


TenantPath = Path(pattern=TENANT_ID_PATTERN)


@router.put("/admin/tenants/{tenant_id}/branding")
def put_branding(body: Branding, request: Request, who: AdminDep, tenant_id: str = TenantPath) -> dict:
    """Replace the tenant's branding and embed policy (the whole document; omitted fields take defaults).
    May be set before the tenant is created."""
    branding_store(request).put(tenant_id, body)
    return {"tenant_id": tenant_id, **body.model_dump(mode="json")}


@router.get("/admin/tenants/{tenant_id}/branding")
def get_branding(request: Request, who: AdminDep, tenant_id: str = TenantPath) -> dict:
    """The stored branding, or the defaults when none was set."""
    return {"tenant_id": tenant_id, **branding_store(request).get(tenant_id).model_dump(mode="json")}


@router.get("/branding")
def my_branding(request: Request, who: ReaderDep) -> dict:
    """The look of the caller's tenant (what the dashboard applies), with its CSS variables; no embed policy."""
    branding = branding_store(request).get(who.tenant_id)
    return {**branding.public(who.tenant_id), "theme": css_variables(branding)}
