"""The ``freshness`` object every data answer carries."""

from __future__ import annotations

from typing import Any

from ..state import ServingState
from .params import iso, now_ms

_batch_of: tuple[object, dict[str, Any]] = (object(), {})
"""(manifest, its batch half): formatted once per version, not per request (a hot-route cost)."""


def _batch_half(manifest) -> dict[str, Any]:
    global _batch_of
    seen, half = _batch_of
    if seen is manifest:
        return half
    watermark_time = manifest.watermark_time if manifest else None
    half = {
        "batch_version": manifest.batch_version if manifest else 0,
        "batch_watermark_time": iso(int(watermark_time.timestamp() * 1000)) if watermark_time else None,
    }
    _batch_of = (manifest, half)  # one tuple: threads see the old pair or the new one, never a mix
    return half


def freshness(state: ServingState) -> dict[str, Any]:
    return {
        **_batch_half(state.loader.current().manifest),
        "speed_lag_ms": state.speed.status().lag_ms,
        "as_of": iso(now_ms()),
    }
