"""All configuration, from environment variables prefixed ``LAMBDALYTICS_`` (pydantic-settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdalytics.schemas.events import MAX_EVENT_BYTES


class Settings(BaseSettings):
    """Every knob of the pipeline. Unset ``kafka_bootstrap`` means: start the embedded broker."""

    model_config = SettingsConfigDict(env_prefix="LAMBDALYTICS_", extra="ignore")

    env: Literal["dev", "prod"] = Field("dev", description="prod refuses placeholder secrets.")
    kafka_bootstrap: str | None = Field(
        None, description="host:port[,host:port]; unset = start the embedded Tansu broker on loopback."
    )
    kafka_partitions: int = Field(6, ge=1, le=1024, description="Partitions for topics this creates.")
    data_dir: Path = Field(Path("data"), description="Delta tables, run state and broker logs.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin API (dev: generated into DATA_DIR/run when unset)."
    )
    token_secret: SecretStr | None = Field(None, description="HS256 key of embed tokens (dev: generated).")
    erasure_secret: SecretStr | None = Field(
        None, description="HMAC key of the erasure list (dev: generated into DATA_DIR/run when unset)."
    )
    session_idle_seconds: float = Field(
        1800.0, gt=0, description="A dashboard session ends after this long without a request."
    )
    session_absolute_seconds: float = Field(
        12 * 3600.0, gt=0, description="A dashboard session ends this long after sign-in, however active."
    )
    rate_limit_per_s: float = Field(100.0, gt=0, description="Requests per second per credential.")
    rate_limit_burst: int = Field(200, ge=1)
    stream_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="GET /v1/live/stream: how often a stream looks for a changed answer."
    )
    stream_max_seconds: float = Field(
        3600.0, gt=0, description="GET /v1/live/stream: a stream ends (`end` event) after this; clients reconnect."
    )
    stream_max_per_tenant: int = Field(100, ge=1, description="Open streams per tenant and API worker.")
    batch_poll_seconds: float = Field(
        2.0, gt=0, description="How often serving looks for a new batch version."
    )
    batch_interval_seconds: float = Field(300.0, gt=0, description="`up`: seconds between batch runs.")
    max_event_bytes: int = Field(
        MAX_EVENT_BYTES,
        ge=1024,
        description="The one event size limit: POST /v1/events refuses larger events (413/422), the "
        "archiver dead-letters them, the speed consumer skips them.",
    )
    profile_cache_entries: int = Field(
        50_000,
        ge=0,
        description="Customer profiles kept per API worker between polls (LRU; 0 = off). An entry is "
        "recomputed when the batch version or one of the customer's speed events changes.",
    )
    # speed layer
    speed_store: Literal["embedded", "pinot"] = Field(
        "embedded", description="embedded: in the API process; pinot: query a Pinot broker."
    )
    speed_stale_seconds: float = Field(
        5.0,
        gt=0,
        description="Reads answer 503 once the embedded speed consumer made no progress (records, or a "
        "broker answer while idle) for longer than this; its idle cadence is about 1 s.",
    )
    pinot_broker_url: str = "http://localhost:8099"
    pinot_controller_url: str = "http://localhost:9000"
    # batch layer
    block_size: int = Field(
        1000,
        ge=1,
        description="Batch cuts fall on multiples of this offset per partition (speed drops blocks).",
    )
    compact_interval_seconds: float = Field(
        3600.0,
        gt=0,
        description="The archiver compacts the master and applies retention this often (between "
        "micro-batches); `lambdalytics batch compact` does it now.",
    )
    view_versions_kept: int = Field(
        4, ge=2, description="Newest batch view versions whose files retention keeps (>= 2, for rollback)."
    )
    vacuum_retention_hours: int = Field(
        1,
        ge=0,
        description="Master and manifest files replaced by compaction stay this long for readers outside "
        "the batch lock (ad-hoc queries, time travel); kept view versions' master snapshots stay always.",
    )
    spark_master: str = Field(
        "local[*]", description="Any Spark master URL: local[*], spark://host:7077, ..."
    )
    spark_driver_host: str = Field(
        "127.0.0.1",
        description="Address the driver binds and gives executors; on a multi-host cluster one the "
        "workers can reach.",
    )
    spark_driver_memory: str = "4g"
    spark_shuffle_partitions: int = Field(16, ge=1)
    spark_conf: str | None = Field(None, description="Extra Spark properties: 'key=value;key=value'.")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def child_env(base: Mapping[str, str] | None = None, /, **values: Any) -> dict[str, str]:
    """The environment of a ``lambdalytics`` child process: ``values`` given by Settings field name (a
    typo raises instead of being ignored) as ``LAMBDALYTICS_*`` variables over ``base`` (os.environ)."""
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"not Settings fields: {sorted(unknown)}")
    prefix = Settings.model_config["env_prefix"]
    return {
        **(os.environ if base is None else base),
        **{prefix + name.upper(): str(value) for name, value in values.items()},
    }


def settings_env(settings: Settings) -> dict[str, str]:
    """:func:`child_env` carrying every value of ``settings`` that is set and not a secret. A secret
    reaches the child as it reached this process (its variable, or its generated file in the data dir):
    ``str`` of a ``SecretStr`` is a mask."""
    return child_env(
        **{
            name: value
            for name, value in settings.model_dump().items()
            if value is not None and not isinstance(value, SecretStr)
        }
    )
