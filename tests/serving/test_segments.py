"""Traits and segments, batch ⊕ speed = truth, on the real stack: Spark batch runs over a Delta master,
the embedded speed store above W, the merger — against tests/batch/oracle.py.

Streams carry identify events whose traits change (ties in event time broken by offset), alias events
that merge ids (below and above W), duplicates, orders and sessions for two tenants, cut at random
points: a customer whose plan changes above W moves segment, a merged customer is one member under its
canonical id, and every segment's customers, sum and distinct count must equal the oracle's over the
merged customers.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.schemas.identity import MAX_COMPONENT_IDS
from lambdalytics.schemas.views import cut

from ..batch import oracle
from ..batch.test_batch_job import land
from .lambda_stack import batch_and_speed

pytestmark = pytest.mark.integration
T0 = 1_767_225_600_000
DAY = 86_400_000
PLANS = ("free", "pro", "team")

event = st.tuples(
    st.sampled_from(["a", "b"]),  # tenant
    st.integers(0, 5),  # customer
    st.sampled_from(["identify", "identify", "page_view", "order_placed", "order_paid", "alias"]),
    st.integers(0, 6),  # event time (days from T0: ties are common)
    st.sampled_from(PLANS),
    st.integers(0, 3),  # session / amount
    st.booleans(),  # re-sent later (a duplicate)
)


def _obj(i: int, tenant, customer, kind, day, plan, n) -> dict:
    obj = {
        "event_id": f"e{i}",
        "tenant_id": f"seg-{tenant}",
        "customer_id": f"c{customer}",
        "event_type": kind,
        "event_time": T0 + day * DAY,
    }
    if kind == "identify":
        obj["traits"] = {"plan": plan, "company_size": n * 10}
    elif kind == "alias":  # merges c<n> (another id of the tenant) into this customer
        obj["previous_id"] = f"c{(customer + 1 + n) % 6}"
    elif kind == "page_view":
        obj["session_id"] = f"s{n}"
    else:
        obj["order_id"] = f"o{i % 4}"
        if kind == "order_paid":
            obj |= {"amount": n + 0.5, "currency": "EUR"}
    return obj


def _rows(spec) -> list[dict]:
    objs = [_obj(i, *e[:-1]) for i, e in enumerate(spec)]
    objs += [objs[i] for i, e in enumerate(spec) if e[-1]]  # copies arrive after everything else
    offsets: dict[tuple[str, int], int] = {}
    rows = []
    for obj in objs:
        ev = validate_event(obj)
        tp = (ev.topic, zlib.crc32(ev.key) % 2)
        offsets[tp] = offsets.get(tp, -1) + 1
        rows.append(
            {
                **to_row(ev),
                "topic": tp[0],
                "partition": tp[1],
                "offset": offsets[tp],
                "broker_time": T0,
                "raw": ev.to_json(),
            }
        )
    return rows


@settings(
    max_examples=3,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # a Spark run per example: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    spec=st.lists(event, min_size=20, max_size=60),
    fraction=st.floats(0.2, 0.9),
    block=st.sampled_from([1, 3]),
)
def test_traits_and_segments_equal_the_oracle(spark, tmp_path_factory, spec, fraction, block):
    rows = _rows(spec)
    data_dir = tmp_path_factory.mktemp("segments")
    land(data_dir, rows[: int(len(rows) * fraction)], chunks=1)
    manifest, merger = batch_and_speed(spark, data_dir, rows, block)
    truth = oracle.dedup(rows, {tp: 10**9 for tp in cut({(r["topic"], r["partition"]): 0 for r in rows}, 1)})

    groups = oracle.identity_groups(truth, MAX_COMPONENT_IDS)
    merged = oracle.relabel(truth, groups)  # segments count merged customers, under their canonical id
    traits = oracle.latest_traits(merged)
    for tenant, customer in truth[["tenant_id", "customer_id"]].drop_duplicates().itertuples(index=False):
        got = merger.profile(tenant, customer)["traits"]
        assert got == traits.get((tenant, groups.get((tenant, customer), customer)), {}), (tenant, customer)
    truth = merged

    for tenant, want in oracle.segments_by_trait(truth, "plan").items():
        for metric, field, scale in (
            ("revenue", "revenue", 1e6),
            ("sessions", "sessions", 1),
            ("events_total", "events_total", 1),
        ):
            got = {
                r["segment"]: (r["customers"], r["value"])
                for r in merger.segments(tenant, "trait:plan", metric)
            }
            assert got == {
                v: (len(s["customers"]), round(s[field] / scale, 6) if scale != 1 else s[field])
                for v, s in want.items()
            }, (tenant, metric)
        days = (T0 + 2 * DAY, T0 + 5 * DAY)  # hour-aligned: the hours in range are the events in range
        ranged = oracle.segments_by_trait(truth, "plan", *days)[tenant]
        for metric, field in (
            ("revenue", "revenue"),
            ("sessions", "sessions"),
            ("events_total", "events_total"),
        ):
            got = {
                r["segment"]: (r["customers"], r["value"])
                for r in merger.segments(tenant, "trait:plan", metric, start_ms=days[0], end_ms=days[1])
            }
            assert got == {
                v: (len(s["customers"]), round(s[field] / 1e6, 6) if field == "revenue" else s[field])
                for v, s in ranged.items()
            }, (tenant, metric, "range")
        for value, seg in want.items():
            key = "" if value is None else value
            pages, cursor = [], None
            while True:
                page, cursor = merger.segment_customers(tenant, "trait:plan", key, after=cursor, limit=2)
                pages += page
                if cursor is None:
                    break
            assert pages == seg["customers"], (tenant, value)
