"""The generator is deterministic by seed, valid by contract, and injects the mess it promises."""

from __future__ import annotations

from collections import Counter

import pytest

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.schemas.events import validate_event

pytestmark = pytest.mark.unit
CFG = GeneratorConfig(seed=11, rate=2, duration_s=4 * 3600, duplicates=0.05, late=0.05)


@pytest.fixture(scope="module")
def events():
    return list(generate(CFG))


def test_same_seed_same_events_other_seed_other_events(events):
    assert list(generate(CFG)) == events
    other = list(generate(GeneratorConfig(**{**CFG.__dict__, "seed": 12})))
    assert other != events


def test_every_event_passes_the_contract(events):
    for obj in events:
        validate_event(obj)


def test_all_three_stories_and_every_family(events):
    by_tenant = Counter(e["tenant_id"] for e in events)
    assert set(by_tenant) == {"demo-food", "demo-ads", "demo-saas"}
    types = Counter(e["event_type"] for e in events)
    for needed in (
        "order_placed",
        "order_paid",
        "order_delivered",
        "ad_impression",
        "ad_click",
        "ticket_opened",
        "agent_replied",
        "ticket_resolved",
        "csat_submitted",
        "session_start",
    ):
        assert types[needed] > 0, needed
    attributed = [e for e in events if e["event_type"] == "order_placed" and e.get("campaign_id")]
    assert attributed and all(e["tenant_id"] == "demo-ads" for e in attributed)


def test_duplicates_are_identical_resends(events):
    by_id: dict[str, list[dict]] = {}
    for e in events:
        by_id.setdefault(e["event_id"], []).append(e)
    resent = [v for v in by_id.values() if len(v) > 1]
    share = sum(len(v) - 1 for v in resent) / len(events)
    assert 0.03 < share < 0.07
    assert all(all(x == v[0] for x in v) for v in resent)


def test_late_events_carry_old_event_time(events):
    """Emission order is ingestion order; a late event's time is hours behind what came before it."""
    high_water, late = 0, 0
    for e in events:
        if e["event_time"] < high_water - 3_600_000:
            late += 1
        high_water = max(high_water, e["event_time"])
    assert 0.02 < late / len(events) < 0.12


def test_entities_follow_their_lifecycle(events):
    first: dict[tuple[str, str], int] = {}
    for e in events:
        if e["event_type"] == "order_placed":
            first[("placed", e["order_id"])] = e["event_time"]
    for e in events:
        if e["event_type"] == "order_delivered" and ("placed", e["order_id"]) in first:
            assert e["event_time"] > first[("placed", e["order_id"])]


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        GeneratorConfig(rate=0)
    with pytest.raises(ValueError):
        GeneratorConfig(duplicates=1.5)
    with pytest.raises(ValueError):
        GeneratorConfig(tenants=("nope",))
