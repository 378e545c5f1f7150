"""Identity merges are exact at every cut: random streams with aliases, real Spark batch runs, the merger.

Each example draws events for a handful of ids (known customers and anonymous ones) with aliases between
them — chains, merges of two components, aliases before and after the cut, late events of a previous
id after its alias, re-sent copies of events and of aliases — and a component cap. A prefix is archived
and batched (sometimes in two runs, the second an incremental fold), the embedded speed store consumes
the whole stream, and every answer about every id equals the oracle: the deduplicated events of each
merged customer, relabelled to its canonical id by an independent union-find (``tests/batch/oracle.py``).
"""

from __future__ import annotations

import zlib

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.batch.job import run_batch
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas import identity
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.merge import Merger, NotFound
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from ..batch import oracle
from ..batch.test_batch_job import land
from .test_merge_invariant import _batch_cuts, _truth_rfm

pytestmark = pytest.mark.integration

TENANT = "t"
IDS = [f"user-{i}" for i in range(5)] + [f"anon-{i}" for i in range(3)]
START = 1_767_225_600_000  # 2026-01-01
HOUR = 3_600_000
DAY = 24 * HOUR
PARTITIONS = 2

_ids = st.integers(0, len(IDS) - 1)
_hour = st.integers(0, 80 * 24)  # about three months: several cohorts
_op = st.one_of(
    st.tuples(st.sampled_from(["page_view", "order_placed", "order_paid"]), _ids, _hour),
    st.tuples(st.just("alias"), st.tuples(_ids, _ids).filter(lambda p: p[0] != p[1]), _hour),
    st.tuples(st.just("again"), st.integers(0, 10**6), st.just(0)),  # re-send an earlier event
)


def _event(n: int, kind: str, who, hour: int) -> dict:
    base = {"event_id": f"e{n}", "tenant_id": TENANT, "event_type": kind, "event_time": START + hour * HOUR}
    if kind == "alias":
        previous, survivor = who
        return {**base, "customer_id": IDS[survivor], "previous_id": IDS[previous]}
    base["customer_id"] = IDS[who]
    if kind == "page_view":
        return {**base, "session_id": f"s{n % 3}"}
    if kind == "order_placed":
        return {**base, "order_id": f"o{n}"}
    return {**base, "order_id": f"o{n}", "amount": 12.5 + n, "currency": "EUR"}


def _rows(ops) -> list[dict]:
    """Master rows at made-up positions (a key's copies share its partition, in arrival order)."""
    events, rows, offsets, clock = [], [], {}, START
    for n, (kind, who, hour) in enumerate(ops):
        if kind == "again":
            if not events:
                continue
            obj = events[who % len(events)]
        else:
            obj = _event(n, kind, who, hour)
            events.append(obj)
        event = validate_event(obj)
        tp = (event.topic, zlib.crc32(event.key) % PARTITIONS)
        offsets[tp] = offsets.get(tp, -1) + 1
        clock += 60_000
        rows.append(
            {
                **to_row(event),
                "topic": tp[0],
                "partition": tp[1],
                "offset": offsets[tp],
                "broker_time": clock,
                "raw": event.to_json(),
            }
        )
    return rows


def _ingest(store: EmbeddedSpeedStore, rows: list[dict]) -> None:
    for r in rows:
        row = {k: r[k] for k in r if k not in ("topic", "partition", "offset", "broker_time", "raw")}
        store.ingest(row, r["topic"], r["partition"], r["offset"], r["broker_time"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory


@pytest.mark.timeout(900)  # a few Spark runs per example on a shared box
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(_op, min_size=25, max_size=60),
    cuts=st.lists(st.floats(0.1, 0.95), min_size=1, max_size=2).map(sorted),
    block=st.sampled_from([1, 3]),
    cap=st.sampled_from([2, 3, 64]),
)
def test_every_answer_about_every_id_is_its_merged_customers(
    spark, workdir, monkeypatch, ops, cuts, block, cap
):
    monkeypatch.setattr(identity, "MAX_COMPONENT_IDS", cap)
    rows = _rows(ops)
    data_dir = workdir.mktemp("identity")
    landed = 0
    for fraction in cuts:  # a second cut is an incremental run folding into the first
        upto = max(landed, int(len(rows) * fraction))
        land(data_dir, rows[landed:upto], chunks=1)
        landed = upto
        manifest = run_batch(Settings(data_dir=data_dir, block_size=block), spark=spark, show_progress=False)
    index = BatchIndex.load(data_dir, manifest) if manifest else BatchIndex.empty()
    store = EmbeddedSpeedStore(block_size=block)
    _ingest(store, rows)
    store.drop_below(index.watermark)
    merger = Merger(lambda: index, store)

    everything = {(r["topic"], r["partition"]): 10**9 for r in rows}
    truth = oracle.dedup(rows, everything)
    groups = oracle.identity_groups(truth, cap)
    merged = oracle.relabel(truth, groups)
    profile = oracle.profile(merged).set_index(["tenant_id", "customer_id"])
    now = START + 100 * DAY
    below = oracle.dedup(rows[:landed], index.watermark) if landed else truth.iloc[0:0]
    batch_groups = oracle.identity_groups(below, cap) if len(below) else {}
    cuts_by_tenant = _batch_cuts(oracle.rfm_raw(oracle.relabel(below, batch_groups), 0)) if len(below) else {}
    rfm_truth = oracle.rfm_raw(merged, now).set_index(["tenant_id", "customer_id"])

    for customer in IDS:
        canonical = groups.get((TENANT, customer), customer)
        members = sorted(
            c for c in {customer, *(c for _, c in groups)} if groups.get((TENANT, c), c) == canonical
        )
        assert merger.component_ids(TENANT, customer) == members, customer
        if (TENANT, canonical) not in profile.index:
            with pytest.raises(NotFound):
                merger.profile(TENANT, customer, now_ms=now)
            continue
        answer = merger.profile(TENANT, customer, now_ms=now)
        assert answer["identity"]["canonical"] == canonical and answer["identity"]["ids"] == members
        p = profile.loc[(TENANT, canonical)]
        revenue = 0 if pd.isna(p.revenue) else int(p.revenue)
        want = {
            "events_total": int(p.events_total),
            "orders": int(p.orders),
            "paid_orders": int(p.paid_orders),
            "revenue": revenue / 1e6,
            "net_revenue": revenue / 1e6,
            "sessions": int(p.sessions),
        }
        got = answer["metrics"]
        assert {k: got[k] for k in want} == want, customer
        want_rfm = _truth_rfm(rfm_truth, cuts_by_tenant.get(TENANT), want, TENANT, canonical)
        assert answer["rfm"] == want_rfm, customer

        events = merged[merged.customer_id == canonical]
        per_day = events.groupby(events.event_time // DAY * DAY).size()
        points = merger.timeseries(TENANT, customer, "events_total", 0, 2**52, DAY)
        assert points == [(int(ts), int(n)) for ts, n in per_day.items()], customer

    want_cohorts = {cohort: v for (t, cohort), v in oracle.cohorts(merged).items() if t == TENANT}
    got_cohorts = {
        row["cohort"]: (row["size"], row["retention"]) for row in merger.cohorts(TENANT, None, None)
    }
    assert got_cohorts == want_cohorts
