from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request

from lambdalytics.schemas.events import ContractViolation, validate_event

from ...ingest import NotAcknowledged, produce_acknowledged
from ..body import read_body
from ..deps import StateDep, TenantDep

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", status_code=202)
async def post_events(request: Request, who: TenantDep, state: StateDep) -> dict:
    """One event or an array. All are validated first; if any is invalid, nothing is produced (422).
    Otherwise 202 once Kafka acknowledged them all, or 503 with the reason when it did not in time."""
    body = await read_body(request, state.settings.max_event_bytes * 10)
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        raise HTTPException(
            422, [{"index": None, "reason": "invalid_utf8", "message": str(exc)[:200]}]
        ) from None
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(
            422, [{"index": None, "reason": "invalid_json", "message": str(exc)[:200]}]
        ) from None
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > 1000:
        raise HTTPException(
            422, [{"index": None, "reason": "batch_size", "message": "send 1 to 1000 events"}]
        )
    events, errors = [], []
    for i, obj in enumerate(items):
        if isinstance(obj, dict):
            if obj.get("tenant_id") is None:
                obj = {**obj, "tenant_id": who.tenant_id}
            elif obj["tenant_id"] != who.tenant_id:
                errors.append(
                    {
                        "index": i,
                        "reason": "tenant_mismatch",
                        "message": "tenant_id does not match the API key's tenant",
                    }
                )
                continue
        try:
            event = validate_event(obj)
        except ContractViolation as exc:
            errors.append({"index": i, **exc.as_dict()})
            continue
        if len(event.to_json()) > state.settings.max_event_bytes:
            errors.append({"index": i, "reason": "payload_too_large", "message": "event too large"})
            continue
        events.append(event)
    if errors:
        raise HTTPException(422, errors)
    try:
        await produce_acknowledged(state, events)  # acknowledged by the broker before we answer
    except NotAcknowledged as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
    return {"accepted": len(events)}
