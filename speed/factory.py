"""``open_store(config)``: the one way to get a :class:`~lambdalytics.speed.store.SpeedStore`.

Each store module is imported only when its config is opened, so an embedded store never loads the Pinot
client (pinotdb, httpx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

from .config import EmbeddedStoreConfig, PinotConfig
from .store import SpeedStore

if TYPE_CHECKING:
    from lambdalytics.infra.erasures import ErasureList

    from .embedded import EmbeddedSpeedStore
    from .pinot import PinotSpeedStore

__all__ = ["open_store"]


@overload
def open_store(config: EmbeddedStoreConfig) -> EmbeddedSpeedStore: ...
@overload
def open_store(config: PinotConfig, *, erasures: ErasureList | None = None) -> PinotSpeedStore: ...
def open_store(
    config: EmbeddedStoreConfig | PinotConfig, *, erasures: ErasureList | None = None
) -> SpeedStore:
    """The store ``config.type`` names, configured by ``config``.

    ``erasures``: the erasure list a Pinot store leaves out of its answers (Pinot ingests the topics
    itself, so the store is where erased customers are filtered). The embedded store gets none: its
    consumer skips their events (``SpeedConsumer(erasures=...)``) and ``erase`` drops what it holds.
    """
    match config:
        case EmbeddedStoreConfig():
            if erasures is not None:
                raise TypeError("the embedded store takes no erasure list: give it to its SpeedConsumer")
            from .embedded import EmbeddedSpeedStore

            return EmbeddedSpeedStore(**config.model_dump(exclude={"type"}))
        case PinotConfig():
            from .pinot import PinotSpeedStore

            return PinotSpeedStore(config, erasures=erasures)
    raise TypeError(f"not a speed-store config: {config!r}")
