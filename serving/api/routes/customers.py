"""Customer reads: the 360 profile and one metric's time series (hot routes: polled by widgets)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from ...merge import NotFound, UnknownMetric
from ..access import READ
from ..deps import NOT_FOUND, customer_scope
from ..freshness import freshness
from ..hot import HotRoute, json_response, off_loop, param
from ..params import GRANULARITY_MS, ID_SCHEMA, choice, iso, path_id, time_range

router = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=HotRoute)
CUSTOMER = param("customer_id", "path", "The tenant's customer id.", ID_SCHEMA)
START = param("start", "query", "ISO 8601; default end - 30 days.")
END = param("end", "query", "ISO 8601; default now.")
GRANULARITY = param("granularity", "query", "Bucket width.", {"enum": ["hour", "day"], "default": "hour"})


@router.get("/{customer_id}/profile", openapi_extra=READ.openapi(parameters=[CUSTOMER]))
async def profile(request: Request) -> Response:
    """Every customer-grain metric and the RFM scores of one customer, batch ⊕ speed."""
    who = READ(request)
    customer_id = path_id(request.path_params, "customer_id")
    customer_scope(who, customer_id)
    state = request.app.state.serving
    return json_response(await off_loop(request, lambda: profile_answer(state, who.tenant_id, customer_id)))


def profile_answer(state, tenant_id: str, customer_id: str) -> dict:
    """The answer of ``GET /v1/customers/{id}/profile`` (also pushed by ``GET /v1/live/stream``).

    Of the merged customer (``schemas.identity``): ``customer_id`` is its canonical id, ``merged_ids``
    every id it merges; a read of a previous id answers the same profile with ``merged_into`` naming the
    canonical id (200 with a pointer, not a redirect: the previous id's history is part of the answer,
    and a widget holding an old id keeps working)."""
    try:
        merged = state.merger.profile(tenant_id, customer_id)
    except NotFound:
        raise NOT_FOUND from None
    who = merged.pop("identity")
    body = {"tenant_id": tenant_id, "customer_id": who["canonical"], "merged_ids": who["ids"]}
    if who["canonical"] != customer_id:
        body["merged_into"] = who["canonical"]
    if who["refused"]:
        body["identity_refused"] = who["refused"]
    return {**body, **merged, "freshness": freshness(state)}


@router.get(
    "/{customer_id}/timeseries",
    openapi_extra=READ.openapi(
        parameters=[
            CUSTOMER,
            param(
                "metric",
                "query",
                "A customer-grain count/sum metric or a derivation of them (see GET /v1/metrics).",
                required=True,
            ),
            START,
            END,
            GRANULARITY,
        ]
    ),
)
async def timeseries(request: Request) -> Response:
    """One metric of one customer per hour or day, batch ⊕ speed."""
    who = READ(request)
    customer_id = path_id(request.path_params, "customer_id")
    query = request.query_params
    metric = query.get("metric")
    if metric is None:
        raise HTTPException(422, "metric: required")
    granularity = choice(query.get("granularity"), "granularity", ("hour", "day"), "hour")
    customer_scope(who, customer_id)
    start_ms, end_ms = time_range(query.get("start"), query.get("end"))
    state = request.app.state.serving

    def answer() -> dict:
        try:
            points = state.merger.timeseries(
                who.tenant_id, customer_id, metric, start_ms, end_ms, GRANULARITY_MS[granularity]
            )
        except UnknownMetric:
            raise HTTPException(422, f"metric {metric!r} has no time series (see GET /v1/metrics)") from None
        except NotFound:
            raise NOT_FOUND from None
        return {
            "metric": metric,
            "granularity": granularity,
            "points": [{"ts": iso(ts), "value": value} for ts, value in points],
            "freshness": freshness(state),
        }

    return json_response(await off_loop(request, answer))
