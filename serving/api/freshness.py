"""The ``freshness`` object every data answer carries, as a dict or as its encoded bytes.

Its batch half is formatted once per batch version, its ``as_of`` second once per second and the speed
lag read without a full status (``SpeedStore.lag_ms``): a hot-route cost paid per request otherwise.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..state import ServingState
from .params import iso, now_ms

_batch_of: tuple[object, dict[str, Any], bytes] = (object(), {}, b"")
"""(manifest, its batch half, that half encoded without its closing brace), per version."""
_second_of: tuple[int, str] = (-1, "")
"""(a second since the epoch, its ISO text without the milliseconds)."""


def _batch_half(manifest) -> tuple[dict[str, Any], bytes]:
    global _batch_of
    seen, half, encoded = _batch_of
    if seen is manifest:
        return half, encoded
    watermark_time = manifest.watermark_time if manifest else None
    half = {
        "batch_version": manifest.batch_version if manifest else 0,
        "batch_watermark_time": iso(int(watermark_time.timestamp() * 1000)) if watermark_time else None,
    }
    encoded = orjson.dumps(half)[:-1]
    _batch_of = (manifest, half, encoded)  # one tuple: threads see the old one or the new one, never a mix
    return half, encoded


def as_of(ms: int) -> str:
    """``iso(ms)``, its second formatted once per second."""
    global _second_of
    second, milli = divmod(ms, 1000)
    seen, text = _second_of
    if seen != second:
        text = iso(second * 1000).removesuffix(".000Z")
        _second_of = (second, text)
    return f"{text}.{milli:03d}Z"


def freshness(state: ServingState) -> dict[str, Any]:
    half, _ = _batch_half(state.loader.current().manifest)
    return {**half, "speed_lag_ms": state.speed.lag_ms(), "as_of": as_of(now_ms())}


def freshness_json(state: ServingState) -> bytes:
    """``orjson.dumps(freshness(state))``, from the version's pre-encoded batch half."""
    _, encoded = _batch_half(state.loader.current().manifest)
    return b'%s,"speed_lag_ms":%d,"as_of":"%s"}' % (encoded, state.speed.lag_ms(), as_of(now_ms()).encode())
