"""Resolved bearer credentials, so a polled route pays a hash and a dict lookup to know who is asking.

An entry is the ``Principal`` a bearer token resolved to, kept no longer than anything it was resolved
from:

- the credential stores' own caches (``TenantRegistry``, ``ApiKeys``, ``HostKeys`` trust a SQLite answer
  for ``CACHE_SECONDS``): each lookup made while resolving reports when its answer stops being trusted
  (:func:`trusted_until`) and the entry expires with the earliest of them, so a key rotated or revoked
  in another worker is refused there within ``CACHE_SECONDS``, as before — the bound is unchanged;
- the token's expiry (``exp``, wall clock, reported the same way): never honoured at or after it;
- a change made in this worker (a rotation, a key revoked, a host key added or removed: :func:`changed`,
  called where the stores empty their caches): every entry goes at once.

Keyed by the SHA-256 of the token, so the table holds no bearer secret. Failures are never cached: each
one still counts against the client's address. Bounded: past ``capacity`` the oldest entry goes.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .auth import Principal

__all__ = ["PrincipalCache", "changed", "trusted_until"]

MAX_AGE_SECONDS = 1.0
"""An entry's longest life even when nothing it was resolved from reported a bound (the admin token)."""

_horizon: ContextVar[list[float] | None] = ContextVar("principal_horizon", default=None)
_changes = [0]  # bumped by every credential change made in this process


def trusted_until(*, monotonic: float | None = None, wall: float | None = None) -> None:
    """Called by a credential lookup: the answer it gave is trusted until ``monotonic``
    (``time.monotonic()``) or until ``wall`` (``time.time()``, a token's ``exp``). Outside a
    :meth:`PrincipalCache.resolve` it does nothing."""
    horizon = _horizon.get()
    if horizon is not None:
        if monotonic is not None:
            horizon[0] = min(horizon[0], monotonic)
        if wall is not None:
            horizon[1] = min(horizon[1], wall)


def changed() -> None:
    """A credential changed in this process: no entry resolved before it is served again."""
    _changes[0] += 1


class PrincipalCache:
    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: dict[bytes, tuple[Principal, float, float, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, token: str, resolve: Callable[[], Principal]) -> Principal:
        """Who ``token`` is: from the table while its entry holds, else ``resolve()`` (which raises
        ``AuthError`` for a refused token: nothing is kept then)."""
        digest = hashlib.sha256(token.encode()).digest()
        entry = self._entries.get(digest)
        if entry is not None:
            who, until, expires, changes = entry
            if changes == _changes[0] and time.monotonic() < until and time.time() < expires:
                self.hits += 1
                return who
            self._entries.pop(digest, None)
        self.misses += 1
        changes = _changes[0]  # read before resolving: a change meanwhile makes the entry look older
        horizon = [time.monotonic() + MAX_AGE_SECONDS, math.inf]
        reset = _horizon.set(horizon)
        try:
            who = resolve()
        finally:
            _horizon.reset(reset)
        if self.capacity > 0:
            if len(self._entries) >= self.capacity:
                self._entries.pop(next(iter(self._entries), None), None)
            self._entries[digest] = (who, horizon[0], horizon[1], changes)
        return who
