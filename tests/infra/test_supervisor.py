"""The supervisor: a worker that raises is logged, counted, reported and restarted with backoff."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest
from prometheus_client import CollectorRegistry

from lambdalytics.infra.supervisor import Supervised, WorkerMetrics, stop_on_signals

pytestmark = pytest.mark.unit


class Flaky:
    """Raises on its first ``failures`` runs, then runs until asked to stop; records what it saw."""

    def __init__(self, failures: int):
        self.failures = failures
        self.runs = 0
        self.seen: list = []  # the worker's status at the start of each run
        self.steady = threading.Event()
        self.worker: Supervised | None = None

    def __call__(self, stop: threading.Event) -> None:
        self.seen.append(self.worker.status())
        self.runs += 1
        if self.runs <= self.failures:
            raise ValueError(f"boom {self.runs}")
        self.steady.set()
        stop.wait()


def _until(predicate, timeout_s: float = 30.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


def _supervised(flaky: Flaky, **kwargs) -> Supervised:
    flaky.worker = Supervised("flaky", flaky, **kwargs)
    return flaky.worker


def test_a_crashing_worker_is_restarted_with_capped_backoff_counted_reported_and_stops(caplog):
    flaky = Flaky(failures=5)
    worker = _supervised(flaky, initial_backoff_s=0.01, max_backoff_s=0.04, healthy_after_s=3600)
    registry = CollectorRegistry()
    registry.register(WorkerMetrics(lambda: [worker]))
    with caplog.at_level(logging.ERROR, logger="lambdalytics.infra.supervisor"):
        worker.start()
        assert flaky.steady.wait(30)
    assert flaky.runs == 6
    # each restart waited twice as long as the one before, up to the cap
    assert [s.backoff_s for s in flaky.seen[1:]] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert [s.restarts for s in flaky.seen] == [0, 1, 2, 3, 4, 5]
    status = worker.status()
    assert status.up and status.restarts == 5 and status.last_error == "ValueError: boom 5"
    assert status.describe() == "flaky up (5 restarts, last: ValueError: boom 5)"
    crashes = [r for r in caplog.records if "worker flaky crashed" in r.getMessage()]
    assert len(crashes) == 5 and all(r.exc_info and r.exc_info[0] is ValueError for r in crashes)
    assert registry.get_sample_value("lambdalytics_worker_restarts_total", {"worker": "flaky"}) == 5
    assert registry.get_sample_value("lambdalytics_worker_up", {"worker": "flaky"}) == 1

    assert worker.stop(timeout_s=10)
    assert worker.status().state == "stopped" and flaky.runs == 6
    assert registry.get_sample_value("lambdalytics_worker_up", {"worker": "flaky"}) == 0


def test_stop_during_a_long_backoff_does_not_wait_it_out():
    flaky = Flaky(failures=1)
    worker = _supervised(flaky, initial_backoff_s=3600, max_backoff_s=3600)
    worker.start()
    assert _until(lambda: worker.status().state == "backoff")
    assert worker.stop(timeout_s=10)  # joined: the backoff waits on the stop event
    assert worker.status().state == "stopped" and flaky.runs == 1


def test_a_worker_that_returns_has_finished_and_is_not_restarted():
    runs = []
    worker = Supervised("once", lambda stop: runs.append(1))
    worker.start()
    assert _until(lambda: worker.status().state == "finished")
    assert worker.stop(timeout_s=10)
    assert runs == [1] and worker.status().state == "finished" and worker.status().restarts == 0


def test_signals_set_the_stop_event_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGINT)
    stop = threading.Event()
    with stop_on_signals(stop) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(10)
    assert received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is before
