"""Batch runs on real Spark (local) and real Delta, checked against an independent pandas oracle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from lambdalytics.batch import master
from lambdalytics.batch.job import backfill, run_batch
from lambdalytics.batch.writer import ViewWriter, read_manifest
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.cohorts import month_label
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.schemas.views import VIEWS, cut

from . import oracle

pytestmark = pytest.mark.integration
PARTITIONS = 3
BLOCK = 7


def landed_rows(seed: int, n_days: float = 3, start_ms: int = 1_767_225_600_000) -> list[dict]:
    """Generated events (with duplicates and late ones) as master rows at made-up Kafka positions."""
    cfg = GeneratorConfig(
        seed=seed,
        rate=0.006,
        duration_s=n_days * 86_400,
        start_ms=start_ms,
        duplicates=0.05,
        late=0.08,
        customers_per_tenant=40,
    )
    next_offset: dict[tuple[str, int], int] = {}
    rows = []
    clock = (
        start_ms  # broker time: when the event reached Kafka (late events arrive long after they happened)
    )
    for obj in generate(cfg):
        event = validate_event(obj)
        tp = (event.topic, zlib.crc32(event.key) % PARTITIONS)
        offset = next_offset.get(tp, 0)
        next_offset[tp] = offset + 1
        clock = max(clock + 1, event.event_time)
        rows.append(
            {
                **to_row(event),
                "topic": tp[0],
                "partition": tp[1],
                "offset": offset,
                "broker_time": clock,
                "raw": event.to_json(),
            }
        )
    return rows


def land(data_dir: Path, rows: list[dict], chunks: int = 3) -> dict[tuple[str, int], int]:
    path = master.master_path(data_dir)
    progress = master.read_progress(path)
    offsets = dict(progress.offsets)
    size = -(-len(rows) // chunks)
    for k in range(chunks):
        chunk = rows[k * size : (k + 1) * size]
        for r in chunk:
            tp = (r["topic"], r["partition"])
            offsets[tp] = max(offsets.get(tp, 0), r["offset"] + 1)
        master.append_batch(path, master.rows_to_table(chunk), offsets, progress.batch_seq + k + 1)
    return offsets


def view(manifest, data_dir, name) -> pd.DataFrame:
    return manifest.table(data_dir, name).to_pyarrow_table().to_pandas()


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("batch")
    rows = landed_rows(seed=5)
    archived = land(data_dir, rows)
    settings = Settings(data_dir=data_dir, block_size=BLOCK)
    manifest = run_batch(settings, spark=spark, show_progress=False)
    return data_dir, rows, archived, manifest, settings


def test_watermark_is_the_block_cut_of_archived_offsets_and_tags_every_view(first_run):
    data_dir, _, archived, manifest, _ = first_run
    assert manifest.batch_version == 1
    assert manifest.watermark == {tp: o // BLOCK * BLOCK for tp, o in archived.items()}
    assert any(o % BLOCK for o in archived.values()), "the test needs events above W"
    assert manifest.views.keys() == VIEWS.keys()  # every view of the contract, and only those
    for name, version in manifest.views.items():
        table = DeltaTable(str(data_dir / "views" / name), version=version)
        assert table.history(1)[0]["lambdalytics.run_id"] == manifest.run_id, name
        protocol = table.protocol()
        assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2), name


def test_customer_profile_equals_independent_recomputation(first_run):
    data_dir, rows, _, manifest, _ = first_run
    events = oracle.dedup(rows, manifest.watermark)
    assert events.event_id.duplicated().sum() == 0 and len(events) == manifest.events
    expected = oracle.profile(events).set_index(["tenant_id", "customer_id"]).sort_index()
    got = view(manifest, data_dir, "customer_profile").set_index(["tenant_id", "customer_id"]).sort_index()
    assert got.index.equals(expected.index)
    got["sessions"] = got["sessions"].map(oracle.hll_estimate)
    for column in expected.columns:
        assert (
            got[column].fillna(-1).astype("int64").tolist()
            == expected[column].fillna(-1).astype("int64").tolist()
        ), column
    assert len(rows) > len(events)  # duplicates and events above W were really excluded


def test_timeseries_campaigns_and_entity_states(first_run):
    data_dir, rows, _, manifest, _ = first_run
    events = oracle.dedup(rows, manifest.watermark)
    ts = view(manifest, data_dir, "customer_timeseries")
    events["hour"] = events.event_time - events.event_time % oracle.HOUR
    per_hour = events.groupby(["tenant_id", "customer_id", "hour"]).size().sort_index()
    got = ts.set_index(["tenant_id", "customer_id", "hour"]).events_total.sort_index()
    assert got.tolist() == per_hour.tolist() and got.index.equals(per_hour.index)
    late = events[events.event_time < events.broker_time - 3_600_000 * 2]
    assert len(late) > 0  # late events exist and land in their own event-time hour (checked above)

    expected = oracle.campaign_stats(events).set_index(["tenant_id", "campaign_id", "hour"]).sort_index()
    got = (
        view(manifest, data_dir, "campaign_stats")
        .set_index(["tenant_id", "campaign_id", "hour"])
        .sort_index()
    )
    for column in ("impressions", "clicks", "conversions", "spend"):
        assert (
            got[column].fillna(0).astype("int64").tolist()
            == expected[column].fillna(0).astype("int64").tolist()
        )

    tickets = oracle.milestones(
        events,
        "ticket_id",
        {"opened": "ticket_opened", "first_reply": "agent_replied", "resolved": "ticket_resolved"},
    )
    got = view(manifest, data_dir, "ticket_state")
    keys = ["tenant_id", "customer_id", "ticket_id"]
    pd.testing.assert_frame_equal(
        got.sort_values(keys).reset_index(drop=True)[tickets.columns].astype("float64", errors="ignore"),
        tickets.sort_values(keys).reset_index(drop=True).astype("float64", errors="ignore"),
        check_dtype=False,
    )


def test_cohorts_order_months_and_rfm_cut_points(first_run):
    data_dir, rows, _, manifest, _ = first_run
    events = oracle.dedup(rows, manifest.watermark)
    got = view(manifest, data_dir, "cohort_counts")
    assert {
        (r.tenant_id, month_label(r.cohort)): (r.size, list(r.active)) for r in got.itertuples()
    } == oracle.cohort_counts(events)
    months = view(manifest, data_dir, "customer_order_months")
    expected = oracle.order_months(events)
    assert {
        (r.tenant_id, r.customer_id): {month_label(m) for m in r.months} for r in months.itertuples()
    } == expected
    assert all(
        r.first_month == min(r.months) and list(r.months) == sorted(r.months) for r in months.itertuples()
    )

    raw = oracle.rfm_raw(events, 0)
    cuts = view(manifest, data_dir, "rfm_thresholds").set_index("tenant_id").sort_index()
    assert cuts.index.tolist() == sorted(raw.tenant_id.unique())
    for tenant, group in raw.groupby("tenant_id"):
        row = cuts.loc[tenant]
        assert row.customers == len(group)
        for column, values in (
            ("r_cuts", group.last_order_at),
            ("f_cuts", group.frequency),
            ("m_cuts", group.monetary),
        ):
            want = values.astype("float64").quantile([0.2, 0.4, 0.6, 0.8], interpolation="linear").tolist()
            assert list(row[column]) == pytest.approx(want, rel=1e-12), (tenant, column)


def test_next_run_advances_and_old_version_stays_readable(first_run, spark):
    data_dir, rows, _, first, settings = first_run
    assert run_batch(settings, spark=spark, show_progress=False) == first  # W unchanged: nothing to do
    old_profile = view(first, data_dir, "customer_profile")
    more = landed_rows(seed=6, start_ms=1_767_225_600_000 + 4 * 86_400_000)
    # continue each partition's offsets after what was landed
    base = master.read_progress(master.master_path(data_dir)).offsets
    for r in more:
        r["offset"] += base.get((r["topic"], r["partition"]), 0)
    archived = land(data_dir, more)
    second = run_batch(settings, spark=spark, show_progress=False)
    assert second.batch_version == 2 and second.watermark == cut(archived, BLOCK)
    assert read_manifest(data_dir) == second
    pd.testing.assert_frame_equal(view(first, data_dir, "customer_profile"), old_profile)
    events = oracle.dedup(rows + more, second.watermark)
    assert view(second, data_dir, "customer_profile").events_total.sum() == len(events)


def test_backfill_repairs_affected_keys_and_is_idempotent(tmp_path, spark):
    rows = landed_rows(seed=8)
    land(tmp_path, rows)
    settings = Settings(data_dir=tmp_path, block_size=BLOCK)
    good = run_batch(settings, spark=spark, show_progress=False)
    correct = view(good, tmp_path, "customer_profile")
    # a bad run published wrong profiles (as a buggy release would)
    bad = ViewWriter(tmp_path, kind="run")
    for name in good.views:
        table = good.table(tmp_path, name).to_pyarrow_table()
        if name == "customer_profile":
            df = table.to_pandas()
            df["events_total"] += 1000
            table = table.from_pandas(df, schema=table.schema, preserve_index=False)
        bad.write(name, table)
    broken = bad.publish(
        previous=good,
        watermark=good.watermark,
        block_size=good.block_size,
        watermark_time=good.watermark_time,
        master_version=good.master_version,
        events=good.events,
    )

    fixed_one = backfill(
        settings, date(2026, 1, 1), date(2026, 1, 4), tenant="demo-saas", spark=spark, show_progress=False
    )
    profile = (
        view(fixed_one, tmp_path, "customer_profile").set_index(["tenant_id", "customer_id"]).sort_index()
    )
    right = correct.set_index(["tenant_id", "customer_id"]).sort_index()
    saas = profile.index.get_level_values(0) == "demo-saas"
    assert (profile.events_total[saas] == right.events_total[saas]).all()
    assert (profile.events_total[~saas] == right.events_total[~saas] + 1000).all()  # other tenants untouched

    fixed = backfill(settings, date(2026, 1, 1), date(2026, 1, 4), spark=spark, show_progress=False)
    assert fixed.batch_version == broken.batch_version + 2 and fixed.watermark == good.watermark
    profile = view(fixed, tmp_path, "customer_profile").set_index(["tenant_id", "customer_id"]).sort_index()
    assert profile.events_total.tolist() == right.events_total.tolist()
    again = backfill(settings, date(2026, 1, 1), date(2026, 1, 4), spark=spark, show_progress=False)
    assert again == fixed  # running it twice changes nothing


def test_run_killed_mid_write_leaves_previous_version_intact(first_run, tmp_path):
    """kill -9 right after the new run's first view commit: the manifest still names the old version."""
    src, rows, _, _, _ = first_run
    data_dir = tmp_path / "copy"
    land(data_dir, rows[: len(rows) // 2])
    env = {
        **os.environ,
        "LAMBDALYTICS_DATA_DIR": str(data_dir),
        "LAMBDALYTICS_BLOCK_SIZE": str(BLOCK),
        "LAMBDALYTICS_SPARK_SHUFFLE_PARTITIONS": "4",
    }
    cmd = [sys.executable, "-m", "lambdalytics.cli", "batch", "run"]
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    before = read_manifest(data_dir)
    snapshot = {name: before.table(data_dir, name).to_pyarrow_table() for name in before.views}
    land(data_dir, rows[len(rows) // 2 :])

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log_dir = data_dir / "views" / "customer_profile" / "_delta_log"
    commits = len(list(log_dir.glob("*.json")))
    deadline = time.monotonic() + 240
    while (
        len(list(log_dir.glob("*.json"))) == commits and time.monotonic() < deadline and proc.poll() is None
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(log_dir.glob("*.json"))) == commits + 1, "the kill must land mid-run"

    after = read_manifest(data_dir)
    assert after == before
    for name, table in snapshot.items():
        assert after.table(data_dir, name).to_pyarrow_table().equals(table), name
    # and the next run recovers
    recovered = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert read_manifest(data_dir).batch_version == before.batch_version + 1


def test_one_batch_writer_at_a_time(tmp_path):
    from lambdalytics.batch.job import BatchBusyError, exclusive

    with exclusive(tmp_path), pytest.raises(BatchBusyError):
        run_batch(Settings(data_dir=tmp_path, block_size=BLOCK), show_progress=False)
