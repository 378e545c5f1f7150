"""One call for a route to write the audit log: who (the verified credential), from where (the client
address), about which tenant (the credential's, unless the operator acts on one), what and on what."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..auth import Principal
from .deps import client_address

__all__ = ["record"]


def record(
    request: Request,
    action: str,
    who: Principal | None,
    *,
    tenant_id: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    **detail: Any,
) -> None:
    request.app.state.serving.credentials.audit.record(
        action,
        tenant_id=tenant_id if tenant_id is not None else (who.tenant_id if who else None),
        actor=actor or (who.actor if who else "anonymous"),
        address=client_address(request),
        target=target,
        **detail,
    )
