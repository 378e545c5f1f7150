"""Named API keys per tenant, each with scopes: ``read`` (the tenant's data, minting embed tokens),
``ingest`` (``POST /v1/events``) and ``admin`` (users, keys, host keys, branding, the audit log).

A key is random (256 bits, the tenant key's ``llk_`` prefix), shown once and stored as its SHA-256 hash;
listing shows its name, scopes, creation and last use, never the key. Revoking a key stops it, and every
embed token it minted (the token names its key, claim ``ki``), within ``CACHE_SECONDS`` in every worker
(at once in the worker that revoked it). ``last_used_at`` is written at most once a ``TOUCH_SECONDS``
per key, from a lookup that missed the cache, so a busy key costs no write per request.

The tenant's own key (``TenantRegistry``, from ``POST /v1/admin/tenants``) stays valid and holds every
scope: that is the migration — what worked with it before still does.

Stored in ``$DATA_DIR/run/api_keys.sqlite`` (mode 0600).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lambdalytics.infra import private_files

from .auth import ALL_SCOPES, KEY_PREFIX  # a named key looks like the tenant key: no page ever takes one
from .principal_cache import changed, trusted_until

__all__ = ["ALL_SCOPES", "ApiKey", "ApiKeys"]


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    def public(self) -> dict:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_COLUMNS = "key_id, tenant_id, name, scopes, created_at, last_used_at, revoked_at"


def _key(row: tuple) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], tuple(s for s in row[3].split(",") if s), row[4], row[5], row[6])


class ApiKeys:
    CACHE_SECONDS = 1.0
    CACHE_SIZE = 100_000
    TOUCH_SECONDS = 60.0

    def __init__(self, path: Path):
        self._db = private_files.sqlite(path)
        self._lock = threading.Lock()
        self._by_hash: dict[str, tuple[ApiKey | None, float]] = {}
        self._active: dict[str, tuple[bool, float]] = {}
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, "
                "name TEXT NOT NULL, scopes TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, "
                "created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id)")

    def create(self, tenant_id: str, name: str, scopes: tuple[str, ...]) -> tuple[ApiKey, str]:
        """A new key (the secret is in this answer only) and what is stored about it."""
        unknown = set(scopes) - set(ALL_SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes are some of {', '.join(ALL_SCOPES)}")
        ordered = ",".join(s for s in ALL_SCOPES if s in scopes)
        key, key_id = KEY_PREFIX + secrets.token_urlsafe(32), "key_" + secrets.token_hex(8)
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                (key_id, tenant_id, name, ordered, _hash(key), time.time()),
            )
        return self.get(tenant_id, key_id), key

    def get(self, tenant_id: str, key_id: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ? AND tenant_id = ?", (key_id, tenant_id)
            ).fetchone()
        return _key(row) if row else None

    def list(self, tenant_id: str) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at", (tenant_id,)
            ).fetchall()
        return [_key(r) for r in rows]

    def revoke(self, tenant_id: str, key_id: str) -> bool:
        with self._lock, self._db:
            revoked = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND tenant_id = ? AND revoked_at IS NULL",
                (time.time(), key_id, tenant_id),
            ).rowcount
        self._by_hash.clear()  # this worker sees its own revocation at once
        self._active.clear()
        changed()
        return bool(revoked)

    def lookup(self, key: str) -> ApiKey | None:
        """The live key with this secret, or None; trusted from a cache for ``CACHE_SECONDS``."""
        digest, now = _hash(key), time.monotonic()
        cached = self._by_hash.get(digest)
        if cached is not None and cached[1] > now:
            trusted_until(monotonic=cached[1])
            return cached[0]
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (digest,)
            ).fetchone()
        found = _key(row) if row else None
        if found is not None and (found.last_used_at or 0) < time.time() - self.TOUCH_SECONDS:
            with self._lock, self._db:
                self._db.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (time.time(), found.key_id)
                )
        if len(self._by_hash) >= self.CACHE_SIZE:
            self._by_hash.clear()
        self._by_hash[digest] = (found, now + self.CACHE_SECONDS)
        trusted_until(monotonic=now + self.CACHE_SECONDS)
        return found

    def active(self, key_id: str) -> bool:
        """Whether this key still stands (an embed token it minted is honoured only then), cached."""
        now = time.monotonic()
        cached = self._active.get(key_id)
        if cached is not None and cached[1] > now:
            trusted_until(monotonic=cached[1])
            return cached[0]
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", (key_id,)
            ).fetchone()
        if len(self._active) >= self.CACHE_SIZE:
            self._active.clear()
        self._active[key_id] = (row is not None, now + self.CACHE_SECONDS)
        trusted_until(monotonic=now + self.CACHE_SECONDS)
        return row is not None

    def close(self) -> None:
        self._db.close()
