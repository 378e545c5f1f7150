"""``lambdalytics serve`` as a real subprocess for benchmarks: its environment, readiness, a tenant key
and a clean stop (the whole process group: granian forks its workers)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from lambdalytics.infra.broker import die_with_parent
from lambdalytics.infra.settings import child_env

LAMBDALYTICS = Path(sys.executable).with_name("lambdalytics")


@dataclass(frozen=True)
class RunningApi:
    url: str
    admin_token: str
    proc: subprocess.Popen
    log_path: Path

    def create_tenant(self, tenant_id: str) -> str:
        """``POST /v1/admin/tenants``; returns the tenant's API key."""
        r = httpx.post(
            f"{self.url}/v1/admin/tenants",
            json={"tenant_id": tenant_id, "name": tenant_id},
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["api_key"]


def port_in(first: int, last: int) -> int:
    """The first port of ``first..last`` that is free on loopback (the range this bench may use)."""
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


def _wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API exited with {proc.returncode}; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"API not ready within {timeout_s}s; see {log_path}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # workers left behind by a parent that died first share its process group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def serving_api(
    bootstrap: str, data_dir: Path, port: int, *, env: dict[str, str] | None = None, timeout_s: float = 90
) -> Iterator[RunningApi]:
    """The API on 127.0.0.1:``port`` with the embedded speed store, ready (``/readyz`` 200) when yielded."""
    admin_token = secrets.token_urlsafe(32)
    full_env = {
        **child_env(
            kafka_bootstrap=bootstrap,
            data_dir=data_dir,
            api_host="127.0.0.1",
            api_port=port,
            admin_token=admin_token,
            token_secret=secrets.token_urlsafe(32),
            speed_store="embedded",
        ),
        **(env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "api.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(LAMBDALYTICS), "serve"],
            env=full_env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stopping it reaches granian's workers
            preexec_fn=die_with_parent,  # and SIGTERM if this process dies without cleaning up
        )
    try:
        _wait_ready(url, proc, log_path, timeout_s)
        yield RunningApi(url, admin_token, proc, log_path)
    finally:
        _stop(proc)
