"""Right to erasure: ``DELETE /v1/customers/{id}`` erases a customer (with its identity component) from
every store, ``GET /v1/erasures/{id}`` is the receipt. Owners and admin keys only; both audited."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Request, Response

from lambdalytics.infra.erasures import REMAINS, Erasure

from ..access import EraserDep
from ..deps import StateDep
from ..params import iso
from ..trail import record

router = APIRouter(prefix="/v1", tags=["erasures"])


def receipt(erasure: Erasure) -> dict:
    """What was purged, where, how much and when; and what remains (the raw topics until retention).
    No customer id: the receipt outlives the data it is about."""
    return {
        "erasure_id": erasure.erasure_id,
        "tenant_id": erasure.tenant_id,
        "state": erasure.state,
        "requested_at": iso(int(erasure.requested_at * 1000)),
        "completed_at": iso(int(erasure.completed_at * 1000)) if erasure.completed_at else None,
        "identities": len(erasure.subjects),
        "stores": {
            name: {**facts, "at": iso(int(facts["at"] * 1000))}
            for name, facts in sorted(erasure.stores.items())
        },
        "remains": REMAINS,
    }


@router.delete("/customers/{customer_id}", status_code=202)
def erase_customer(
    request: Request, response: Response, who: EraserDep, state: StateDep, customer_id: str = Path(min_length=1, max_length=128)
) -> dict:
    """Erase the customer and its identity component from the master dataset, every view version, the
    serving store, the speed store and every cache; later events of theirs are not counted. 202: the
    purge runs on; poll the receipt (``Location``) until ``state`` is ``complete``. Asking again returns
    the same erasure (an unknown customer is erased the same way: no hint whether it existed)."""
    erasure, created = state.erasures.request(who.tenant_id, customer_id)
    if created:
        record(request, "erasure", who, target=erasure.erasure_id, identities=len(erasure.subjects))
    response.headers["Location"] = f"/v1/erasures/{erasure.erasure_id}"
    return receipt(erasure)


@router.get("/erasures/{erasure_id}")
def erasure_receipt(who: EraserDep, state: StateDep, erasure_id: str = Path(min_length=1, max_length=128)) -> dict:
    """The receipt of one of this tenant's erasures."""
    erasure = state.erasures.get(who.tenant_id, erasure_id)
    if erasure is None:
        raise HTTPException(404, "not found")
    return receipt(erasure)
