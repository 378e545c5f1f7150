"""``open_store(config)``: the one way to get a :class:`~lambdalytics.speed.store.SpeedStore`.

Each store module is imported only when its config is opened, so an embedded store never loads the Pinot
client (pinotdb, httpx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

from .config import EmbeddedStoreConfig, PinotConfig
from .store import SpeedStore

if TYPE_CHECKING:
    from .embedded import EmbeddedSpeedStore
    from .pinot import PinotSpeedStore

__all__ = ["open_store"]


@overload
def open_store(config: EmbeddedStoreConfig) -> EmbeddedSpeedStore: ...
@overload
def open_store(config: PinotConfig) -> PinotSpeedStore: ...
def open_store(config: EmbeddedStoreConfig | PinotConfig) -> SpeedStore:
    """The store ``config.type`` names, configured by ``config``."""
    match config:
        case EmbeddedStoreConfig():
            from .embedded import EmbeddedSpeedStore

            return EmbeddedSpeedStore(**config.model_dump(exclude={"type"}))
        case PinotConfig():
            from .pinot import PinotSpeedStore

            return PinotSpeedStore(config)
    raise TypeError(f"not a speed-store config: {config!r}")
