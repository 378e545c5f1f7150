from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from lambdalytics.schemas.catalog import CATALOG

from ..deps import StateDep

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep, response: Response) -> dict:
    """Ready when the batch manifest has been read (a version loaded, or none exists yet), the speed
    store's position in every partition has reached the broker's high-water mark (from its last fetch
    responses), and no lost range of offsets is open (reads below one fail closed until a batch covers it)."""
    speed = state.speed.status()
    checks = {
        "batch_loaded": state.loader.loaded_once and state.loader.last_error is None,
        "batch_version": state.loader.current().version,
        "speed_caught_up": speed.caught_up,
        "speed_lag_ms": speed.lag_ms,
        "speed_unassigned": [f"{t}:{p}" for t, p in speed.unassigned],
        "speed_gaps": [g.to_json() for g in speed.gaps],
        "speed_lost_offsets": speed.lost_offsets,
    }
    ready = checks["batch_loaded"] and checks["speed_caught_up"] and not speed.gaps
    response.status_code = 200 if ready else 503
    return {"ready": ready, **checks, "error": state.loader.last_error}


@router.get("/v1/metrics", tags=["catalog"])
def metric_catalog() -> list[dict]:
    """The metric dictionary: what each metric is (name, description, grain, formula, unit) and how to
    show it (label, short_label, series, additive, primary, headline, caption); the pages read the same."""
    return CATALOG.describe()


@router.get("/metrics", include_in_schema=False)
def prometheus(state: StateDep) -> Response:
    return Response(state.telemetry.scrape(), media_type=CONTENT_TYPE_LATEST)
