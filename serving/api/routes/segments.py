"""Segments of the tenant's customers (by a trait, the RFM segment or the order cohort), a metric per
segment, and the customers of one segment, paged (a hot route: polled by the dashboard's panel)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from lambdalytics.schemas.segments import SEGMENTATIONS, UnknownSegmentation, UnsegmentableMetric

from ..access import READ_SEGMENTS
from ..answers import encoded
from ..freshness import freshness
from ..hot import HotRoute, json_response, off_loop, param, with_freshness
from ..params import iso, parse_time

router = APIRouter(prefix="/v1", tags=["segments"], route_class=HotRoute)

PAGE = 50
MAX_PAGE = 500
BY = param(
    "by",
    "query",
    "trait:<name>, rfm_segment or cohort",
    {"type": "string", "enum": list(SEGMENTATIONS)},
    required=True,
)


def _by(request: Request) -> str:
    by = request.query_params.get("by")
    if by is None:
        raise HTTPException(422, "by: required")
    if by not in SEGMENTATIONS:
        raise HTTPException(422, f"by: one of {', '.join(SEGMENTATIONS)}")
    return by


def _range(request: Request) -> tuple[int | None, int | None]:
    """``start``/``end`` (each optional: unbounded on that side), or 422 unless start is before end."""
    query = request.query_params
    start = None if query.get("start") is None else parse_time(query["start"], "start", 0)
    end = None if query.get("end") is None else parse_time(query["end"], "end", 0)
    if start is not None and end is not None and start >= end:
        raise HTTPException(422, "start must be before end")
    return start, end


@router.get(
    "/segments",
    openapi_extra=READ_SEGMENTS.openapi(
        parameters=[
            BY,
            param(
                "metric",
                "query",
                "A customer count, sum or distinct count, or a metric derived from them.",
                required=True,
            ),
            param("start", "query", "ISO 8601: the metric over hours from here (default: unbounded)."),
            param("end", "query", "ISO 8601: the metric over hours before this (default: unbounded)."),
        ]
    ),
)
async def segments(request: Request) -> Response:
    """Per segment value: its customers and the metric summed (or distinct-counted) over them."""
    who = READ_SEGMENTS(request)
    by = _by(request)
    metric = request.query_params.get("metric")
    if metric is None:
        raise HTTPException(422, "metric: required")
    start_ms, end_ms = _range(request)
    state = request.app.state.serving

    def answer() -> dict:
        try:
            rows = state.merger.segments(who.tenant_id, by, metric, start_ms=start_ms, end_ms=end_ms)
        except (UnknownSegmentation, UnsegmentableMetric) as exc:
            raise HTTPException(422, str(exc)) from None
        out = {"by": by, "metric": metric, "segments": rows}
        if start_ms is not None or end_ms is not None:
            out |= {"start": iso(start_ms), "end": iso(end_ms)}
        return out

    # kept encoded between polls like the other tenant-level answers (a ranged answer reads every member)
    key = ("segments", by, metric, start_ms, end_ms)
    head = await off_loop(request, lambda: encoded(state, who.tenant_id, key, answer))
    return with_freshness(head, state)


@router.get(
    "/segments/customers",
    openapi_extra=READ_SEGMENTS.openapi(
        parameters=[
            BY,
            param(
                "value",
                "query",
                "The segment's key (as GET /v1/segments returns it; empty: no value)",
                {"type": "string", "maxLength": 256},
                required=True,
            ),
            param(
                "cursor", "query", "next_cursor of the previous page", {"type": "string", "maxLength": 128}
            ),
            param(
                "limit",
                "query",
                f"Page size, 1 to {MAX_PAGE} (default {PAGE})",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            ),
        ]
    ),
)
async def segment_customers(request: Request) -> Response:
    """The customers of one segment in id order, a page at a time."""
    who = READ_SEGMENTS(request)
    by = _by(request)
    query = request.query_params
    value = query.get("value")
    if value is None or len(value) > 256:
        raise HTTPException(422, "value: required, at most 256 characters")
    cursor = query.get("cursor") or None
    if cursor is not None and len(cursor) > 128:
        raise HTTPException(422, "cursor: at most 128 characters")
    raw_limit = query.get("limit", str(PAGE))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise HTTPException(422, f"limit: an integer from 1 to {MAX_PAGE}")
    state = request.app.state.serving

    def answer() -> dict:
        page, next_cursor = state.merger.segment_customers(
            who.tenant_id, by, value, after=cursor, limit=int(raw_limit)
        )
        return {
            "by": by,
            "value": value,
            "customers": page,
            "next_cursor": next_cursor,
            "freshness": freshness(state),
        }

    return json_response(await off_loop(request, answer))
