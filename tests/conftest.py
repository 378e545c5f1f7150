"""Shared fixtures. Expensive ones (the Kafka broker) start once per pytest session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker: LAMBDALYTICS_KAFKA_BOOTSTRAP if set, else testcontainers' Kafka
    when a Docker engine answers, else the embedded Tansu broker."""
    if configured := os.environ.get("LAMBDALYTICS_KAFKA_BOOTSTRAP"):
        yield configured
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        from lambdalytics.infra.broker import EmbeddedBroker

        with EmbeddedBroker() as broker:
            yield broker.bootstrap


@pytest.fixture
def unique() -> str:
    """A fresh suffix so tests sharing the session broker never see each other's topics or tenants."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (start-up costs ~5 s)."""
    from lambdalytics.batch.spark import build_session
    from lambdalytics.infra.settings import Settings

    session = build_session(Settings(spark_shuffle_partitions=4, spark_driver_memory="2g"))
    yield session
    session.stop()
