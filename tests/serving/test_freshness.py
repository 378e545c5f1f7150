"""``freshness`` formats a version's batch half once, and never serves a swapped-out version's."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from lambdalytics.serving.api.freshness import freshness

pytestmark = pytest.mark.unit


def state(manifest, lag_ms=5):
    return SimpleNamespace(
        loader=SimpleNamespace(current=lambda: SimpleNamespace(manifest=manifest)),
        speed=SimpleNamespace(status=lambda: SimpleNamespace(lag_ms=lag_ms)),
    )


def test_every_answer_after_a_swap_names_the_new_version():
    v1 = SimpleNamespace(batch_version=1, watermark_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    v2 = SimpleNamespace(batch_version=2, watermark_time=dt.datetime(2026, 1, 2, 3, tzinfo=dt.UTC))
    assert freshness(state(None))["batch_version"] == 0
    first = freshness(state(v1, lag_ms=7))
    assert (first["batch_version"], first["batch_watermark_time"], first["speed_lag_ms"]) == (
        1,
        "2026-01-01T00:00:00.000Z",
        7,
    )
    assert freshness(state(v1))["batch_version"] == 1
    swapped = freshness(state(v2, lag_ms=9))
    assert (swapped["batch_version"], swapped["batch_watermark_time"], swapped["speed_lag_ms"]) == (
        2,
        "2026-01-02T03:00:00.000Z",
        9,
    )
    assert freshness(state(v1))["batch_version"] == 1  # a worker still on the old version says so
    assert first["as_of"].endswith("Z")
