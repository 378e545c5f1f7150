"""Tenant users (created or invited by the operator or an owner), invites, and who is signed in.

Users are managed within the caller's own tenant only (the tenant comes from the credential): a user id
of another tenant is 404 like a missing one. Removing a user ends their sessions at once; a role change
applies to their next request. Every change is in the audit log.
"""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import Field

from lambdalytics.schemas.events import TENANT_ID_PATTERN

from ...auth import Principal
from ...request_model import RequestModel
from ...users import MAX_PASSWORD_CHARS, AccountError, User
from ..access import AdminDep, ManagerDep, SignedInDep
from ..deps import NOT_FOUND, StateDep, refuse_if_failing
from ..sign_in import redeem_invite
from ..trail import record

router = APIRouter(prefix="/v1", tags=["users"])

Role = Literal["owner", "analyst", "viewer"]
UserPath = Path(pattern=r"^usr_[0-9a-f]{16}$")


class NewUser(RequestModel):
    email: str = Field(min_length=3, max_length=254)
    role: Role
    password: str | None = Field(
        None, max_length=MAX_PASSWORD_CHARS, description="omit it to invite: the answer holds an invite token"
    )


class RoleChange(RequestModel):
    role: Role


class InviteAcceptance(RequestModel):
    invite: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS)


def _refused(exc: AccountError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


async def _create(request: Request, who: Principal, tenant_id: str, body: NewUser) -> dict:
    users = request.app.state.serving.credentials.users
    try:  # argon2 costs ~50 ms of CPU: off the event loop
        user, invite = await anyio.to_thread.run_sync(
            lambda: users.create(tenant_id, body.email, body.role, body.password)
        )
    except AccountError as exc:
        raise _refused(exc) from None
    action = "user_invited" if invite else "user_created"
    record(request, action, who, tenant_id=tenant_id, target=user.email, role=user.role, user_id=user.user_id)
    return {**user.public(), **({"invite_token": invite} if invite else {})}


@router.post("/admin/tenants/{tenant_id}/users", status_code=201)
async def admin_create_user(
    body: NewUser,
    request: Request,
    who: AdminDep,
    state: StateDep,
    tenant_id: str = Path(pattern=TENANT_ID_PATTERN),
) -> dict:
    """The operator creates (with ``password``) or invites (without) a user of a tenant — its first owner."""
    if state.credentials.registry.generation(tenant_id) is None:
        raise NOT_FOUND
    return await _create(request, who, tenant_id, body)


@router.post("/users", status_code=201)
async def create_user(body: NewUser, request: Request, who: ManagerDep) -> dict:
    """An owner (or an admin key) creates or invites a user of their tenant."""
    return await _create(request, who, who.tenant_id, body)


@router.get("/users")
def list_users(who: ManagerDep, state: StateDep) -> dict:
    return {"users": [u.public() for u in state.credentials.users.list(who.tenant_id)]}


@router.patch("/users/{user_id}")
def change_role(
    body: RoleChange, request: Request, who: ManagerDep, state: StateDep, user_id: str = UserPath
) -> dict:
    before = state.credentials.users.get(user_id, who.tenant_id)
    if before is None:
        raise NOT_FOUND
    try:
        user = state.credentials.users.set_role(who.tenant_id, user_id, body.role)
    except AccountError as exc:
        raise _refused(exc) from None
    if user is None:
        raise NOT_FOUND
    record(request, "user_role_changed", who, target=user.email, before=before.role, after=user.role)
    return user.public()


@router.delete("/users/{user_id}", status_code=204)
def remove_user(request: Request, who: ManagerDep, state: StateDep, user_id: str = UserPath) -> None:
    """Remove a user; their sessions end at once."""
    user: User | None = state.credentials.users.get(user_id, who.tenant_id)
    if user is None:
        raise NOT_FOUND
    try:
        removed = state.credentials.users.remove(who.tenant_id, user_id)
    except AccountError as exc:
        raise _refused(exc) from None
    if not removed:
        raise NOT_FOUND
    state.credentials.sessions.revoke_user(user_id)
    record(request, "user_removed", who, target=user.email, role=user.role)


@router.post("/invites/accept")
async def accept_invite(body: InviteAcceptance, request: Request, state: StateDep) -> dict:
    """An invited user chooses their password with the invite token (single use, 72 h); then signs in."""
    refuse_if_failing(request)
    try:
        user = await redeem_invite(request, body.invite, body.password)
    except AccountError as exc:
        raise _refused(exc) from None
    if user is None:
        raise HTTPException(404, "unknown, used or expired invite")
    return user.public()


@router.get("/session")
def current_session(who: SignedInDep, state: StateDep) -> dict:
    """The signed-in user (from the session cookie) and the CSRF token their state-changing requests carry."""
    user = state.credentials.users.get(who.user_id, who.tenant_id)
    if user is None:
        raise HTTPException(401, "signed out or session expired")
    return {**user.public(), "tenant_id": who.tenant_id, "csrf_token": who.csrf}
