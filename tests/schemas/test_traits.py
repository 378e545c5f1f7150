"""The identify contract (traits checked against their declarations) and the latest-value aggregate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdalytics.schemas import aggregates
from lambdalytics.schemas.events import ContractViolation, decode_event, to_row, validate_event
from lambdalytics.schemas.traits import TRAITS_BY_NAME, value_text

pytestmark = pytest.mark.unit


def identify(traits=None, **extra) -> dict:
    obj = {"event_id": "e1", "tenant_id": "t", "customer_id": "c", "event_type": "identify", "event_time": 5}
    if traits is not None:
        obj["traits"] = traits
    return obj | extra


def test_identify_normalises_declared_traits_into_the_row():
    event = validate_event(
        identify({"plan": "pro", "company_size": 12.5, "signed_up_at": "2026-01-01T01:00:00+01:00"})
    )
    assert event.topic == "events.behavioral"
    assert to_row(event)["traits"] == '{"plan":"pro","company_size":12.5,"signed_up_at":1767225600000}'
    assert to_row(validate_event(identify()))["traits"] is None  # traits are optional


@pytest.mark.parametrize(
    ("traits", "code"),
    [
        ({"nope": 1}, "trait_unknown"),
        ({"plan": 3}, "trait_type"),
        ({"plan": None}, "trait_type"),
        ({"plan": ""}, "trait_length"),
        ({"plan": "x" * 257}, "trait_length"),
        ({"company_size": True}, "trait_type"),
        ({"company_size": "12"}, "trait_type"),
        ({"company_size": 2**60}, "trait_type"),
        ({"signed_up_at": "yesterday"}, "trait_type"),
        ({"signed_up_at": 1.5}, "trait_type"),
    ],
)
def test_bad_traits_are_refused_with_their_code(traits, code):
    with pytest.raises(ContractViolation) as err:
        validate_event(identify(traits))
    assert err.value.reason == "contract_violation"
    assert [e["type"] for e in err.value.errors] == [code]


def test_a_bad_trait_on_kafka_is_a_contract_violation_the_archiver_dead_letters():
    event = validate_event(identify({"plan": "pro"}))
    bad = event.to_json().replace(b'"pro"', b"7")
    with pytest.raises(ContractViolation) as err:
        decode_event("events.behavioral", bad, event.key)
    assert err.value.reason == "contract_violation" and err.value.errors[0]["type"] == "trait_type"


def test_traits_only_on_identify():
    with pytest.raises(ContractViolation, match="only allowed on identify"):
        validate_event(identify({"plan": "pro"}, event_type="page_view"))


def test_value_text_reads_back_as_the_value():
    for name, value in (
        ("plan", "pro"),
        ("company_size", 12.5),
        ("company_size", 7),
        ("signed_up_at", 1767225600000),
    ):
        assert TRAITS_BY_NAME[name].value(value_text(value)) == value


states = st.none() | st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from("abc"))


def _consistent(xs):
    """One (event_time, offset) is one event: it has one value."""
    seen = {}
    return all(seen.setdefault(x[:2], x[2]) == x[2] for x in xs if x is not None)


@given(st.lists(states, max_size=8).filter(_consistent), st.randoms())
def test_latest_is_a_commutative_monoid_and_picks_the_greatest_time_then_offset(xs, rnd):
    def fold(items):
        out = None
        for x in items:
            out = aggregates.latest(out, x)
        return out

    shuffled = xs[:]
    rnd.shuffle(shuffled)
    cut = rnd.randint(0, len(xs))
    assert fold(shuffled) == fold(xs) == aggregates.latest(fold(xs[:cut]), fold(xs[cut:]))
    present = [x for x in xs if x is not None]
    assert fold(xs) == (max(present, key=lambda x: x[:2]) if present else None)
