"""The ``freshness`` object every data answer carries."""

from __future__ import annotations

from typing import Any

from ..state import ServingState
from .params import iso, now_ms


def freshness(state: ServingState) -> dict[str, Any]:
    manifest = state.loader.current().manifest
    watermark_time = manifest.watermark_time if manifest else None
    return {
        "batch_version": manifest.batch_version if manifest else 0,
        "batch_watermark_time": iso(int(watermark_time.timestamp() * 1000)) if watermark_time else None,
        "speed_lag_ms": state.speed.status().lag_ms,
        "as_of": iso(now_ms()),
    }
