"""``lambdalytics up`` stops on Ctrl-C (SIGINT to the terminal's process group) and on SIGTERM: every
process it started is gone within 10 s, and nothing prints a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lambdalytics.infra.broker import free_port

pytestmark = pytest.mark.integration


def _descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process below ``pid`` (the start time tells a reused pid apart)."""
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if (key := (child, _start_time(child))) not in found and key[1]:
                    found.add(key)
                    todo.append(child)
    return found


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and _start_time(pid) == start


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "up exited before the API was healthy"
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url}/healthz did not answer within {timeout_s}s")


@pytest.mark.parametrize(
    ("signum", "to_group", "exit_code"),
    [(signal.SIGINT, True, 0), (signal.SIGTERM, False, 143)],
    ids=["ctrl-c-to-the-process-group", "sigterm-to-the-process"],
)
def test_up_stops_everything_within_10s_without_a_traceback(tmp_path, signum, to_group, exit_code):
    port = free_port()
    env = {
        **os.environ,
        "LAMBDALYTICS_DATA_DIR": str(tmp_path),
        "LAMBDALYTICS_KAFKA_BOOTSTRAP": "",
        "LAMBDALYTICS_API_PORT": str(port),
    }
    stderr = (tmp_path / "stderr.txt").open("w+")
    # its own session, as a shell gives a foreground job its own process group
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambdalytics.cli", "up", "--rate", "5"],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        started = _descendants(proc.pid)
        assert len(started) >= 3  # broker, API server, its worker
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        deadline = time.monotonic() + 10
        assert proc.wait(timeout=10) == exit_code
        while any(_alive(*p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in started if _alive(*p)], "processes outlived up by more than 10 s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr.seek(0)
    err = stderr.read()
    run_dir = tmp_path / "run"  # up works in the data folder itself (history survives a restart)
    for text in (err, (run_dir / "api.log").read_text()):
        assert "Traceback" not in text, text[-3000:]
    assert not (tmp_path / "run" / "broker.json").exists()  # the broker's address file is cleaned up
