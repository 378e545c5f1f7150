"""One contract for both speed stores: every read of ``SpeedStore`` equals an independent oracle.

Each test runs once per store (``store_kind``: the embedded store, and Pinot through the DuckDB broker
double), over generated streams with duplicates and late events, at block-aligned watermarks — named
cuts and hypothesis-drawn ones. Each store is checked against ``oracle.py``, not against the other. A
store's gap is marked ``notimpl`` with its reason and the exception it fails with (``conftest.py``).
Pinot's own concerns (fail-closed broker answers, SQL shape, configs, Docker) are in ``test_pinot.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.infra import metric_registry
from lambdalytics.schemas.catalog import CATALOG, GRAIN_KEYS, Grain
from lambdalytics.speed.config import DEDUP_WINDOW_MS
from lambdalytics.speed.store import CoverageError, SpeedStore

from .contract import (
    BLOCK,
    OPENERS,
    READS,
    assert_answers,
    erased_customers,
    loaded,
    oracle_of,
    reads,
    typed,
)
from .oracle import CAMPAIGN, CUSTOMER, SERIES, SpeedOracle, after
from .streams import CUTS, PARTITIONS, end_offsets, stream, watermark

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------------------------ the suite itself


def test_the_suite_covers_the_whole_interface():
    """A read added to SpeedStore must be added here (READS) before any store can pass the suite."""
    assert SpeedStore.__abstractmethods__ == {*READS, "status", "on_batch_published", "erase"}


def test_the_oracle_states_every_base_of_the_catalog():
    """The oracle is written by hand; a catalog base it does not state would go unchecked."""
    assert set(CUSTOMER) == {m.name for m in CATALOG.bases(Grain.customer)}
    assert set(SERIES) == {m.name for m in CATALOG.bases(Grain.customer) if m.timeseries}
    assert set(CAMPAIGN) == {m.name for m in CATALOG.bases(Grain.campaign)}


@pytest.mark.parametrize("seed", [1, 2])
def test_the_streams_have_what_makes_this_hard(seed):
    """Guards against a vacuous suite: duplicates (within the dedup window, which the oracle assumes),
    copies whose first copy lies below the half cut, and non-empty answers of every kind."""
    records = stream(seed)
    first: dict[tuple[str, str], tuple[int, int]] = {}
    gaps, across = [], 0
    w = watermark(records, "half", BLOCK)
    for row, topic, partition, offset, broker_ms in records:
        key = (row["tenant_id"], row["event_id"])
        if key in first:
            gaps.append(broker_ms - first[key][1])
            across += first[key][0] < w[(topic, partition)] <= offset
        else:
            first[key] = (offset, broker_ms)
    assert gaps and max(gaps) < DEDUP_WINDOW_MS and across > 0
    oracle = SpeedOracle(records)
    customers = sorted({(r[0]["tenant_id"], r[0]["customer_id"]) for r in records})
    partials = [oracle.customer(t, c, w) for t, c in customers]
    assert any(p["revenue"] for p in partials) and any(p["sessions"] for p in partials)
    assert any(p["revenue"] is None for p in partials)  # None, not 0, where no order was paid
    assert oracle.tenant_entities("demo-food", "order", w) and oracle.order_months("demo-food", w)
    assert oracle.tenant_entities("demo-saas", "ticket", w)
    tenants = {r[0]["tenant_id"] for r in records}
    assert all(oracle.alias_edges(t, None, w) and oracle.alias_edges(t, None, {}) for t in tenants)
    key = GRAIN_KEYS[Grain.campaign][1]
    tenant, campaign = next((r[0]["tenant_id"], r[0][key]) for r in records if r[0][key])
    assert oracle.campaign_hours(tenant, campaign, w, 0, 2**62)


# ------------------------------------------------------------------------------------------ every read


@pytest.mark.parametrize(("seed", "cut"), [(1, c) for c in CUTS if c != "random"] + [(2, "random")])
def test_every_read_equals_the_oracle(store_kind, seed, cut):
    records = stream(seed)
    todo = reads(records, watermark(records, cut, BLOCK))
    assert len(todo) > 200 and {method for method, _ in todo} == set(READS)
    assert_answers(loaded(store_kind, seed), oracle_of(seed), todo)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reads_at_random_block_cuts_equal_the_oracle(store, data):
    records = stream(1)
    w = {
        tp: data.draw(st.integers(0, end // BLOCK), label=f"block of {tp}") * BLOCK
        for tp, end in end_offsets(records).items()
    }
    todo = reads(records, w)
    picked = data.draw(st.lists(st.integers(0, len(todo) - 1), min_size=1, max_size=12, unique=True))
    assert_answers(store, oracle_of(1), [todo[i] for i in picked])


def test_duplicates_count_once_also_across_the_boundary(open_speed):
    """A copy above W whose first copy is below W is the batch view's; a copy of a speed event is nothing."""
    rows = [r[0] for r in stream(1) if r[1] == "events.transaction"]
    of_one = {r["event_id"]: r for r in rows if r["customer_id"] == rows[0]["customer_id"]}
    a, b, c = list(of_one.values())[:3]
    tp = ("events.transaction", 0)
    records = [
        (a, *tp, 0, 1_000),  # below W: the batch view's
        (b, *tp, 11, 2_000),
        (a, *tp, 12, 3_000),  # copy of a batch event
        (b, *tp, 13, 4_000),  # copy of a speed event
        (c, *tp, 14, 5_000),
    ]
    w = {tp: BLOCK}
    store = open_speed(records)
    assert store.customer(a["tenant_id"], a["customer_id"], w)["events_total"] == 2
    assert_answers(store, SpeedOracle(records), reads(records, w))


# -------------------------------------------------------------------------------------------- coverage


@pytest.fixture(scope="module")
def started_late(store_kind):
    """A store whose consumption of one partition began at offset 50 (retention, or a late start)."""
    records, start = stream(1), {("events.transaction", 0): 50}
    consumed = [r for r in records if r[3] >= start.get((r[1], r[2]), 0)]
    return OPENERS[store_kind](records, start), SpeedOracle(consumed)


@pytest.mark.parametrize("read", READS)
def test_a_watermark_below_the_first_consumed_offset_fails_closed(started_late, read):
    """Every read checks every partition, whatever keys it touches: a gap anywhere is a CoverageError."""
    store, oracle = started_late
    records = stream(1)
    below = {**watermark(records, "zero", BLOCK), ("events.transaction", 0): 40}
    (method, args), *_ = (r for r in reads(records, below) if r[0] == read)
    with pytest.raises(CoverageError):
        getattr(store, method)(*args)


def test_a_watermark_at_the_first_consumed_offset_is_answered(started_late):
    """The oracle sees what the store consumed: a copy whose first copy was never consumed counts."""
    store, oracle = started_late
    records = stream(1)
    w = {
        tp: max(o, 50) if tp == ("events.transaction", 0) else o
        for tp, o in watermark(records, "half", BLOCK).items()
    }
    assert_answers(store, oracle, reads(records, w, every=4))


@pytest.mark.parametrize("read", READS)
def test_a_watermark_naming_a_partition_never_consumed_fails_closed(store, read):
    """A partition the store never consumed (not assigned, not reached, added to the topic) is not empty:
    every read at a W that names it is refused with the reason, never answered as zero."""
    records = stream(1)
    unknown = ("events.transaction", PARTITIONS)  # one more partition than the stream was consumed from
    w = {**watermark(records, "half", BLOCK), unknown: 0}
    (method, args), *_ = (r for r in reads(records, w) if r[0] == read)
    with pytest.raises(CoverageError, match=r"'events.transaction', 3\).*not (consumed|assigned)"):
        getattr(store, method)(*args)


def test_after_a_publish_the_new_w_is_exact_and_an_older_w_is_refused_or_exact(open_speed):
    records, oracle = stream(1), oracle_of(1)
    store = open_speed(records)
    w = watermark(records, "half", BLOCK)
    store.on_batch_published(w)
    assert_answers(store, oracle, reads(records, w, every=5))
    older = watermark(records, "zero", BLOCK)
    for method, args in reads(records, older, every=10):
        try:
            answer = getattr(store, method)(*args)
        except CoverageError:
            continue  # the embedded store freed those blocks: fail closed
        assert typed(answer) == typed(getattr(oracle, method)(*args)), (method, args[:-1])


# ------------------------------------------------------------------------------------ version, status


@pytest.mark.notimpl(
    ["pinot"],
    raises=AssertionError,
    reason="SQL cannot tell when a customer's answer changes (customer_version is None), "
    "so serving never caches Pinot answers",
)
def test_customer_version_is_stable_until_coverage_changes(open_speed):
    records = stream(1)
    row = records[0][0]
    store = open_speed(records)
    before = store.customer_version(row["tenant_id"], row["customer_id"])
    assert before is not None
    assert store.customer_version(row["tenant_id"], row["customer_id"]) == before
    store.on_batch_published(watermark(records, "half", BLOCK))
    assert store.customer_version(row["tenant_id"], row["customer_id"]) != before


@pytest.mark.parametrize("seed", [1, 2])
def test_status_counts_the_deduplicated_events(store_kind, seed):
    status = loaded(store_kind, seed).status()
    end = end_offsets(stream(seed))
    assert status.events == len(after(stream(seed), {}))
    assert status.positions.keys() == end.keys()
    assert all(status.positions[tp] <= end[tp] for tp in end)  # never claims what it has not consumed


@pytest.mark.notimpl(
    ["pinot"],
    raises=AssertionError,
    reason="positions are max(stored offset) + 1, a lower bound: a partition's trailing duplicate is "
    "consumed but not stored",
)
def test_status_positions_are_the_next_offsets_to_consume(store_kind):
    """Seed 2 ends three partitions with a duplicate."""
    assert loaded(store_kind, 2).status().positions == end_offsets(stream(2))


# --------------------------------------------------------------------------------------------- erasure


@pytest.mark.parametrize("cut", ["zero", "half"])
def test_an_erased_customer_is_gone_and_every_other_answer_is_exact(open_speed, cut):
    """After ``erase``, every read — the customer's own, and the tenant-level ones (campaign hours, live
    entities, order months) — equals a store that never held the customer's events."""
    records = stream(1)
    w = watermark(records, cut, BLOCK)
    store = open_speed(records)
    erased = erased_customers(records)
    for tenant, customer in erased:
        assert store.customer(tenant, customer, {})["events_total"] > 0
        store.erase(tenant, [customer])
    kept = [r for r in records if (r[0]["tenant_id"], r[0]["customer_id"]) not in erased]
    todo = reads(records, w)  # every key of the full stream: the erased ones answer as never seen
    assert_answers(store, SpeedOracle(kept), todo)
    store.erase(erased[0][0], [erased[0][1]])  # idempotent
    assert_answers(store, SpeedOracle(kept), todo)


# ------------------------------------------------------------------------ registered (catalog-file) metrics

CATALOG_FILE = """
[[metric]]
name = "largest_order"
label = "Largest order"
description = "The customer's largest paid order."
grain = "customer"
unit = "currency"
aggregate = "max"
column = "amount_micros"
filter = { event_types = ["order_paid"], non_null = ["amount_micros"] }

[[metric]]
name = "searches"
label = "Searches"
description = "Searches."
grain = "customer"
unit = "count"
aggregate = "count"
filter = { event_types = ["search"] }

[[metric]]
name = "search_sessions"
label = "Search sessions"
description = "Distinct sessions with a search."
grain = "customer"
unit = "count"
aggregate = "hll_distinct"
column = "session_id"
filter = { event_types = ["search"], non_null = ["session_id"] }
"""
REGISTERED = {  # the oracle's reading of CATALOG_FILE, written from the file, not from the catalog
    "largest_order": ("max", ("order_paid",), "amount_micros"),
    "searches": ("count", ("search",), None),
    "search_sessions": ("distinct", ("search",), "session_id"),
}


@pytest.mark.parametrize("cut", ["zero", "half"])
def test_registered_metrics_are_answered_like_built_in_ones(open_speed, tmp_path, cut):
    """A store opened on a data folder with a registered catalog file aggregates its metrics (max, count,
    distinct) for profile and series — compiled by the same renderers as the built-in ones, one
    definition for the embedded evaluator and Pinot SQL — and answers them as the oracle does."""
    file = tmp_path / "metrics.toml"
    file.write_text(CATALOG_FILE)
    metric_registry.add(tmp_path, file)
    records = stream(1)
    store = open_speed(records, registered_metrics=tmp_path)
    assert set(REGISTERED) <= set(store.catalog.by_name)
    oracle = SpeedOracle(records, extra=REGISTERED)
    w = watermark(records, cut, BLOCK)
    todo = [r for r in reads(records, w) if r[0] in ("customer", "customer_hours")]
    profiles = [oracle.customer(*args) for method, args in todo if method == "customer"]
    for name in REGISTERED:  # the stream exercises each of them
        assert any(p[name] for p in profiles), name
    assert_answers(store, oracle, todo)
