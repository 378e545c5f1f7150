"""Incremental batch runs equal full recomputation, on real Spark and real Delta.

A stream (generated events with duplicates and late events, plus aliases and identify events between
its customers) is landed in several parts; after each part ``run_batch`` folds the new events into the
previous version. Copies of events already counted are redelivered in later parts (a producer retry
after a run), so the dedup against history is exercised; an alias landing in a later part merges
customers whose rows earlier versions hold apart, so the derived views (identity components, cohorts,
RFM cut points, segments) must re-key them. The last version must equal a full run over the same
master, table by table.
"""

from __future__ import annotations

import random
import tempfile
import zlib
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.batch import master
from lambdalytics.batch.job import run_batch
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.schemas.views import VIEWS

from . import oracle
from .test_batch_job import landed_rows

pytestmark = pytest.mark.integration
PARTITIONS = 3


def with_identities(rows: list[dict], n_aliases: int, n_identifies: int, rng: random.Random) -> list[dict]:
    """``rows`` with aliases between customers of one tenant (chains and merges, old and late event
    times) and identify events setting traits, inserted at random places of the arrival order."""
    customers = sorted({(r["tenant_id"], r["customer_id"]) for r in rows})
    times = [r["event_time"] for r in rows]
    out = list(rows)
    for n in range(n_aliases + n_identifies):
        tenant, customer = rng.choice(customers)
        obj = {
            "event_id": f"identity-{n}",
            "tenant_id": tenant,
            "customer_id": customer,
            "event_time": rng.choice(times),
        }
        if n < n_aliases:
            others = [c for t, c in customers if t == tenant and c != customer]
            if not others:
                continue
            obj |= {"event_type": "alias", "previous_id": rng.choice(others)}
        else:
            obj |= {"event_type": "identify", "traits": {"plan": rng.choice(["free", "pro"])}}
        event = validate_event(obj)
        position = rng.randrange(len(out) + 1)
        out.insert(
            position,
            {
                **to_row(event),
                "topic": event.topic,
                "partition": zlib.crc32(event.key) % PARTITIONS,
                "offset": -1,  # placed by ``arrival``
                "broker_time": out[position - 1]["broker_time"] if position else rows[0]["broker_time"],
                "raw": event.to_json(),
            },
        )
    return out


def arrival(
    rows: list[dict], parts: list[float], redeliveries: list[int], rng: random.Random
) -> list[list[dict]]:
    """The stream cut into parts; each later part also carries copies of events of earlier parts.

    Copies keep everything but their position: the same key, hence the same topic and partition.
    Offsets are then assigned per partition in arrival order, as Kafka does.
    """
    bounds = [0, *sorted({int(p * len(rows)) for p in parts}), len(rows)]
    chunks = [rows[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    for k in range(1, len(chunks)):
        earlier = [r for chunk in chunks[:k] for r in chunk]
        for pick in redeliveries[k - 1 :: len(chunks) - 1]:
            copy = dict(earlier[pick % len(earlier)])
            chunks[k].insert(rng.randrange(len(chunks[k]) + 1), copy)
    next_offset: dict[tuple[str, int], int] = {}
    out = []
    for chunk in chunks:
        placed = []
        for row in chunk:
            tp = (row["topic"], row["partition"])
            placed.append({**row, "offset": next_offset.get(tp, 0)})
            next_offset[tp] = next_offset.get(tp, 0) + 1
        out.append(placed)
    return out


def land(data_dir: Path, rows: list[dict]) -> None:
    path = master.master_path(data_dir)
    progress = master.read_progress(path)
    offsets = dict(progress.offsets)
    for r in rows:
        tp = (r["topic"], r["partition"])
        offsets[tp] = max(offsets.get(tp, 0), r["offset"] + 1)
    master.append_batch(path, master.rows_to_table(rows), offsets, progress.batch_seq + 1)


def normalized(table: pa.Table) -> list[dict]:
    """Rows sorted, sketches as their estimate (exact at these sizes; what serving reads)."""
    rows = table.to_pylist()
    for row in rows:
        for name, value in row.items():
            if isinstance(value, bytes):
                row[name] = ("hll", oracle.hll_estimate(value))
    return sorted(rows, key=repr)


def assert_same_version(inc_dir: Path, incremental, full_dir: Path, full) -> None:
    assert incremental.watermark == full.watermark
    assert incremental.events == full.events
    assert incremental.watermark_time == full.watermark_time
    for name in VIEWS:
        got = incremental.table(inc_dir, name).to_pyarrow_table()
        want = full.table(full_dir, name).to_pyarrow_table()
        assert got.schema.names == want.schema.names, name
        assert got.schema.types == want.schema.types, name
        assert normalized(got) == normalized(want), name


@pytest.mark.timeout(1200)  # several Spark runs per example on a shared box
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    parts=st.lists(st.floats(0.05, 0.95), min_size=1, max_size=2),
    redeliveries=st.lists(st.integers(0, 10**6), max_size=12),
    block=st.sampled_from([1, 4, 9]),
    aliases=st.integers(0, 6),
    identifies=st.integers(0, 4),
)
def test_incremental_runs_equal_a_full_run(spark, seed, parts, redeliveries, block, aliases, identifies):
    rng = random.Random(seed)
    rows = with_identities(landed_rows(seed=seed, n_days=0.3), aliases, identifies, rng)
    chunks = arrival(rows, parts, redeliveries, rng)
    with tempfile.TemporaryDirectory() as inc, tempfile.TemporaryDirectory() as full:
        inc_dir, full_dir = Path(inc), Path(full)
        cfg = Settings(data_dir=inc_dir, block_size=block)
        manifests = []
        for chunk in chunks:
            land(inc_dir, chunk)
            manifests.append(run_batch(cfg, spark=spark, show_progress=False))
        kinds = [m.kind for m in {m.batch_version: m for m in manifests}.values()]
        assert kinds[0] == "run" and set(kinds[1:]) <= {"incremental"}, kinds
        land(full_dir, [r for chunk in chunks for r in chunk])
        reference = run_batch(Settings(data_dir=full_dir, block_size=block), spark=spark, show_progress=False)
        assert_same_version(inc_dir, manifests[-1], full_dir, reference)


def test_a_reused_event_id_sorting_first_falls_back_to_a_full_run(spark, tmp_path):
    """A new copy on a topic sorting before the counted one would swap the kept copy: only a full run
    can do that exactly, so the run recomputes (and says so in its manifest)."""
    rows = landed_rows(seed=11, n_days=0.3)
    first, later = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    counted = next(r for r in first if r["topic"] != "events.behavioral")
    reused = {**counted, "topic": "events.behavioral", "event_type": "page_view", "session_id": "s-reused"}
    reused["partition"] = zlib.crc32(b"x") % PARTITIONS
    taken = max(
        (
            r["offset"]
            for r in rows
            if (r["topic"], r["partition"]) == ("events.behavioral", reused["partition"])
        ),
        default=-1,
    )
    reused["offset"] = taken + 1
    inc_dir, full_dir = tmp_path / "inc", tmp_path / "full"
    cfg = Settings(data_dir=inc_dir, block_size=1)
    land(inc_dir, first)
    assert run_batch(cfg, spark=spark, show_progress=False).kind == "run"
    land(inc_dir, later)
    assert run_batch(cfg, spark=spark, show_progress=False).kind == "incremental"
    land(inc_dir, [reused])
    fallback = run_batch(cfg, spark=spark, show_progress=False)
    assert fallback.kind == "run"
    land(full_dir, [*rows, reused])
    reference = run_batch(Settings(data_dir=full_dir, block_size=1), spark=spark, show_progress=False)
    assert_same_version(inc_dir, fallback, full_dir, reference)


def test_full_flag_recomputes_from_the_master(spark, tmp_path):
    rows = landed_rows(seed=12, n_days=0.3)
    cfg = Settings(data_dir=tmp_path, block_size=1)
    land(tmp_path, rows[:300])
    run_batch(cfg, spark=spark, show_progress=False)
    land(tmp_path, rows[300:])
    assert run_batch(cfg, full=True, spark=spark, show_progress=False).kind == "run"


def test_the_index_settles_new_events_and_defers_to_the_master_when_it_cannot(spark, tmp_path):
    """A new copy whose lowest copy lies below W_prev is dropped; a new id is kept; an id the index marks
    spread, or any id while the index's marks are incomplete, defers to the master scan (None)."""
    import lmdb

    from lambdalytics.batch.incremental import unseen_by_index
    from lambdalytics.batch.job import _spark_empty_events
    from lambdalytics.infra.event_index import EventIndex

    tp, other = ("events.transaction", 0), ("events.behavioral", 1)
    empty = _spark_empty_events(spark)

    def new(*events):
        rows = [
            {
                **{f.name: None for f in empty.schema.fields},
                "tenant_id": "t",
                "event_id": e,
                "topic": tp[0],
                "partition": tp[1],
                "offset": o,
            }
            for e, o in events
        ]
        return spark.createDataFrame(rows, empty.schema)

    since = {tp: 10, other: 10}
    with EventIndex.open(tmp_path / "index") as index:
        index.record(
            [("t", "old", *tp, 3), ("t", "old", *tp, 12), ("t", "fresh", *tp, 13)], covers={}, after={}
        )
        kept = unseen_by_index(spark, new(("old", 12), ("fresh", 13)), index, since)
        assert sorted(r["event_id"] for r in kept.collect()) == ["fresh"]
        kept.unpersist()
        index.record([("t", "reused", *other, 5), ("t", "reused", *tp, 14)], covers={}, after={})
        dropped = unseen_by_index(spark, new(("reused", 14)), index, since)  # its lowest copy is counted
        assert dropped.count() == 0
        dropped.unpersist()
        index.record([("t", "spread", *tp, 15), ("t", "spread", *other, 40)], covers={}, after={})
        assert unseen_by_index(spark, new(("spread", 15)), index, since) is None
    env = lmdb.open(str(tmp_path / "old"), max_dbs=2)  # an index written before spread marks existed
    with env.begin(write=True) as txn:
        env.open_db(b"entries", txn=txn)
        env.open_db(b"meta", txn=txn)
        txn.put(b"covered", b"{}", db=env.open_db(b"meta", txn=txn))
    env.close()
    with EventIndex.open(tmp_path / "old") as index:
        index.record([("t", "fresh", *tp, 13)], covers={}, after={})
        assert unseen_by_index(spark, new(("fresh", 13)), index, since) is None
