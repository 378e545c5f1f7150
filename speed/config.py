"""One config per speed store, told apart by its ``type`` field (Feast's ``online_stores`` pattern).

:data:`SpeedStoreConfig` is the discriminated union ``embedded | pinot``; :func:`store_config` builds the
one that a :class:`~lambdalytics.infra.settings.Settings` names, and ``speed.factory.open_store`` opens it.

The models live here, beside the stores they configure, and are built *from* a Settings object rather
than held by one: ``infra`` is the floor and imports only ``schemas``, so Settings cannot name a speed
type, while the speed layer may read the floor. Settings therefore keeps the environment variables
(``LAMBDALYTICS_SPEED_STORE``, ``..._PINOT_*``, ``..._BLOCK_SIZE``) and this module is the one place that
maps them onto a store. Parsing a config imports no store client (pinotdb, httpx): validating one is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from lambdalytics.infra.event_index import event_index_path
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.topics import EVENT_TOPICS, TOPIC_BY_FAMILY

__all__ = [
    "DEDUP_WINDOW_MS",
    "TABLE_BY_TOPIC",
    "EmbeddedStoreConfig",
    "PinotConfig",
    "SpeedStoreConfig",
    "parse_store_config",
    "store_config",
]

DEDUP_WINDOW_MS = 24 * 3_600_000
"""How long an embedded store *without* an event index retains the ids it no longer holds, by its own
monotonic clock; and Pinot's ``dedupConfig.metadataTTL`` in ``infra/pinot/`` (in broker time there)."""

TABLE_BY_TOPIC: dict[str, str] = {
    topic: f"events_{family.value}" for family, topic in TOPIC_BY_FAMILY.items()
}
"""Default REALTIME table per event topic (``infra/pinot/`` is applied under these names)."""


class _StoreConfig(BaseModel):
    """Unknown keys are rejected (a typo fails loudly); a config never changes once a store holds it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddedStoreConfig(_StoreConfig):
    """The in-process store (``speed.embedded``), fed by a ``SpeedConsumer`` in each serving worker."""

    type: Literal["embedded"] = "embedded"
    block_size: int = Field(
        ge=1, description="Offsets per block; must be the batch layer's cut unit (Settings.block_size)."
    )
    dedup_window_ms: int = Field(
        DEDUP_WINDOW_MS,
        ge=0,
        description="Without an event index only: how long ids of dropped blocks are retained for dedup, "
        "by the store's monotonic clock (no record's timestamp moves it).",
    )
    event_index: Path | None = Field(
        None,
        description="The archiver's event-id index (<data_dir>/event_index): dedup is exact beyond any "
        "window, and a W the index does not cover is refused.",
    )
    registered_metrics: Path | None = Field(
        None,
        description="The data folder whose registered catalog (<data_dir>/catalog) the store aggregates "
        "besides the built-in one, as registered when the store opens; None: the built-in catalog only.",
    )


class PinotConfig(_StoreConfig):
    """Where the Pinot broker is and how to ask it (``speed.pinot``)."""

    type: Literal["pinot"] = "pinot"
    broker_url: str = Field("http://localhost:8099", description="Broker base URL (QuickStart: :8000).")
    controller_url: str = Field("http://localhost:9000", description="Controller, for `pinot apply`.")
    tables: dict[str, str] = Field(default_factory=lambda: dict(TABLE_BY_TOPIC), description="topic -> table")
    query_timeout_ms: int = Field(5_000, gt=0, description="Sent to the broker as queryOptions timeoutMs.")
    http_timeout_s: float = Field(10.0, gt=0)
    max_rows: int = Field(
        100_000, gt=0, le=1_000_000, description="Most groups or values one query may return; more fails."
    )
    parallelism: int = Field(4, ge=1, le=32, description="Statements of one read sent concurrently.")
    status_cache_s: float = Field(
        1.0, ge=0, description="status() (three statements) is reused this long; serving asks it per request."
    )
    registered_metrics: Path | None = Field(
        None,
        description="The data folder whose registered catalog (<data_dir>/catalog) the store answers "
        "besides the built-in one, as registered when the store opens; None: the built-in catalog only.",
    )

    @field_validator("broker_url", "controller_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL, got {url!r}")
        return url.rstrip("/")

    @field_validator("tables")
    @classmethod
    def _one_table_per_topic(cls, tables: dict[str, str]) -> dict[str, str]:
        if set(tables) != set(EVENT_TOPICS):
            raise ValueError(
                f"tables must map exactly the event topics {list(EVENT_TOPICS)}, got {sorted(tables)}"
            )
        if len(set(tables.values())) != len(tables):
            raise ValueError("each topic needs its own table (a REALTIME table consumes one topic)")
        return tables


SpeedStoreConfig = Annotated[EmbeddedStoreConfig | PinotConfig, Field(discriminator="type")]
"""Exactly one store's config; ``type`` picks the model (an unknown type or key is refused)."""

_ADAPTER: TypeAdapter[EmbeddedStoreConfig | PinotConfig] = TypeAdapter(SpeedStoreConfig)


def parse_store_config(data: Mapping[str, Any]) -> EmbeddedStoreConfig | PinotConfig:
    """A config from plain data (a file, a test): ``{"type": "pinot", "broker_url": ...}``."""
    return _ADAPTER.validate_python(dict(data))


def store_config(settings: Settings) -> EmbeddedStoreConfig | PinotConfig:
    """The config of the store ``settings.speed_store`` names, from the ``LAMBDALYTICS_*`` variables."""
    if settings.speed_store == "pinot":
        return PinotConfig(
            broker_url=settings.pinot_broker_url,
            controller_url=settings.pinot_controller_url,
            registered_metrics=settings.data_dir,
        )
    return EmbeddedStoreConfig(
        block_size=settings.block_size,
        event_index=event_index_path(settings.data_dir),
        registered_metrics=settings.data_dir,
    )
