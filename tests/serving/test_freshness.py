"""``freshness`` formats a version's batch half once, and never serves a swapped-out version's; its
encoded form (``freshness_json``, spliced into cached answers) is byte for byte its ``orjson`` encoding."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdalytics.serving.api import freshness as module
from lambdalytics.serving.api.freshness import as_of, freshness, freshness_json
from lambdalytics.serving.api.params import iso

pytestmark = pytest.mark.unit


def state(manifest, lag_ms=5):
    return SimpleNamespace(
        loader=SimpleNamespace(current=lambda: SimpleNamespace(manifest=manifest)),
        speed=SimpleNamespace(lag_ms=lambda: lag_ms),
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


@given(st.lists(st.integers(0, 4_102_444_800_000), min_size=1, max_size=20))
def test_as_of_formats_like_iso_whatever_second_came_before(times):
    for ms in (*times, *(t + 1 for t in times), *sorted(times)):
        assert as_of(ms) == iso(ms)


def test_the_encoded_freshness_is_the_encoding_of_the_dict(monkeypatch):
    v1 = SimpleNamespace(batch_version=3, watermark_time=dt.datetime(2026, 5, 1, 1, 2, 3, tzinfo=dt.UTC))
    monkeypatch.setattr(module, "now_ms", lambda: 1_780_000_000_123)
    for manifest, lag in ((None, 0), (v1, 12), (v1, 12_345), (None, 7)):
        assert freshness_json(state(manifest, lag)) == orjson.dumps(freshness(state(manifest, lag)))
