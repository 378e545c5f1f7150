"""Profile answers kept between polls: widgets ask for the same customers every few seconds.

An entry is valid for exactly one batch index (a new version starts an empty cache) and one speed-store
version token of its customer (``SpeedStore.customer_version``: it changes when one of the customer's
events is applied or coverage changes). The token is read *before* the answer is computed, so an event
applied meanwhile can only make the entry look older than it is (recomputed next time), never newer.
Stores that cannot give a token (Pinot) are never cached. LRU-bounded per worker.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .index import BatchIndex

__all__ = ["AnswerCache"]


class AnswerCache:
    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._index: BatchIndex | None = None
        self._entries: OrderedDict[Any, tuple[object, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (an erasure: no answer that held the customer may be served again)."""
        self._entries.clear()

    def get(self, index: BatchIndex, key: Any, version: object) -> Any | None:
        entry = self._entries.get(key) if index is self._index else None
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, index: BatchIndex, key: Any, version: object, value: Any) -> None:
        if self.max_entries <= 0:
            return
        if index is not self._index:
            if self._index is not None and index.version < self._index.version:
                return  # a request that raced a swap: do not throw away the newer version's entries
            self._index = index
            self._entries.clear()
        self._entries[key] = (version, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
