"""The identity definitions: components, the canonical id of chains and merges, the cap, the contract."""

from __future__ import annotations

import random

import pytest

from lambdalytics.schemas.events import ContractViolation, validate_event
from lambdalytics.schemas.identity import MAX_COMPONENT_IDS, Alias, component_of, components

pytestmark = pytest.mark.unit


def _walk(edges):
    def edges_of(ids):
        return {e for e in edges if set(e.ids) & set(ids)}

    return edges_of


def test_a_chain_is_one_component_whose_canonical_is_the_latest_survivor():
    edges = [Alias(1, "e1", "a", "b"), Alias(2, "e2", "b", "c")]
    by_id = components(edges)
    assert {i: c.ids for i, c in by_id.items()} == dict.fromkeys("abc", ("a", "b", "c"))
    assert {c.canonical for c in by_id.values()} == {"c"}
    assert component_of("a", _walk(edges)) == by_id["a"]


def test_joining_two_components_takes_the_survivor_of_the_latest_alias():
    edges = [Alias(1, "e1", "a", "b"), Alias(2, "e2", "x", "y"), Alias(3, "e3", "y", "b")]
    assert components(edges)["x"].canonical == "b"
    # a late alias (older event time) does not move the canonical id; the event id breaks ties
    late = [*edges, Alias(0, "e0", "b", "x")]
    assert components(late)["a"].canonical == "b"
    tie = [Alias(5, "e1", "a", "b"), Alias(5, "e2", "b", "a")]
    assert components(tie)["a"].canonical == "a"


def test_an_id_without_alias_is_its_own_component():
    comp = component_of("lonely", _walk([Alias(1, "e", "a", "b")]))
    assert comp.ids == ("lonely",) and comp.canonical == "lonely" and not comp.merged


def test_a_component_over_the_cap_is_refused_whole_and_by_both_walks():
    edges = [Alias(i, f"e{i}", f"id{i}", "hub") for i in range(MAX_COMPONENT_IDS)]  # cap + 1 ids
    by_id = components(edges)
    assert all(c.refused and c.ids == (i,) and c.canonical == i for i, c in by_id.items())
    walked = component_of("id3", _walk(edges))
    assert walked.refused and walked.ids == ("id3",)
    assert not components(edges[:-1])["hub"].refused  # exactly the cap is merged


def test_components_do_not_depend_on_the_order_edges_come_in():
    rng = random.Random(7)
    edges = [
        Alias(rng.randint(0, 9), f"e{i}", f"c{rng.randint(0, 30)}", f"c{rng.randint(31, 60)}")
        for i in range(40)
    ]
    want = components(edges)
    for _ in range(5):
        rng.shuffle(edges)
        assert components(edges) == want
        assert all(component_of(i, _walk(edges)) == c for i, c in want.items())


def _alias(**over):
    return {
        "event_id": "e1",
        "tenant_id": "t",
        "customer_id": "user-1",
        "event_type": "alias",
        "event_time": 1_767_225_600_000,
        "previous_id": "anon-1",
        **over,
    }


def test_the_alias_event_contract():
    event = validate_event(_alias())
    assert event.topic == "events.behavioral" and event.previous_id == "anon-1"
    for bad, code in (
        ({"previous_id": None}, "'previous_id' is required on alias"),
        ({"previous_id": "user-1"}, "must differ"),
        ({"event_type": "page_view"}, "only allowed on alias"),
        ({"previous_id": ""}, "at least 1 character"),
    ):
        with pytest.raises(ContractViolation) as err:
            validate_event({k: v for k, v in _alias(**bad).items() if v is not None})
        assert code in err.value.message, (bad, err.value.message)
