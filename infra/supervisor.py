"""Supervised worker threads: nothing that runs for long may die silently.

A :class:`Supervised` worker runs ``target(stop)`` in a daemon thread. If the target raises, the
crash is logged with its traceback, counted, kept as the worker's ``last_error`` (``/readyz`` and
``up`` show it), and the target is started again after an exponential backoff (capped, and reset once
a run has lasted ``healthy_after_s``), so a fault that repeats at once cannot spin a core. A target
that returns on its own has finished (a bounded stream); it is not restarted. ``stop()`` sets the
event every target watches and joins the thread; the backoff waits on the same event, so stopping
never waits out a backoff.

:class:`WorkerMetrics` exposes a set of workers to Prometheus as
``lambdalytics_worker_restarts_total{worker}`` and ``lambdalytics_worker_up{worker}``, read at scrape
time. :func:`stop_on_signals` turns SIGINT/SIGTERM into a stop event for the main thread.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

__all__ = ["Supervised", "WorkerMetrics", "WorkerStatus", "stop_on_signals"]

State = Literal["new", "running", "backoff", "finished", "stopped"]


@dataclass(frozen=True)
class WorkerStatus:
    name: str
    state: State
    restarts: int  # crashes followed by a restart (or a pending one)
    last_error: str | None  # "ExcType: message" of the latest crash, kept after recovery
    last_error_at: float | None  # epoch seconds
    backoff_s: float | None  # the wait before the latest restart

    @property
    def up(self) -> bool:
        return self.state == "running"

    def describe(self) -> str:
        """One line for a status print: ``archiver up`` or ``archiver backoff (2 restarts: ...)``."""
        text = f"{self.name} {'up' if self.up else self.state}"
        if self.restarts:
            text += f" ({self.restarts} restart{'s' * (self.restarts != 1)}, last: {self.last_error})"
        return text


class Supervised:
    """One long-running worker, restarted with capped exponential backoff whenever it raises."""

    def __init__(
        self,
        name: str,
        target: Callable[[threading.Event], object],
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        healthy_after_s: float = 60.0,
    ):
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s")
        self.name = name
        self.target = target
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.healthy_after_s = healthy_after_s
        self.stop_event = threading.Event()
        self._state: State = "new"
        self._restarts = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._backoff_s: float | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name=name, daemon=True)

    def start(self) -> Supervised:
        self._set("running")
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Ask the target to stop and wait for it; False if it was still running after ``timeout_s``."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("%s did not stop within %.1fs", self.name, timeout_s)
            return False
        return True

    def status(self) -> WorkerStatus:
        with self._lock:
            return WorkerStatus(
                self.name, self._state, self._restarts, self._last_error, self._last_error_at, self._backoff_s
            )

    def _set(self, state: State) -> None:
        with self._lock:
            self._state = state

    def _supervise(self) -> None:
        backoff = self.initial_backoff_s
        while not self.stop_event.is_set():
            started = time.monotonic()
            self._set("running")
            try:
                self.target(self.stop_event)
            except BaseException as exc:  # noqa: BLE001 - a worker's crash of any kind is reported here
                if self.stop_event.is_set():
                    log.info("%s raised while stopping: %s", self.name, _describe(exc))
                    break
                if time.monotonic() - started > self.healthy_after_s:
                    backoff = self.initial_backoff_s  # it ran healthily for a while: a fresh fault
                with self._lock:
                    self._state = "backoff"
                    self._restarts += 1
                    self._last_error = _describe(exc)
                    self._last_error_at = time.time()
                    self._backoff_s = backoff
                log.error(
                    "worker %s crashed; restart %d in %.1fs", self.name, self._restarts, backoff, exc_info=exc
                )
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if not self.stop_event.is_set():
                log.info("worker %s finished", self.name)
                self._set("finished")
                return
        self._set("stopped")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class WorkerMetrics(Collector):
    """Restarts and liveness of the workers ``workers()`` returns, read at scrape time."""

    def __init__(self, workers: Callable[[], Iterable[Supervised]]):
        self.workers = workers

    def collect(self):
        restarts = CounterMetricFamily(
            "lambdalytics_worker_restarts",
            "Crashes of a supervised worker (each restarted)",
            labels=["worker"],
        )
        up = GaugeMetricFamily(
            "lambdalytics_worker_up", "1 while a supervised worker runs", labels=["worker"]
        )
        for worker in self.workers():
            status = worker.status()
            restarts.add_metric([status.name], status.restarts)
            up.add_metric([status.name], 1 if status.up else 0)
        yield restarts
        yield up


@contextlib.contextmanager
def stop_on_signals(
    stop: threading.Event, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[list[int]]:
    """While inside, SIGINT/SIGTERM set ``stop`` instead of raising in whatever the main thread was
    doing (a traceback, a half-closed client). Yields the list of signals received, in order; the
    previous handlers come back on exit. Main thread only (Python's rule for signal handlers)."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
