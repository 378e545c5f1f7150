"""The serving store: tenant-first keys that never leak between ids, ranges that are exactly the range,
files that are complete or absent, rebuilt from Delta when missing or of another layout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalytics.infra import serving_store
from lambdalytics.infra.serving_store import ServingStore, StoreBroken, build, remove_below, store_path
from lambdalytics.schemas.views import (
    CAMPAIGN_STATS,
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    ENTITY_STATES,
    LIVE_WINDOW_CAP_MS,
    VIEWS,
)
from lambdalytics.serving.index import BatchIndex

pytestmark = pytest.mark.unit

ids = st.sampled_from(["a", "a\x00", "a\x00b", "ab", "", "\x00", "b"])


def tables(**given: pa.Table) -> dict[str, pa.Table]:
    out = {name: pa.table({c: pa.nulls(0) for c in view.columns}) for name, view in VIEWS.items()}
    return out | given


def series(rows: list[tuple[str, str, int, int]]) -> pa.Table:
    names = CUSTOMER_TIMESERIES.columns
    cols = {n: pa.array([r[0] for r in rows], pa.string()) for n in names[:2]}
    cols[names[1]] = pa.array([r[1] for r in rows], pa.string())
    cols[names[2]] = pa.array([r[2] for r in rows], pa.int64())
    for n in names[3:]:
        cols[n] = pa.array([r[3] for r in rows], pa.int64())
    return pa.table(cols)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.dictionaries(st.tuples(ids, ids, st.integers(-(2**40), 2**40)), st.integers(0, 9), max_size=30),
    start=st.integers(-(2**41), 2**41),
    span=st.integers(0, 2**42),
)
def test_hours_are_exactly_one_customers_range(tmp_path_factory, rows, start, span):
    path = build(
        tmp_path_factory.mktemp("s") / "s.lmdb",
        tables(customer_timeseries=series([(*k, v) for k, v in rows.items()])),
        now_ms=0,
    )
    store = ServingStore(path)
    for tenant in ("a", "a\x00", "b"):
        for customer in ("a", "a\x00", "a\x00b", "ab", "", "\x00"):
            got = store.customer_hours(tenant, customer, start, start + span)
            want = {
                h: v
                for (t, c, h), v in rows.items()
                if (t, c) == (tenant, customer) and start <= h < start + span
            }
            assert {h: p["orders"] for h, p in got.items()} == want


def test_profiles_and_campaigns_are_keyed_tenant_first(tmp_path):
    names = CUSTOMER_PROFILE.columns
    profile = pa.table(
        {
            n: pa.array(
                ["t1", "t2"] if i == 0 else ["c", "c"] if i == 1 else [i, i + 100],
                pa.int64() if i > 1 else pa.string(),
            )
            for i, n in enumerate(names)
        }
    )
    camp = pa.table(
        {
            "tenant_id": pa.array(["t1"], pa.string()),
            "campaign_id": pa.array(["k"], pa.string()),
            "hour": pa.array([3600_000], pa.int64()),
            **{n: pa.array([7], pa.int64()) for n in CAMPAIGN_STATS.values},
        }
    )
    store = ServingStore(
        build(tmp_path / "s.lmdb", tables(customer_profile=profile, campaign_stats=camp), now_ms=0)
    )
    assert store.profile("t1", "c")["events_total"] == 2 and store.profile("t2", "c")["events_total"] == 102
    assert store.profile("t3", "c") is None
    assert (
        store.has_campaign("t1", "k")
        and not store.has_campaign("t2", "k")
        and not store.has_campaign("t1", "")
    )
    assert store.campaign_hours("t1", "k", 0, 2**62) == {3600_000: {n: 7 for n in CAMPAIGN_STATS.values}}
    assert sorted(store.customers()) == [("t1", "c"), ("t2", "c")]
    assert list(tmp_path.iterdir()) == [tmp_path / "s.lmdb"]  # no temporary file, no lock file left


def test_a_missing_or_foreign_store_is_rebuilt_from_the_delta_views(tmp_path):
    reads = []

    class Table:
        def __init__(self, name):
            self.name = name

        def to_pyarrow_table(self):
            reads.append(self.name)
            return tables(customer_timeseries=series([("t", "c", 0, 1)]))[self.name]

    manifest = SimpleNamespace(
        batch_version=3, watermark={}, views=dict.fromkeys(VIEWS, 0), table=lambda data_dir, name: Table(name)
    )
    index = BatchIndex.load(tmp_path, manifest)
    assert index.customer_hours("t", "c", 0, 1)[0]["orders"] == 1 and sorted(reads) == sorted(VIEWS)
    reads.clear()
    assert (
        BatchIndex.load(tmp_path, manifest).customer_hours("t", "c", 0, 1) and not reads
    )  # opened, not rebuilt
    del index
    store_path(tmp_path, 3).write_bytes(b"not an lmdb file" * 512)
    with pytest.raises(StoreBroken):
        ServingStore(store_path(tmp_path, 3))
    assert BatchIndex.load(tmp_path, manifest).customer_hours("t", "c", 0, 1)[0]["orders"] == 1 and reads


def test_older_versions_are_removed_newer_ones_kept(tmp_path: Path):
    for v in (1, 2, 3, 4):
        build(store_path(tmp_path, v), tables(), now_ms=0)
    assert remove_below(tmp_path, 3) == [1, 2]
    assert sorted(p.name for p in store_path(tmp_path, 3).parent.iterdir()) == [
        store_path(tmp_path, 3).name,
        store_path(tmp_path, 4).name,
    ]


def profiles(rows: list[tuple[str, str, int]]) -> pa.Table:
    names = CUSTOMER_PROFILE.columns
    cols = {
        names[0]: pa.array([r[0] for r in rows], pa.string()),
        names[1]: pa.array([r[1] for r in rows], pa.string()),
    }
    for i, n in enumerate(names[2:]):
        cols[n] = pa.array([r[2] + i for r in rows], pa.int64())
    return pa.table(cols)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.dictionaries(st.tuples(ids, st.text(max_size=4)), st.integers(-(2**62), 2**62), max_size=40),
    chunk=st.integers(1, 7),
)
def test_rows_in_any_order_are_written_in_key_order_across_chunks(
    tmp_path_factory, monkeypatch_module, rows, chunk
):
    monkeypatch_module.setattr(serving_store, "_CHUNK", chunk)
    shuffled = [(t, c, v) for (t, c), v in reversed(list(rows.items()))]
    store = ServingStore(
        build(tmp_path_factory.mktemp("s") / "s.lmdb", tables(customer_profile=profiles(shuffled)), now_ms=0)
    )
    assert list(store.customers()) == sorted(rows, key=lambda k: (k[0].encode(), k[1].encode()))
    for (t, c), v in rows.items():
        assert store.profile(t, c)["events_total"] == v


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ([("t", None, 1)], "key column 'customer_id' holds 1 nulls"),
        ([("t", "c", 1), ("t", "c", 2)], "customer_profile holds 1 duplicate keys"),
    ],
)
def test_a_view_the_store_cannot_key_is_refused_and_leaves_no_file(tmp_path, rows, error):
    with pytest.raises(ValueError, match=error):
        build(tmp_path / "s.lmdb", tables(customer_profile=profiles(rows)), now_ms=0)
    assert list(tmp_path.iterdir()) == []


def test_an_order_placed_and_delivered_at_once_is_in_the_live_window_once(tmp_path):
    order = ENTITY_STATES["order"]
    hour = 3600_000
    state = pa.table(
        {
            "tenant_id": pa.array(["t"] * 3),
            "customer_id": pa.array(["c", "c", "d"]),
            "order_id": pa.array(["o1", "o2", "o3"]),
            "placed": pa.array([10 * hour, 10 * hour, 11 * hour - LIVE_WINDOW_CAP_MS - 1], pa.int64()),
            "delivered": pa.array([10 * hour, 11 * hour, None], pa.int64()),
            "cancelled": pa.nulls(3, pa.int64()),
        }
    ).select(list(order.columns))
    store = ServingStore(build(tmp_path / "s.lmdb", tables(order_state=state), now_ms=12 * hour))
    assert store.horizons["order"] == 11 * hour - LIVE_WINDOW_CAP_MS
    start = store.horizons["order"]
    assert sorted(store.entities_in_window("order", "t", start, 12 * hour)) == [("c", "o1"), ("c", "o2")]
    assert len(list(store._scan("order_window", b"", b"\xff"))) == 3  # o1 once, o2 placed + delivered
    assert store.entities_in_window("order", "t", start - 1, 12 * hour) is None
