from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from lambdalytics.schemas.events import ContractViolation, parse_json, validate_event

from ...ingest import NotAcknowledged, produce_acknowledged
from ..access import IngestDep
from ..body import read_body
from ..deps import StateDep

router = APIRouter(prefix="/v1", tags=["events"])

MAX_BATCH = 1000
BODY_EVENTS = 10
"""A request body may hold this many events of the maximum size (``Settings.max_event_bytes``)."""


@router.post("/events", status_code=202)
async def post_events(request: Request, who: IngestDep, state: StateDep) -> dict:
    """One event or an array. All are validated first; if any is invalid, nothing is produced (422).

    Each event is held to ``Settings.max_event_bytes`` in the canonical form it is produced in — the
    bytes the archiver and the speed consumer measure against the same setting. Otherwise 202 once
    Kafka acknowledged them all, or 503 with the reason when it did not in time."""
    max_event_bytes = state.settings.max_event_bytes
    body = await read_body(request, max_event_bytes * BODY_EVENTS)
    try:
        payload: Any = parse_json(body)
    except ContractViolation as exc:
        raise HTTPException(422, [{"index": None, **exc.as_dict()}]) from None
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_BATCH:
        raise HTTPException(
            422, [{"index": None, "reason": "batch_size", "message": f"send 1 to {MAX_BATCH} events"}]
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
        if (size := len(event.to_json())) > max_event_bytes:
            errors.append(
                {
                    "index": i,
                    "reason": "payload_too_large",
                    "message": f"{size} bytes > limit of {max_event_bytes}",
                }
            )
            continue
        events.append(event)
    if errors:
        raise HTTPException(422, errors)
    try:
        await produce_acknowledged(state, events)  # acknowledged by the broker before we answer
    except NotAcknowledged as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
    return {"accepted": len(events)}
