"""Fixtures of the reliability suite: a whole running system per test, seeded randomness, the report."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

from .report import Report, Section
from .system import System

REPORT = Report()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    section = REPORT.sections.get(item.name)
    if section is None:
        return
    if rep.failed:
        section.outcome = f"failed ({rep.when})"
    elif rep.when == "call":
        section.outcome = "passed" if rep.passed else rep.outcome


@pytest.fixture(scope="session")
def seed() -> int:
    """One seed for the session: from LAMBDALYTICS_RELIABILITY_SEED, else random (printed either way)."""
    value = int(os.environ.get("LAMBDALYTICS_RELIABILITY_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nreliability seed: {value} (LAMBDALYTICS_RELIABILITY_SEED={value} replays it)")
    REPORT.seed = value
    return value


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    """The session's collector; written to $LAMBDALYTICS_RELIABILITY_REPORT when that is set."""
    yield REPORT
    if path := os.environ.get("LAMBDALYTICS_RELIABILITY_REPORT"):
        REPORT.write(path)
        print(f"\nreliability report written to {path}")


@pytest.fixture
def rng(seed: int, request) -> random.Random:
    """Seeded per test, so one test's draws do not depend on which other tests ran."""
    return random.Random(f"{seed}:{request.node.name}")


@pytest.fixture
def figures(report: Report, request) -> Iterator[Section]:
    """This test's section of the report; its wall time includes starting and stopping the processes."""
    doc = (request.node.function.__doc__ or request.node.name).strip().splitlines()[0].rstrip(".")
    section = report.section(request.node.name, doc)
    started = time.monotonic()
    yield section
    section.seconds = time.monotonic() - started


@pytest.fixture
def system(tmp_path, figures) -> Iterator[System]:
    """Own broker, data dir and processes; everything this test started is ended afterwards."""
    sut = System(tmp_path / "data")
    try:
        sut.start_broker()
        yield sut
    finally:
        sut.close()
