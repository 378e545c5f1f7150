"""Where a running pipeline lives: the broker address other commands on this machine can find.

``lambdalytics up`` / ``lambdalytics broker`` write ``$DATA_DIR/run/broker.json`` while they run, so
that a one-shot command in another terminal (``generate``, ``replay``) finds the embedded broker
without configuration. ``LAMBDALYTICS_KAFKA_BOOTSTRAP`` always wins.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson

from .broker import EmbeddedBroker
from .epochs import EpochTable
from .settings import Settings


class NoBrokerError(RuntimeError):
    pass


def _address_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / "broker.json"


def _alive(pid: int, bootstrap: str) -> bool:
    try:
        os.kill(pid, 0)
        host, port = bootstrap.rsplit(":", 1)
        with socket.create_connection((host, int(port)), 0.5):
            return True
    except OSError:
        return False


def find_bootstrap(settings: Settings) -> str:
    """The configured Kafka, else the embedded broker of a running ``up``/``broker``; else a clear error."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    path = _address_file(settings)
    if path.exists():
        info = orjson.loads(path.read_bytes())
        if _alive(info["pid"], info["bootstrap"]):
            return info["bootstrap"]
    raise NoBrokerError(
        "no Kafka to talk to: LAMBDALYTICS_KAFKA_BOOTSTRAP is unset and no embedded broker is running "
        f"(looked for {path}). Start one with `lambdalytics broker` or `lambdalytics up`, "
        "or set LAMBDALYTICS_KAFKA_BOOTSTRAP=host:port."
    )


@contextlib.contextmanager
def running_broker(settings: Settings, *, master_exists: bool = False) -> Iterator[str]:
    """Configured Kafka, or an embedded broker for the block's lifetime (address published for others).

    The embedded broker is a new log, a new restart epoch (``infra.epochs``); ``master_exists`` says the
    data folder already holds a master, whose log is sealed as epoch 0 first if no table recorded it."""
    if settings.kafka_bootstrap:
        yield settings.kafka_bootstrap
        return
    EpochTable(settings.data_dir).seal_unrecorded(master_exists)
    path = _address_file(settings)
    with EmbeddedBroker(log_path=settings.data_dir / "run" / "broker.log") as broker:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({"bootstrap": broker.bootstrap, "pid": os.getpid()}))
        try:
            yield broker.bootstrap
        finally:
            path.unlink(missing_ok=True)
