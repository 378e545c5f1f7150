"""Token buckets, bounded: ``rate`` tokens/s, bursts up to ``burst``, at most ``capacity`` buckets.

The table is an LRU: past ``capacity`` the least recently used bucket is dropped. A dropped bucket
comes back full, which is what an idle one would have refilled to anyway; only a caller cycling
through more than ``capacity`` identities faster than a bucket refills (``burst / rate`` seconds) could
gain a burst from it, and identities here are verified credentials, tenants or client addresses.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, rate: float, burst: int, *, capacity: int = 100_000):
        self.rate, self.burst, self.capacity = rate, burst, capacity
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)

    def take(self, *keys: str) -> float:
        """One token from every bucket named, or none at all: 0 if allowed, else seconds until all of
        them have a token again."""
        now = time.monotonic()
        with self._lock:
            tokens = [self._tokens(key, now) for key in keys]
            short = 1 - min(tokens, default=1.0)
            taken = 1 if short <= 0 else 0
            for key, t in zip(keys, tokens, strict=True):
                self._store(key, t - taken, now)
            return 0.0 if short <= 0 else short / self.rate

    def wait(self, key: str) -> float:
        """Seconds until ``key``'s bucket has a token (0: it has one), taking nothing."""
        if key not in self._buckets:
            return 0.0  # no bucket: a full one (the common case, asked on every request)
        with self._lock:
            return max(0.0, 1 - self._tokens(key, time.monotonic())) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)
