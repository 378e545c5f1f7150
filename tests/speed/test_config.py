"""One config per speed store, a union told apart by ``type``, built from Settings, opened one way."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import ValidationError

from lambdalytics.infra.settings import Settings
from lambdalytics.speed.config import (
    DEDUP_WINDOW_MS,
    EmbeddedStoreConfig,
    PinotConfig,
    parse_store_config,
    store_config,
)
from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.factory import open_store
from lambdalytics.speed.pinot import PinotSpeedStore

pytestmark = pytest.mark.unit


def test_the_type_field_picks_the_model():
    assert parse_store_config({"type": "embedded", "block_size": 5}) == EmbeddedStoreConfig(block_size=5)
    pinot = parse_store_config({"type": "pinot", "broker_url": "http://pinot:8000/"})
    assert isinstance(pinot, PinotConfig) and pinot.broker_url == "http://pinot:8000"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "redis"}, "does not match any of the expected tags"),
        ({"block_size": 5}, "Unable to extract tag"),
        ({"type": "embedded", "block_size": 5, "blocksize": 5}, "Extra inputs are not permitted"),
        ({"type": "embedded"}, "block_size"),  # the batch's cut unit has no safe default
        ({"type": "embedded", "block_size": 0}, "greater than or equal to 1"),
        ({"type": "pinot", "block_size": 5}, "Extra inputs are not permitted"),  # another store's key
        ({"type": "pinot", "broker": "http://x"}, "Extra inputs are not permitted"),
        ({"type": "pinot", "tables": {"events.behavioral": "b"}}, "event topics"),
        ({"type": "pinot", "broker_url": "localhost:8099"}, "http"),
    ],
)
def test_typos_and_foreign_keys_fail_loudly(data, message):
    with pytest.raises(ValidationError, match=message):
        parse_store_config(data)


def test_settings_name_the_store_and_its_environment_variables_configure_it(monkeypatch):
    monkeypatch.delenv("LAMBDALYTICS_SPEED_STORE", raising=False)
    monkeypatch.setenv("LAMBDALYTICS_BLOCK_SIZE", "7")
    monkeypatch.setenv("LAMBDALYTICS_DATA_DIR", "/srv/lambdalytics")
    assert store_config(Settings()) == EmbeddedStoreConfig(
        block_size=7,
        dedup_window_ms=DEDUP_WINDOW_MS,
        event_index=Path("/srv/lambdalytics/event_index"),
        registered_metrics=Path("/srv/lambdalytics"),
    )
    monkeypatch.setenv("LAMBDALYTICS_SPEED_STORE", "pinot")
    monkeypatch.setenv("LAMBDALYTICS_PINOT_BROKER_URL", "http://broker:8000")
    monkeypatch.setenv("LAMBDALYTICS_PINOT_CONTROLLER_URL", "http://controller:9000")
    assert store_config(Settings()) == PinotConfig(
        broker_url="http://broker:8000",
        controller_url="http://controller:9000",
        registered_metrics=Path("/srv/lambdalytics"),
    )


def test_open_store_opens_the_store_its_config_names():
    embedded = open_store(EmbeddedStoreConfig(block_size=3, dedup_window_ms=60_000))
    assert type(embedded) is EmbeddedSpeedStore
    assert (embedded.block_size, embedded.dedup_window_ms) == (3, 60_000)
    config = PinotConfig(broker_url="http://broker:8000", parallelism=1)
    with open_store(config) as pinot:
        assert type(pinot) is PinotSpeedStore and pinot.config is config
    with pytest.raises(TypeError, match="give it to its SpeedConsumer"):  # Pinot's alone filters answers
        open_store(EmbeddedStoreConfig(block_size=3), erasures=object())
    with pytest.raises(TypeError, match="not a speed-store config"):
        open_store({"type": "embedded", "block_size": 3})  # plain data goes through parse_store_config


def test_the_embedded_store_takes_exactly_its_configs_fields():
    """open_store passes the config's fields as keywords: the two lists cannot drift apart."""
    parameters = inspect.signature(EmbeddedSpeedStore).parameters
    assert set(parameters) == set(EmbeddedStoreConfig.model_fields) - {"type"}
    assert (
        parameters["dedup_window_ms"].default == EmbeddedStoreConfig.model_fields["dedup_window_ms"].default
    )
