"""What the server-sent event streams of one worker share: a bound on open streams per tenant, one
computation per tick for every stream asking the same question, and the counts /metrics shows."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["LiveStreams"]


class LiveStreams:
    MAX_MEMO_ENTRIES = 4096

    def __init__(self, *, max_per_tenant: int, tick_seconds: float):
        self.max_per_tenant = max_per_tenant
        self.tick_seconds = tick_seconds
        self.pushed: Counter[str] = Counter()  # answers pushed, by event name
        self._open: defaultdict[str, int] = defaultdict(int)
        self._memo: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()  # answers are computed in worker threads when reads block

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def acquire(self, tenant: str) -> bool:
        """A slot for one more stream of the tenant, or False when it holds ``max_per_tenant``."""
        if self._open[tenant] >= self.max_per_tenant:
            return False
        self._open[tenant] += 1
        return True

    def release(self, tenant: str) -> None:
        self._open[tenant] -= 1
        if not self._open[tenant]:
            del self._open[tenant]

    def shared(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, at most once per tick for every stream asking with the same key: N widgets of
        one tenant watching the same window cost one answer a tick, not N."""
        now = time.monotonic()
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None and now - hit[0] < self.tick_seconds:
                return hit[1]
        value = compute()
        with self._lock:
            if len(self._memo) >= self.MAX_MEMO_ENTRIES:
                self._memo = {k: v for k, v in self._memo.items() if now - v[0] < self.tick_seconds}
            self._memo[key] = (now, value)
        return value
