"""Query parameter parsing shared by the routes (timestamps, windows, granularity)."""

from __future__ import annotations

import datetime as dt
import re
import time

from fastapi import HTTPException

from lambdalytics.schemas.catalog import HOUR_MS
from lambdalytics.schemas.views import LIVE_WINDOW_CAP_MS

DAY_MS = 24 * HOUR_MS
MAX_RANGE_MS = 400 * DAY_MS
GRANULARITY_MS = {"hour": HOUR_MS, "day": DAY_MS}
_WINDOW = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MIN_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)
MAX_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)
ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 128}


def path_id(path_params: dict[str, str], name: str) -> str:
    value = path_params[name]
    if not 1 <= len(value) <= 128:
        raise HTTPException(422, f"{name}: 1 to 128 characters")
    return value


def choice(value: str | None, name: str, options: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in options:
        raise HTTPException(422, f"{name}: one of {', '.join(options)}")
    return value


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def parse_time(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: not an ISO 8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:  # 0001-01-01T00:00+01:00 is in year 0 in UTC, 9999-12-31T23:59-01:00 in year 10000
        utc = parsed.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_TIME <= utc <= MAX_TIME:
        raise HTTPException(422, f"{name}: outside years 1 to 9999 in UTC: {value[:40]!r}")
    return int(utc.timestamp() * 1000)


def time_range(start: str | None, end: str | None, default_days: int = 30) -> tuple[int, int]:
    end_ms = parse_time(end, "end", now_ms())
    start_ms = parse_time(start, "start", end_ms - default_days * DAY_MS)
    if start_ms >= end_ms:
        raise HTTPException(422, "start must be before end")
    if end_ms - start_ms > MAX_RANGE_MS:
        raise HTTPException(422, "range longer than 400 days")
    return start_ms, end_ms


def window_seconds(value: str, *, cap_days: int = LIVE_WINDOW_CAP_MS // DAY_MS) -> int:
    match = _WINDOW.match(value)
    if not match:
        raise HTTPException(422, "window: use a number with s, m, h or d (e.g. 30m)")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if not 1 <= seconds <= cap_days * 86400:
        raise HTTPException(422, f"window: between 1s and {cap_days}d")
    return seconds


def month_of(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    ms = parse_time(value if "T" in value or len(value) > 7 else value + "-01", name, 0)
    d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return (d.year - 1970) * 12 + d.month - 1
