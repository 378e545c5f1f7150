"""Batch runs started on request (``POST /v1/admin/batch-runs``), each in a process of its own.

An API worker never runs Spark. ``BatchRuns.trigger`` starts ``python -m lambdalytics.batch.runs
RUN_ID``, which calls ``job.run_batch`` (so the views' own lock, ``job.exclusive``, still guards against a
``lambdalytics batch run`` from the CLI) and records how it ended. The record of the latest run is one
JSON file, ``$DATA_DIR/run/batch-run.json``, replaced atomically: every worker, and the API after a
restart, reads the same run.

Two flocks next to it:

- ``batch-run.alive``: locked by the spawning worker and *handed to the run process* as an inherited
  descriptor, so it is held exactly as long as that process lives (the OS drops it when the process
  dies, however it dies). A trigger that cannot take it answers "already running"; a reader that can
  take it while the record says ``running`` knows the process died without reporting, and records it
  failed.
- ``batch-run.mutex``: held for the few microseconds of reading or replacing the record, so a trigger,
  a reader and a finishing run never interleave.

Flocks are local to one host: API workers on other machines over a shared data dir are not covered.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from lambdalytics.infra.settings import Settings, settings_env

log = logging.getLogger(__name__)

__all__ = ["BatchRun", "BatchRuns"]

ENTRY_POINT = (sys.executable, "-m", "lambdalytics.batch.runs")
DIED = "the batch run process ended without reporting a result (killed?)"


@dataclass(frozen=True)
class BatchRun:
    run_id: str
    state: Literal["running", "succeeded", "failed"]
    started_at_ms: int
    pid: int
    batch_version: int | None = None
    finished_at_ms: int | None = None
    error: str | None = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Files:
    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "run"
        self.record = self.dir / "batch-run.json"
        self.alive = self.dir / "batch-run.alive"
        self.mutex = self.dir / "batch-run.mutex"
        self.log = self.dir / "batch-run.log"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.mutex.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def read(self) -> BatchRun | None:
        try:
            return BatchRun(**json.loads(self.record.read_text()))
        except FileNotFoundError:
            return None

    def write(self, run: BatchRun) -> None:
        """Atomically: a reader sees the previous record or this one, never half of one."""
        tmp = self.record.with_name(f".{self.record.name}.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(run)))
        os.replace(tmp, self.record)

    def take_alive(self) -> int | None:
        """The alive lock's descriptor, locked; None while a run process holds it."""
        fd = os.open(self.alive, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd


class BatchRuns:
    """Start batch runs as processes and read the latest one's record, the same from every worker."""

    def __init__(self, settings: Settings, *, command: Sequence[str] = ENTRY_POINT):
        self.settings = settings
        self.command = tuple(command)
        self._files = _Files(Path(settings.data_dir))
        self.process: subprocess.Popen | None = None
        """The run process this worker started last, if any (reaped by a thread of its own)."""

    def trigger(self) -> str | None:
        """Start a run; None if one is already running (started by any worker)."""
        with self._files.locked():
            fd = self._files.take_alive()
            if fd is None:
                return None
            try:
                run_id, started_at_ms = uuid.uuid4().hex, _now_ms()
                process = self._spawn(run_id, fd)
                # the run process records its end under the mutex, so after this record
                self._files.write(BatchRun(run_id, "running", started_at_ms, process.pid))
            finally:
                os.close(fd)  # the run process holds its own reference to the lock now
        self.process = process
        threading.Thread(target=process.wait, name="batch-run-reaper", daemon=True).start()
        return run_id

    def _spawn(self, run_id: str, alive_fd: int) -> subprocess.Popen:
        with self._files.log.open("ab") as out:
            return subprocess.Popen(
                [*self.command, run_id, "--alive-fd", str(alive_fd)],
                env=settings_env(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                pass_fds=(alive_fd,),
                start_new_session=True,  # a run finishes even if the API is stopped meanwhile
            )

    def latest(self) -> BatchRun | None:
        """The latest run; one whose process died while running is recorded failed, here, once."""
        with self._files.locked():
            run = self._files.read()
            if run is None or run.state != "running":
                return run
            fd = self._files.take_alive()
            if fd is None:
                return run
            try:
                run = _ended(run, error=DIED)
                self._files.write(run)
            finally:
                os.close(fd)
            return run


def _ended(run: BatchRun, *, error: str | None = None, batch_version: int | None = None) -> BatchRun:
    return replace(
        run,
        state="failed" if error else "succeeded",
        batch_version=batch_version,
        finished_at_ms=_now_ms(),
        error=error[:2000] if error else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The run process: one ``run_batch``, then its record. Holds the alive lock (inherited) until exit."""
    parser = argparse.ArgumentParser(prog="python -m lambdalytics.batch.runs")
    parser.add_argument("run_id")
    parser.add_argument("--alive-fd", type=int, required=True, help="the inherited, locked alive lock")
    args = parser.parse_args(argv)
    os.fstat(args.alive_fd)  # fails loudly when started by hand, without the lock
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings()
    try:
        from .job import run_batch

        manifest = run_batch(settings, show_progress=False)
        error, version = None, manifest.batch_version if manifest else None
    except Exception as exc:  # reported through the record, like any way a run can end
        log.exception("batch run %s failed", args.run_id)
        error, version = f"{type(exc).__name__}: {exc}", None
    files = _Files(Path(settings.data_dir))
    with files.locked():
        run = files.read()
        if run is not None and run.run_id == args.run_id:
            files.write(_ended(run, error=error, batch_version=version))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
