from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..deps import StateDep

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep, response: Response) -> dict:
    """Ready when the batch manifest has been read (a version loaded, or none exists yet), the speed
    store's position in every partition has reached the broker's high-water mark (from its last fetch
    responses), it is not stale, no lost range of offsets is open (reads below one fail closed until a
    batch covers it) and no supervised worker is down. ``error`` says why not; ``workers`` has each
    worker's state, restarts and last crash."""
    speed = state.speed.status()
    workers = [w.status() for w in state.workers]
    stale = state.merger.stale() if state.merger.stale else None
    checks = {
        "batch_loaded": state.loader.loaded_once and state.loader.last_error is None,
        "batch_version": state.loader.current().version,
        "speed_caught_up": speed.caught_up,
        "speed_lag_ms": speed.lag_ms,
        "speed_stale": stale,
        "speed_unassigned": [f"{t}:{p}" for t, p in speed.unassigned],
        "speed_gaps": [g.to_json() for g in speed.gaps],
        "speed_lost_offsets": speed.lost_offsets,
        "workers": {
            w.name: {"state": w.state, "restarts": w.restarts, "last_error": w.last_error} for w in workers
        },
    }
    down = [w for w in workers if w.state not in ("new", "running")]  # new: driven by hand (tests)
    reasons = [state.loader.last_error, stale] + [
        f"worker {w.name} {w.state} (last error: {w.last_error})" for w in down
    ]
    if speed.gaps:
        reasons.append(f"lost offset ranges open: {len(speed.gaps)}")
    ready = checks["batch_loaded"] and speed.caught_up and not stale and not down and not speed.gaps
    response.status_code = 200 if ready else 503
    return {"ready": ready, **checks, "error": "; ".join(r for r in reasons if r) or None}


@router.get("/v1/metrics", tags=["catalog"])
def metric_catalog(state: StateDep) -> list[dict]:
    """The metric dictionary: what each metric is (name, description, grain, formula, unit) and how to
    show it (label, short_label, series, additive, primary, headline, caption); the pages read the same.
    Registered (catalog-file) metrics are listed once this worker's speed store aggregates them."""
    return state.speed.catalog.describe()


@router.get("/metrics", include_in_schema=False)
def prometheus(state: StateDep) -> Response:
    return Response(state.telemetry.scrape(), media_type=CONTENT_TYPE_LATEST)
