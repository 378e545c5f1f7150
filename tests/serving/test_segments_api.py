"""GET /v1/segments and /v1/segments/customers through the app: answers, paging, validation, access.

No batch version yet, so the speed store answers for everything (the batch ⊕ speed correction is
tests/serving/test_segments.py); a trait set again moves its customer between segments.
"""

from __future__ import annotations

import pytest

from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .apps import bearer, embed_token, serving_app

pytestmark = pytest.mark.unit
T0 = 1_767_225_600_000


class Feed:
    def __init__(self, store: EmbeddedSpeedStore):
        self.store, self.offset, self.offsets = store, 0, {}

    def __call__(self, tenant: str, customer: str, event_type: str, **fields) -> None:
        e = validate_event(
            {
                "event_id": f"{tenant}-{self.offset}",
                "tenant_id": tenant,
                "customer_id": customer,
                "event_type": event_type,
                "event_time": T0 + self.offset,
                **fields,
            }
        )
        position = self.offsets[e.topic] = self.offsets.get(e.topic, -1) + 1  # each partition from 0
        self.store.ingest(to_row(e), e.topic, 0, position, T0)
        self.offset += 1


@pytest.fixture
def world(tmp_path):
    store = EmbeddedSpeedStore(block_size=10)
    feed = Feed(store)
    for i, plan in enumerate(["pro", "pro", "free", "team", "pro"]):
        feed("alpha", f"c{i}", "identify", traits={"plan": plan, "company_size": 10 * i})
        feed("alpha", f"c{i}", "order_paid", order_id=f"o{i}", amount=i + 1, currency="EUR")
    feed("alpha", "c9", "page_view", session_id="s")  # never identified: the null segment
    feed("beta", "b1", "identify", traits={"plan": "pro"})
    client, keys, _ = serving_app(tmp_path, store, ("alpha", "beta"))
    return client, keys, feed


def segments(client, key, **params):
    r = client.get("/v1/segments", params=params, headers=bearer(key))
    assert r.status_code == 200, r.text
    return {row["segment"]: (row["customers"], row["value"]) for row in r.json()["segments"]}


def test_segments_by_trait_with_a_sum_and_a_move(world):
    client, keys, feed = world
    assert segments(client, keys["alpha"], by="trait:plan", metric="revenue") == {
        "pro": (3, 1 + 2 + 5),
        "free": (1, 3),
        "team": (1, 4),
        None: (1, 0),
    }
    feed("alpha", "c2", "identify", traits={"plan": "pro"})  # c2 upgrades: it moves with its revenue
    assert segments(client, keys["alpha"], by="trait:plan", metric="revenue") == {
        "pro": (4, 11),
        "team": (1, 4),
        None: (1, 0),
    }
    assert segments(client, keys["beta"], by="trait:plan", metric="events_total") == {"pro": (1, 1)}


def test_number_traits_segment_by_value_and_derived_metrics_add_up(world):
    client, keys, _ = world
    got = segments(client, keys["alpha"], by="trait:company_size", metric="avg_order_value")
    assert got == {0: (1, 1.0), 10: (1, 2.0), 20: (1, 3.0), 30: (1, 4.0), 40: (1, 5.0), None: (1, None)}


def test_drill_down_pages_through_one_segment(world):
    client, keys, _ = world
    seen, cursor = [], None
    while True:
        params = {"by": "trait:plan", "value": "pro", "limit": 2} | ({"cursor": cursor} if cursor else {})
        r = client.get("/v1/segments/customers", params=params, headers=bearer(keys["alpha"]))
        assert r.status_code == 200, r.text
        seen += r.json()["customers"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["c0", "c1", "c4"]
    r = client.get(
        "/v1/segments/customers", params={"by": "trait:plan", "value": ""}, headers=bearer(keys["alpha"])
    )
    assert r.json()["customers"] == ["c9"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"metric": "revenue"}, "by: required"),
        ({"by": "trait:nope", "metric": "revenue"}, "by: one of"),
        ({"by": "cohort"}, "metric: required"),
        ({"by": "cohort", "metric": "first_seen"}, "add up over a segment"),
        ({"by": "cohort", "metric": "ctr"}, "not a public customer metric"),
    ],
)
def test_bad_parameters_are_422_with_the_reason(world, params, fragment):
    client, keys, _ = world
    r = client.get("/v1/segments", params=params, headers=bearer(keys["alpha"]))
    assert r.status_code == 422 and fragment in r.text


def test_an_embed_token_cannot_list_segments(world):
    client, keys, _ = world
    token = embed_token(client, keys["alpha"], "c0")
    for path, params in (
        ("/v1/segments", {"by": "trait:plan", "metric": "revenue"}),
        ("/v1/segments/customers", {"by": "trait:plan", "value": "pro"}),
    ):
        assert client.get(path, params=params, headers=bearer(token)).status_code == 403


def test_the_profile_shows_latest_traits(world):
    client, keys, feed = world
    feed("alpha", "c1", "identify", traits={"signed_up_at": "2026-01-02T00:00:00Z"})
    r = client.get("/v1/customers/c1/profile", headers=bearer(keys["alpha"]))
    assert r.json()["traits"] == {
        "company_size": 10,
        "plan": "pro",
        "signed_up_at": "2026-01-02T00:00:00.000Z",
    }


def test_start_and_end_restrict_the_metric_not_the_segments(world):
    client, keys, feed = world
    hour = 3_600_000
    feed("alpha", "c0", "order_paid", order_id="late", amount=100, currency="EUR", event_time=T0 + 5 * hour)
    feed("alpha", "c1", "page_view", session_id="s1", event_time=T0 + 6 * hour)
    feed("alpha", "c4", "page_view", session_id="s1", event_time=T0 + 6 * hour)
    later = {"start": "2026-01-01T05:00:00Z"}
    assert segments(client, keys["alpha"], by="trait:plan", metric="revenue", **later) == {
        "pro": (3, 100),  # c0's order at +5 h only; the members stay those of all time
        "free": (1, 0),
        "team": (1, 0),
        None: (1, 0),
    }
    assert segments(client, keys["alpha"], by="trait:plan", metric="sessions", **later)["pro"] == (3, 1)
    first_hour = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}
    assert segments(client, keys["alpha"], by="trait:plan", metric="revenue", **first_hour)["pro"] == (3, 8)
    r = client.get(
        "/v1/segments",
        params={"by": "trait:plan", "metric": "revenue", "end": "2026-01-01T05:00:00Z"},
        headers=bearer(keys["alpha"]),
    )
    assert r.json()["start"] is None and r.json()["end"] == "2026-01-01T05:00:00.000Z"
    assert {row["segment"]: row["value"] for row in r.json()["segments"]}["pro"] == 8


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"start": "2026-01-02", "end": "2026-01-01"}, "start must be before end"),
        ({"start": "2026-01-01", "end": "2026-01-01"}, "start must be before end"),
        ({"start": "yesterday"}, "start: not an ISO 8601 timestamp"),
        ({"end": "10000-01-01"}, "end: not an ISO 8601"),
    ],
)
def test_bad_ranges_are_422_with_the_reason(world, params, fragment):
    client, keys, _ = world
    r = client.get(
        "/v1/segments",
        params={"by": "trait:plan", "metric": "revenue", **params},
        headers=bearer(keys["alpha"]),
    )
    assert r.status_code == 422 and fragment in r.text, r.text


def test_a_merged_customer_is_one_member_under_its_canonical_id(world):
    client, keys, feed = world
    feed("alpha", "c0", "alias", previous_id="c9")  # c9 (never identified) is c0 now
    feed("alpha", "c3", "alias", previous_id="c1")  # c1 (pro) joins c3 (team): c3's plan is the latest
    assert segments(client, keys["alpha"], by="trait:plan", metric="events_total") == {
        "pro": (2, 2 + 1 + 2 + 1),  # c0 with c9's page view and the alias, c4
        "free": (1, 2),
        "team": (1, 2 + 2 + 1),  # c3 with c1's events and the alias
    }
    r = client.get(
        "/v1/segments/customers", params={"by": "trait:plan", "value": "pro"}, headers=bearer(keys["alpha"])
    )
    assert r.json()["customers"] == ["c0", "c4"]
    r = client.get(
        "/v1/segments/customers", params={"by": "trait:plan", "value": ""}, headers=bearer(keys["alpha"])
    )
    assert r.json()["customers"] == []
