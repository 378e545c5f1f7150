"""Live orders read only the window from the serving store, and still equal the metrics of merged orders.

No Spark: the batch side is an ``order_state`` table built into a serving store (its time index holds
the orders with a placed or delivered time within the window cap of the build), the speed side the
embedded store fed with order events above W. For any orders on both sides — open, delivered,
cancelled, milestones moved earlier by late events — and any window the API accepts, the answer must
equal the catalog's tenant metrics over every order's merged milestones; a window reaching below the
horizon (a clock in the past) is answered from every order, and equal too.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalytics.batch.writer import Manifest
from lambdalytics.schemas import aggregates
from lambdalytics.schemas.catalog import CATALOG, Grain, finalize
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.schemas.views import ENTITY_STATES, LIVE_WINDOW_CAP_MS, VIEWS
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.merge import Merger
from lambdalytics.speed.embedded import EmbeddedSpeedStore

pytestmark = pytest.mark.unit
TENANT, OTHER = "demo-food", "demo-other"
TOPIC = "events.transaction"
W = 100
HOUR = 3600 * 1000
BUILT = 1_750_000_000_000  # the store's build clock
ORDER = ENTITY_STATES["order"]
EVENT = {"placed": "order_placed", "delivered": "order_delivered", "cancelled": "order_cancelled"}

times = st.none() | st.integers(BUILT - 12 * 24 * HOUR, BUILT + 2 * 24 * HOUR)
states = st.fixed_dictionaries({m: times for m in ORDER.values})
keys = st.tuples(
    st.sampled_from([TENANT, OTHER]), st.sampled_from(["c0", "c1", "c\x00", "c"]), st.integers(0, 30)
)


def batch_index(batch: dict[tuple, dict]) -> BatchIndex:
    tables = {name: pa.table({c: pa.nulls(0) for c in view.columns}) for name, view in VIEWS.items()}
    rows = [(t, c, f"o{i}", *(s[m] for m in ORDER.values)) for (t, c, i), s in batch.items()]
    columns = list(map(list, zip(*rows, strict=True))) if rows else [[] for _ in ORDER.columns]
    types = [pa.string()] * 3 + [pa.int64()] * len(ORDER.values)
    tables[ORDER.name] = pa.table(
        {name: pa.array(col, type=t) for name, col, t in zip(ORDER.columns, columns, types, strict=True)}
    )
    manifest = Manifest(1, "run", "run", dt.datetime.now(dt.UTC), {(TOPIC, 0): W}, None, 0, 0, {})
    return BatchIndex.of_tables(manifest, tables, now_ms=BUILT)


def speed_store(speed: dict[tuple, dict]) -> EmbeddedSpeedStore:
    store = EmbeddedSpeedStore(block_size=10)
    store.move_to(TOPIC, 0, W)
    offset = W
    for (tenant, customer, i), state in sorted(speed.items(), key=repr):
        for milestone, when in state.items():
            if when is None:
                continue
            event = {
                "event_id": f"{customer}-{i}-{milestone}",
                "tenant_id": tenant,
                "customer_id": customer,
                "event_type": EVENT[milestone],
                "event_time": when,
                "order_id": f"o{i}",
            }
            store.ingest(to_row(validate_event(event)), TOPIC, 0, offset, 0)
            offset += 1
    store.drop_below({(TOPIC, 0): W})
    return store


def expected(batch, speed, tenant: str, now_ms: int, window_ms: int) -> dict:
    merged = {}
    for t, c, i in batch.keys() | speed.keys():
        if t == tenant:
            state = aggregates.merge_milestones(batch.get((t, c, i)), speed.get((t, c, i)))
            if state:
                merged[(c, i)] = state
    metrics = CATALOG.entity_metrics(Grain.tenant)["order"]
    return {
        m.name: finalize(m, m.compute(merged.values(), now_ms=now_ms, window_ms=window_ms))
        for m in metrics
        if m.public
    }


@settings(max_examples=150, deadline=None)
@given(
    batch=st.dictionaries(keys, states, max_size=25),
    speed=st.dictionaries(keys, states, max_size=10),
    after=st.integers(0, 3 * 24 * HOUR),
    window_ms=st.integers(1000, LIVE_WINDOW_CAP_MS),
)
def test_live_orders_from_the_window_equal_the_metrics_of_merged_orders(batch, speed, after, window_ms):
    now_ms = BUILT + after  # a request never has an earlier clock than the store's build
    index = batch_index(batch)
    merger = Merger(lambda: index, speed_store(speed))
    for tenant in (TENANT, OTHER, "demo-none"):
        assert merger.live_orders(tenant, window_ms, now_ms) == expected(
            batch, speed, tenant, now_ms, window_ms
        )


@settings(max_examples=50, deadline=None)
@given(batch=st.dictionaries(keys, states, max_size=25), speed=st.dictionaries(keys, states, max_size=10))
def test_a_window_below_the_horizon_is_answered_from_every_order(batch, speed):
    index = batch_index(batch)
    merger = Merger(lambda: index, speed_store(speed))
    window_ms = LIVE_WINDOW_CAP_MS
    now_ms = index.store.horizons["order"] - 1 + window_ms  # the window starts just below the horizon
    assert index.store.entities_in_window("order", TENANT, now_ms - window_ms, now_ms) is None
    assert merger.live_orders(TENANT, window_ms, now_ms) == expected(batch, speed, TENANT, now_ms, window_ms)


def test_the_time_index_holds_only_orders_within_the_cap_of_the_build():
    old, recent = BUILT - LIVE_WINDOW_CAP_MS - HOUR, BUILT + HOUR  # horizon: the build clock - the cap
    index = batch_index(
        {
            (TENANT, "c0", 1): {"placed": old, "delivered": old + HOUR // 2, "cancelled": None},
            (TENANT, "c0", 2): {"placed": old, "delivered": None, "cancelled": None},
            (TENANT, "c1", 3): {"placed": recent, "delivered": None, "cancelled": None},
            (TENANT, "c1", 4): {"placed": old, "delivered": recent, "cancelled": None},
        }
    )
    assert index.store.horizons["order"] == BUILT - LIVE_WINDOW_CAP_MS
    window = index.store.entities_in_window("order", TENANT, BUILT - LIVE_WINDOW_CAP_MS, recent)
    assert sorted(window) == [("c1", "o3"), ("c1", "o4")]
    # an old open order is still found by key when the speed side delivers it
    assert index.entity_state("order", TENANT, "c0", "o2") == {
        "placed": old,
        "delivered": None,
        "cancelled": None,
    }


near = st.none() | st.integers(BUILT - 2 * HOUR, BUILT + 2 * HOUR)  # milestones around the clock


@settings(max_examples=150, deadline=None)
@given(
    batch=st.dictionaries(keys, st.fixed_dictionaries({m: near for m in ORDER.values}), max_size=25),
    speed=st.dictionaries(keys, st.fixed_dictionaries({m: near for m in ORDER.values}), max_size=10),
    after=st.integers(0, HOUR),
    window_ms=st.integers(1000, 2 * HOUR),
    at=st.floats(0, 1),
)
def test_a_live_answer_holds_for_every_now_until_it_says(batch, speed, after, window_ms, at):
    """``live_orders_until``: the answer at now is the answer at every later now before ``until``
    (what lets the API keep it encoded), and the interval is never empty."""
    now_ms = BUILT + after
    index = batch_index(batch)
    merger = Merger(lambda: index, speed_store(speed))
    answer, until = merger.live_orders_until(TENANT, window_ms, now_ms)
    assert until > now_ms
    assert answer == expected(batch, speed, TENANT, now_ms, window_ms)
    for later in {now_ms + int((until - 1 - now_ms) * at), until - 1}:
        assert expected(batch, speed, TENANT, later, window_ms) == answer
