"""Restart epochs: one logical offset line per partition across Kafka logs that start over.

The embedded broker keeps its log in memory, so each start begins every partition at offset 0 again,
while the master dataset, the watermark W, the offset blocks and the batch cut are all defined on one
ever-growing offset per partition. An *epoch* is one Kafka log (one cluster id); its *base* per
(topic, partition) is where its offsets begin on the logical line:

    logical offset = base_e[tp] + Kafka offset in epoch e

The base of a new epoch is the end of everything archived before it, rounded up to a multiple of the
block size B (:func:`base_after`), so no offset block holds records of two epochs and the previous
epoch's last partial block is the batch's alone. Every layer that sees a Kafka offset — the archiver,
the speed consumer — translates it here; everything behind them (the master, W, blocks, dedup order,
the merge) keeps working on logical offsets and is unchanged.

**The table.** ``<data_dir>/epochs.json``: a JSON list, oldest first, of ``{number, cluster_id, base,
block_size, started_at}``; written atomically (a temporary file renamed over it) by the master's one
writer, the archiver, when it first connects to a cluster id the table does not know
(:meth:`EpochTable.begin`). Readers (the speed consumer) only look an epoch up.

**Identity.** A cluster is identified by the Kafka cluster id of its metadata (DescribeCluster). The
embedded broker gets a fresh ``lambdalytics-embedded-<uuid>`` id at every start, so each start is a new
epoch. A Kafka cluster keeps its id for life, so it stays in one epoch; pointing the same data folder at
another cluster (a new id) begins a new epoch the same way. Going back to an *older* epoch's cluster is
refused (:class:`EpochError`): its offsets would collide with what came after.

**The first epoch is base 0.** An empty table means no restart happened in this folder: the first
cluster seen becomes epoch 0 with base 0 (logical = Kafka offsets), which is also what a reader assumes
while the table is still empty — so a speed consumer that starts before the archiver agrees with it.
A master archived before epochs existed came from a log nobody recorded: before an embedded broker
(a new log by construction) starts over it, ``up`` and ``broker`` record that log as epoch 0
(:meth:`EpochTable.seal_unrecorded`), so the new broker becomes epoch 1 above it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from lambdalytics.schemas.views import Watermark, decode_offsets, encode_offsets

__all__ = [
    "EMBEDDED_CLUSTER_PREFIX",
    "EPOCHS_FILE",
    "Epoch",
    "EpochError",
    "EpochTable",
    "IDENTITY",
    "UNRECORDED_CLUSTER",
    "base_after",
    "cluster_id",
]

EPOCHS_FILE = "epochs.json"
EMBEDDED_CLUSTER_PREFIX = "lambdalytics-embedded-"
"""Cluster ids the embedded broker is started with (a fresh uuid follows: each start is a new log)."""
UNRECORDED_CLUSTER = "unrecorded"
"""The cluster id of epoch 0 when a master predates the table (:meth:`EpochTable.seal_unrecorded`)."""


class EpochError(RuntimeError):
    """The cluster cannot be placed on the logical offset line (an older epoch's cluster came back)."""


def base_after(archived: Mapping[tuple[str, int], int], block_size: int) -> Watermark:
    """The base of the epoch after ``archived`` (next offsets per partition): each rounded up to a
    multiple of B, so a block never mixes two epochs. Partitions at 0 are left out (base 0)."""
    if block_size < 1:
        raise ValueError(f"block size must be >= 1, got {block_size}")
    return {
        tp: -(-offset // block_size) * block_size for tp, offset in sorted(archived.items()) if offset > 0
    }


@dataclass(frozen=True)
class Epoch:
    """One Kafka log on the logical offset line: offset k of ``tp`` is logical ``base[tp] + k``."""

    number: int
    cluster_id: str
    base: Watermark = field(default_factory=dict)
    block_size: int | None = None
    started_at: str = ""

    def logical(self, topic: str, partition: int, kafka_offset: int) -> int:
        """The logical offset of this epoch's Kafka offset (also for positions and high-water marks)."""
        return self.base.get((topic, partition), 0) + kafka_offset

    def kafka(self, topic: str, partition: int, logical: int) -> int:
        """The Kafka offset of a logical position; a position below this epoch's base is its start (0):
        the offsets in between belong to earlier epochs, which this log does not hold."""
        return max(logical - self.base.get((topic, partition), 0), 0)

    def below_base(self, watermark: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """The partitions whose W stops below this epoch's base: what only earlier epochs (the master)
        hold, so no speed side fed from this log can cover W there."""
        return {tp: base for tp, base in sorted(self.base.items()) if watermark.get(tp, 0) < base}

    def to_json(self) -> dict:
        return {
            "number": self.number,
            "cluster_id": self.cluster_id,
            "base": orjson.loads(encode_offsets(self.base)),
            "block_size": self.block_size,
            "started_at": self.started_at,
        }

    @classmethod
    def from_json(cls, obj: dict) -> Epoch:
        return cls(
            number=int(obj["number"]),
            cluster_id=str(obj["cluster_id"]),
            base=decode_offsets(orjson.dumps(obj.get("base") or {}).decode()),
            block_size=obj.get("block_size"),
            started_at=str(obj.get("started_at", "")),
        )


IDENTITY = Epoch(number=0, cluster_id="", base={})
"""Logical = Kafka offsets: for consumers given no table (tests, benchmarks)."""


class EpochTable:
    """``<data_dir>/epochs.json``: read by anyone, written only by the master's writer (the archiver)."""

    def __init__(self, data_dir: str | Path):
        self.path = Path(data_dir) / EPOCHS_FILE
        self._lock = threading.Lock()

    def epochs(self) -> list[Epoch]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return [Epoch.from_json(obj) for obj in orjson.loads(raw)]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise EpochError(
                f"{self.path} is not a valid epoch table ({exc}); restore it, do not delete it"
            ) from exc

    def for_cluster(self, cluster: str) -> Epoch | None:
        """The epoch of this cluster id: recorded; or, while the table is empty, the epoch 0 with base 0
        the archiver will record for it; None while the archiver has not begun it (a later cluster)."""
        epochs = self.epochs()
        if not epochs:
            return Epoch(number=0, cluster_id=cluster, base={})
        return next((e for e in epochs if e.cluster_id == cluster), None)

    def seal_unrecorded(self, master_exists: bool) -> Epoch | None:
        """Before a new embedded log starts over a folder: a master archived before the table existed
        came from an unrecorded log; record it as epoch 0 (base 0), so the new log begins above it.
        Returns that epoch, or None when there is nothing to seal."""
        with self._lock:
            if not master_exists or self.epochs():
                return None
            epoch = Epoch(number=0, cluster_id=UNRECORDED_CLUSTER, base={}, started_at=_now())
            self._write([epoch])
            return epoch

    def enter(self, cluster: str, archived: Mapping[tuple[str, int], int], block_size: int) -> Epoch:
        """The epoch to write ``cluster``'s records in: its own if it is the latest, a new one if the
        cluster is new (base = :func:`base_after` ``archived``); an older epoch's cluster is refused."""
        with self._lock:
            epochs = self.epochs()
            known = next((e for e in epochs if e.cluster_id == cluster), None)
            if known is not None:
                if known.number != epochs[-1].number:
                    raise EpochError(
                        f"Kafka cluster {cluster!r} is epoch {known.number}, but epoch {epochs[-1].number} "
                        f"(cluster {epochs[-1].cluster_id!r}) came after it: its offsets would collide with "
                        f"what was archived since. Archive it into another data folder."
                    )
                return known
            epoch = Epoch(
                number=epochs[-1].number + 1 if epochs else 0,
                cluster_id=cluster,
                base=base_after(archived, block_size) if epochs else {},  # the first epoch: see the module
                block_size=block_size,
                started_at=_now(),
            )
            self._write([*epochs, epoch])
            return epoch

    def _write(self, epochs: list[Epoch]) -> None:
        """All or nothing: a reader sees the old table or the new one, never a torn file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = orjson.dumps([e.to_json() for e in epochs], option=orjson.OPT_INDENT_2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{EPOCHS_FILE}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def cluster_id(bootstrap: str, *, timeout_ms: int = 5_000) -> str:
    """The Kafka cluster id behind ``bootstrap`` (DescribeCluster); raises ``KafkaError`` when unreachable."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="lambdalytics-epochs", request_timeout_ms=timeout_ms
    )
    try:
        found = admin.describe_cluster().get("cluster_id")
    finally:
        admin.close()
    if not found:
        raise KafkaError(f"{bootstrap} reported no cluster id")
    return str(found)
