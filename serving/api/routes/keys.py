"""A tenant's named API keys (scopes ``read``, ``ingest``, ``admin``) and its host keys (the public keys
that sign its own embed tokens). Managed by owners and admin keys, within their own tenant; every change
is in the audit log. No answer but the creating one ever holds a key's secret."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Request
from pydantic import Field

from ...host_keys import HostKeyError, KidTaken
from ...request_model import RequestModel
from ..access import ManagerDep
from ..deps import NOT_FOUND, StateDep
from ..trail import record

router = APIRouter(prefix="/v1", tags=["keys"])

Scope = Literal["read", "ingest", "admin"]


class NewKey(RequestModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=3)


@router.post("/keys", status_code=201)
def create_key(body: NewKey, request: Request, who: ManagerDep, state: StateDep) -> dict:
    """A new named key; its secret (``api_key``) is in this answer only (stored hashed)."""
    key, secret = state.credentials.keys.create(who.tenant_id, body.name, tuple(body.scopes))
    record(request, "key_created", who, target=key.key_id, name=key.name, scopes=list(key.scopes))
    return {**key.public(), "api_key": secret}


@router.get("/keys")
def list_keys(who: ManagerDep, state: StateDep) -> dict:
    """Name, scopes, creation and last use (to the minute) of every key; never a key's secret."""
    return {"keys": [k.public() for k in state.credentials.keys.list(who.tenant_id)]}


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(
    request: Request, who: ManagerDep, state: StateDep, key_id: str = Path(pattern=r"^key_[0-9a-f]{16}$")
) -> None:
    """Revoke a key, and the embed and dashboard tokens it minted (within 1 s in every worker)."""
    key = state.credentials.keys.get(who.tenant_id, key_id)
    if key is None or not state.credentials.keys.revoke(who.tenant_id, key_id):
        raise NOT_FOUND
    record(request, "key_revoked", who, target=key_id, name=key.name)


@router.post("/host-keys", status_code=201)
def add_host_keys(
    request: Request,
    who: ManagerDep,
    state: StateDep,
    document: Annotated[dict[str, Any], Body(description="a JWKS, one JWK, or {kid, public_key_pem}")],
) -> dict:
    """Register public keys (RS256: RSA ≥ 2048 bits, ES256: P-256, each with a new ``kid``) whose tokens
    are accepted as this tenant's embed tokens."""
    try:
        added = state.credentials.host_keys.add(who.tenant_id, document)
    except KidTaken as exc:
        raise HTTPException(409, str(exc)) from None
    except HostKeyError as exc:
        raise HTTPException(422, str(exc)) from None
    for key in added:
        record(request, "host_key_added", who, target=key.kid, alg=key.alg)
    return {"keys": [k.public() for k in added]}


@router.get("/host-keys")
def list_host_keys(who: ManagerDep, state: StateDep) -> dict:
    return {"keys": [k.public() for k in state.credentials.host_keys.list(who.tenant_id)]}


@router.delete("/host-keys/{kid}", status_code=204)
def remove_host_key(
    request: Request, who: ManagerDep, state: StateDep, kid: str = Path(min_length=1, max_length=128)
) -> None:
    """Remove a host key: tokens it signed stop working (within 1 s in every worker)."""
    if not state.credentials.host_keys.remove(who.tenant_id, kid):
        raise NOT_FOUND
    record(request, "host_key_removed", who, target=kid)
