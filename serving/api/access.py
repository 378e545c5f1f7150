"""What each route admits: one ``Access`` declaration per route, the only place a permission is written.

A credential's *grants* (``Principal.grants``) are its role (``owner``, ``analyst``, ``viewer``: a
signed-in user), its key scopes (``key:read``, ``key:ingest``, ``key:admin``: an API key; the tenant key
has all three), or its kind (``admin``: the operator's token; ``dashboard``: a read-only dashboard
token; ``embed``: an embed token, ours or host-signed). A route admits a credential when they share a
grant; otherwise 403 (401 before that for a missing or invalid credential). What the credential may then
see is narrowed further inside the route (an embed token's customer, campaigns, cohort table).

A route declares its ``Access`` as its principal's dependency (``who: Annotated[Principal,
Depends(OWNERS)]``) or, on a hot route, by calling it and listing it with ``openapi_extra=X.openapi()``.
:func:`admits` reads either back, ``create_app`` publishes it in OpenAPI as ``x-admits``, and
``tests/serving/test_access_matrix.py`` walks every route × every kind of credential against it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from ..auth import Principal
from .deps import authorize

__all__ = [
    "ADMIN",
    "AUDITORS",
    "ERASERS",
    "INGEST",
    "MANAGERS",
    "QUALITY_READERS",
    "READ",
    "READ_SEGMENTS",
    "READ_TENANT_WIDE",
    "SHARERS",
    "SIGNED_IN",
    "Access",
    "AdminDep",
    "EraserDep",
    "QualityReaderDep",
    "admits",
    "api_routes",
]

ROLES = ("owner", "analyst", "viewer")
OPENAPI_KEY = "x-admits"


class Access:
    """The grants a route admits; calling it authorizes the request (a FastAPI dependency)."""

    def __init__(self, *grants: str, tenant_wide: bool = False):
        self.grants = frozenset(grants)
        self.tenant_wide = tenant_wide  # answers about the whole tenant: also one rate bucket per tenant

    def __call__(self, request: Request) -> Principal:
        return authorize(request, self.grants, tenant_wide=self.tenant_wide)

    def openapi(self, **extra: Any) -> dict[str, Any]:
        return {OPENAPI_KEY: sorted(self.grants), **extra}

    def __repr__(self) -> str:
        return f"Access({', '.join(sorted(self.grants))})"


DATA_READERS = (*ROLES, "key:read", "dashboard", "embed")
READ = Access(*DATA_READERS)
READ_TENANT_WIDE = Access(*DATA_READERS, tenant_wide=True)
"""The tenant's data: every role (a viewer sees the dashboard), read keys, dashboard and embed tokens."""
READ_SEGMENTS = Access(*ROLES, "key:read", "dashboard", tenant_wide=True)
"""Segments list the tenant's customers by id: tenant credentials only, never an embed token."""
INGEST = Access("key:ingest")
QUALITY_READERS = Access(*ROLES, "key:read", "dashboard")
"""The tenant's data-quality figures: its people and read keys, never an embed (not its customers')."""
SHARERS = Access("owner", "analyst", "key:read")
"""Minting an embed token shares the tenant's data: owners, analysts and read keys, never a viewer."""
DASHBOARD_TOKENS = Access("key:read")
MANAGERS = Access("owner", "key:admin")
"""Users, API keys, host keys, the tenant's branding: owners and admin keys."""
ERASERS = Access("owner", "key:admin")
"""Erasing a customer (and reading its receipt): owners and admin keys, never the operator's token —
the tenant's own decision, recorded in its audit log."""
AUDITORS = Access("owner", "key:admin", "admin")
SIGNED_IN = Access(*ROLES)
ADMIN = Access("admin")

AdminDep = Annotated[Principal, Depends(ADMIN)]
ReaderDep = Annotated[Principal, Depends(READ)]
SharerDep = Annotated[Principal, Depends(SHARERS)]
ManagerDep = Annotated[Principal, Depends(MANAGERS)]
AuditorDep = Annotated[Principal, Depends(AUDITORS)]
EraserDep = Annotated[Principal, Depends(ERASERS)]
IngestDep = Annotated[Principal, Depends(INGEST)]
SignedInDep = Annotated[Principal, Depends(SIGNED_IN)]
DashboardTokenDep = Annotated[Principal, Depends(DASHBOARD_TOKENS)]
QualityReaderDep = Annotated[Principal, Depends(QUALITY_READERS)]


def admits(route: APIRoute) -> frozenset[str] | None:
    """The grants a route declares (None: a public route)."""
    declared = (route.openapi_extra or {}).get(OPENAPI_KEY)
    if declared is not None:
        return frozenset(declared)
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if isinstance(dependency.call, Access):
            return dependency.call.grants
        stack.extend(dependency.dependencies)
    return None


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute under ``routes`` (an app's or a router's), through included routers (FastAPI keeps
    an included router as one entry of ``app.routes``). The app includes its routers without a prefix,
    so each route's ``path`` is the path it answers."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            found.extend(api_routes(router.routes))
    return found


def publish(route: APIRoute) -> None:
    """Show a route's declaration in OpenAPI (``x-admits``), as the API reference's one source."""
    found = admits(route)
    if found is not None:
        route.openapi_extra = {**(route.openapi_extra or {}), OPENAPI_KEY: sorted(found)}
