"""The CLI as a user runs it: a subprocess per command, against the real embedded broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lambdalytics.infra.broker import free_port
from lambdalytics.infra.runtime import NoBrokerError, find_bootstrap
from lambdalytics.infra.settings import Settings


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lambdalytics.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.unit
def test_generate_to_jsonl_is_deterministic_and_valid(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        done = cli(
            "generate",
            "--duration",
            "30",
            "--rate",
            "5",
            "--seed",
            "3",
            "--start",
            "2026-01-01T00:00:00Z",
            "--jsonl",
            str(path),
        )
        assert done.returncode == 0, done.stderr
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 0
    checked = cli("schemas", "validate", str(a))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.unit
def test_validate_reports_each_rejection_with_reason(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"event_type": "page_view"}\nnot json\n')
    done = cli("schemas", "validate", str(path))
    assert done.returncode == 1
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(x["line"], x["reason"]) for x in lines] == [(1, "contract_violation"), (2, "invalid_json")]


@pytest.mark.unit
def test_schema_files_are_current_and_metrics_listed():
    assert cli("schemas", "export", "--check").returncode == 0
    rows = json.loads(cli("metrics", "--json").stdout)
    assert {"name", "description", "grain", "formula", "unit"} <= set(rows[0])


@pytest.mark.unit
def test_one_shot_commands_explain_how_to_get_a_broker(tmp_path):
    env = {"LAMBDALYTICS_DATA_DIR": str(tmp_path)}
    env.pop("LAMBDALYTICS_KAFKA_BOOTSTRAP", None)
    done = cli("generate", "--duration", "1", env={**env, "LAMBDALYTICS_KAFKA_BOOTSTRAP": ""})
    assert done.returncode == 2
    assert "lambdalytics broker" in done.stderr
    with pytest.raises(NoBrokerError):
        find_bootstrap(Settings(data_dir=tmp_path, kafka_bootstrap=None))


@pytest.mark.integration
def test_generate_sends_to_kafka_and_reports_per_topic(kafka_bootstrap, tmp_path):
    done = cli(
        "generate",
        "--duration",
        "20",
        "--rate",
        "5",
        "--seed",
        "9",
        "--start",
        "2026-01-01T00:00:00Z",
        env={"LAMBDALYTICS_KAFKA_BOOTSTRAP": kafka_bootstrap},
    )
    assert done.returncode == 0, done.stderr
    assert "events.behavioral" in done.stderr and "rejected 0" in done.stderr


@pytest.mark.integration
def test_up_runs_broker_topics_and_demo_stream_then_stops(tmp_path):
    env = {"LAMBDALYTICS_DATA_DIR": str(tmp_path), "LAMBDALYTICS_KAFKA_BOOTSTRAP": ""}
    env["LAMBDALYTICS_API_PORT"] = str(free_port())
    done = cli("up", "--duration", "8", "--rate", "30", env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Lambdalytics is up" in done.stdout and "demo-food key: llk_" in done.stdout
    assert (tmp_path / "master").exists()  # the archiver landed the demo stream, in the data folder
    assert not (tmp_path / "run" / "broker.json").exists()  # cleaned up on exit


def _printed(stdout: str, name: str) -> str:
    (line,) = [line for line in stdout.splitlines() if line.startswith(f"{name}: ")]
    return line.split(": ", 1)[1]


@pytest.mark.integration
def test_a_second_up_over_the_same_folder_keeps_the_history_the_tenant_and_its_key(tmp_path):
    from deltalake import DeltaTable

    from lambdalytics.infra.epochs import EpochTable
    from lambdalytics.serving.auth import TenantRegistry

    env = {"LAMBDALYTICS_DATA_DIR": str(tmp_path), "LAMBDALYTICS_KAFKA_BOOTSTRAP": ""}
    env["LAMBDALYTICS_API_PORT"] = str(free_port())
    runs = []
    for _ in range(2):
        done = cli("up", "--duration", "8", "--rate", "30", env=env)
        assert done.returncode == 0, done.stderr + done.stdout
        master = DeltaTable(str(tmp_path / "master"))
        runs.append(
            (done.stdout, master.to_pyarrow_table().num_rows, (tmp_path / "run" / "batch.log").exists())
        )
    (first, rows_first, batch_first), (second, rows_second, batch_second) = runs
    key = _printed(first, "demo-food key")
    assert key.startswith("llk_") and _printed(second, "demo-food key") == key  # the same tenant, same key
    assert _printed(second, "admin token") == _printed(first, "admin token")
    registry = TenantRegistry(tmp_path / "run" / "tenants.sqlite")
    try:
        assert registry.tenant_of(key) == "demo-food"
    finally:
        registry.close()
    assert 0 < rows_first < rows_second  # the second run's events landed beside the first's
    epochs = EpochTable(tmp_path).epochs()
    assert [e.number for e in epochs] == [0, 1] and epochs[0].cluster_id != epochs[1].cluster_id
    assert epochs[1].base and all(b % Settings().block_size == 0 for b in epochs[1].base.values())
    assert not batch_first and batch_second  # over a kept master, the first batch run starts at once


@pytest.mark.integration
def test_broker_address_is_found_by_other_commands(tmp_path):
    env = {**os.environ, "LAMBDALYTICS_DATA_DIR": str(tmp_path), "LAMBDALYTICS_KAFKA_BOOTSTRAP": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambdalytics.cli", "broker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        bootstrap = proc.stdout.readline().strip()
        assert bootstrap.startswith("127.0.0.1:")
        assert find_bootstrap(Settings(data_dir=tmp_path, kafka_bootstrap=None)) == bootstrap
        done = cli(
            "generate",
            "--duration",
            "5",
            "--rate",
            "5",
            env={"LAMBDALYTICS_DATA_DIR": str(tmp_path), "LAMBDALYTICS_KAFKA_BOOTSTRAP": ""},
        )
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 143
    assert not (tmp_path / "run" / "broker.json").exists()  # SIGTERM unwinds and cleans up


@pytest.mark.unit
def test_batch_compact_compacts_and_vacuums_by_hand_and_refuses_one_version(tmp_path):
    import pyarrow as pa

    from lambdalytics.batch.master import append_batch, master_path, rows_to_table
    from lambdalytics.batch.writer import ViewWriter, read_manifest

    for seq in range(1, 6):
        row = {
            "event_id": f"e{seq}",
            "tenant_id": "t",
            "customer_id": "c",
            "event_type": "page_view",
            "event_time": 1_767_225_600_000,
            "topic": "events.behavioral",
            "partition": 0,
            "offset": seq - 1,
            "broker_time": 1_767_225_600_000,
            "raw": b"{}",
        }
        append_batch(master_path(tmp_path), rows_to_table([row]), {("events.behavioral", 0): seq}, seq)
        view = ViewWriter(tmp_path)
        view.write("v", pa.table({"n": [seq]}))
        view.publish(
            previous=read_manifest(tmp_path),
            watermark={},
            watermark_time=None,
            master_version=seq - 1,
            events=seq,
        )
    env = {"LAMBDALYTICS_DATA_DIR": str(tmp_path), "LAMBDALYTICS_VACUUM_RETENTION_HOURS": "0"}
    refused = cli("batch", "compact", "--keep", "1", env=env)
    assert refused.returncode == 2 and "greater than or equal to 2" in refused.stderr
    done = cli("batch", "compact", "--keep", "2", env=env)
    assert done.returncode == 0, done.stderr
    assert "master: 5 → " in done.stderr and "views/v: 5 → 2 files" in done.stderr
    assert "newest 2 view versions kept" in done.stderr


@pytest.mark.unit
def test_metrics_add_registers_a_catalog_file_and_refuses_a_bad_one(tmp_path):
    env = {"LAMBDALYTICS_DATA_DIR": str(tmp_path / "data")}
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "metrics.toml")
    done = cli("metrics", "add", example, env=env)
    assert done.returncode == 0, done.stderr
    assert "registered largest_order" in done.stderr and "set v1" in done.stderr
    listed = {r["name"] for r in json.loads(cli("metrics", "--json", env=env).stdout)}
    assert {"largest_order", "refund_rate", "revenue"} <= listed
    again = cli("metrics", "add", example, env=env)
    assert again.returncode == 2 and "unique-names: metric 'largest_order'" in again.stderr
    assert sorted(os.listdir(tmp_path / "data" / "catalog")) == ["v000001.json"]
