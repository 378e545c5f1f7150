"""The profile cache never changes an answer: a cached merger equals an uncached one at every read,
while events are applied, blocks dropped and batch versions swapped between reads (hypothesis)."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.merge import Merger, NotFound
from lambdalytics.speed.embedded import EmbeddedSpeedStore

pytestmark = pytest.mark.unit
BLOCK = 5


def _records() -> list[tuple]:
    cfg = GeneratorConfig(seed=11, rate=0.02, duration_s=86_400, duplicates=0.05, customers_per_tenant=6)
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for obj in generate(cfg):
        event = validate_event(obj)
        tp = (event.topic, zlib.crc32(event.key) % 2)
        offsets[tp] = offsets.get(tp, -1) + 1
        out.append((to_row(event), tp[0], tp[1], offsets[tp], event.event_time))
    return out


RECORDS = _records()
CUSTOMERS = sorted({(r[0]["tenant_id"], r[0]["customer_id"]) for r in RECORDS})


def _answer(merger: Merger, tenant: str, customer: str, now_ms: int):
    try:
        return merger.profile(tenant, customer, now_ms=now_ms)
    except NotFound:
        return "not found"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cached_answers_equal_uncached_answers_through_ingest_drops_and_swaps(data):
    store = EmbeddedSpeedStore(block_size=BLOCK)
    index = [BatchIndex.empty()]
    cached = Merger(lambda: index[0], store, profile_cache=4)  # small: eviction is exercised too
    plain = Merger(lambda: index[0], store, profile_cache=0)
    applied = 0
    now_ms = RECORDS[-1][4]
    for _ in range(data.draw(st.integers(5, 40), label="steps")):
        op = data.draw(st.sampled_from(["ingest", "read", "read", "read", "swap"]))
        if op == "ingest" and applied < len(RECORDS):
            n = data.draw(st.integers(1, 30), label="events")
            for record in RECORDS[applied : applied + n]:
                store.ingest(*record)
            applied = min(len(RECORDS), applied + n)
        elif op == "swap":  # a new batch version: W moves up to a block cut of what was applied
            positions = store.status().positions
            w = {
                tp: data.draw(st.integers(0, p // BLOCK), label=str(tp)) * BLOCK
                for tp, p in positions.items()
            }
            w = {tp: max(o, index[0].watermark.get(tp, 0)) for tp, o in w.items()}
            fresh = BatchIndex.empty()
            fresh.manifest = SimpleNamespace(batch_version=index[0].version + 1, watermark=w)
            index[0] = fresh
            store.drop_below(w)
        else:
            tenant, customer = data.draw(st.sampled_from(CUSTOMERS), label="customer")
            for _ in range(2):  # the second read is a cache hit when nothing changed in between
                assert _answer(cached, tenant, customer, now_ms) == _answer(plain, tenant, customer, now_ms)


def test_an_event_of_the_customer_is_visible_on_the_next_read_and_unchanged_reads_hit():
    store = EmbeddedSpeedStore(block_size=BLOCK)
    index = BatchIndex.empty()
    merger = Merger(lambda: index, store, profile_cache=100)
    row, topic, partition, _, broker = RECORDS[0]
    tenant, customer = row["tenant_id"], row["customer_id"]
    store.ingest(row, topic, partition, 0, broker)
    assert merger.profile(tenant, customer)["metrics"]["events_total"] == 1
    assert merger.profile(tenant, customer)["metrics"]["events_total"] == 1
    assert (merger.profiles.hits, merger.profiles.misses) == (1, 1)
    store.ingest({**row, "event_id": "another"}, topic, partition, 1, broker)
    assert merger.profile(tenant, customer)["metrics"]["events_total"] == 2
    other = next(r for r in RECORDS if r[0]["customer_id"] != customer or r[0]["tenant_id"] != tenant)
    store.ingest(other[0], topic, partition, 2, other[4])  # someone else's event: still a hit
    merger.profile(tenant, customer)
    assert (merger.profiles.hits, merger.profiles.misses) == (2, 2)
    # the clock-dependent part is computed per read, never cached
    day = 86_400_000
    last = row["event_time"]
    if merger.profile(tenant, customer)["metrics"]["orders"]:
        assert merger.profile(tenant, customer, now_ms=last + 3 * day)["rfm"]["recency_days"] is not None
