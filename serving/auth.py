"""Tenants, API keys and embed tokens.

- Tenant API keys are random (256 bits), shown once, stored as SHA-256 hashes in a small SQLite file
  under the data dir (a hash suffices for a random key; no password stretching needed).
- Embed tokens are HS256 JWTs (PyJWT) naming the tenant and what they may show: one customer, a list of
  campaigns, the tenant's cohort table (the tenant's live metrics are always allowed), with an expiry.
  Dashboard tokens are HS256 JWTs that read everything of one tenant and write nothing; the dashboard's
  login form trades a tenant key for one, so the key never stays in a browser. The signing secret comes
  from ``LAMBDALYTICS_TOKEN_SECRET`` or is generated once and kept in the data dir.
- The admin token comes from ``LAMBDALYTICS_ADMIN_TOKEN`` (generated and printed in dev when unset;
  ``prod`` refuses to start without one).

The tenant is always taken from the verified credential, never from the request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt

__all__ = ["AuthError", "Principal", "TenantRegistry", "TokenSigner"]

KEY_PREFIX = "llk_"


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


READERS = ("tenant", "dashboard")  # read everything of their tenant


@dataclass(frozen=True)
class Principal:
    kind: Literal["admin", "tenant", "dashboard", "embed"]
    tenant_id: str | None = None
    customer_id: str | None = None
    campaigns: frozenset[str] = frozenset()
    cohorts: bool = False

    def can_read_customer(self, customer_id: str) -> bool:
        return self.kind in READERS or (self.kind == "embed" and self.customer_id == customer_id)

    def can_read_campaign(self, campaign_id: str) -> bool:
        return self.kind in READERS or (self.kind == "embed" and campaign_id in self.campaigns)

    def can_read_cohorts(self) -> bool:
        return self.kind in READERS or (self.kind == "embed" and self.cohorts)

    def can_read_live(self) -> bool:
        return self.kind in (*READERS, "embed")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class TenantRegistry:
    CACHE_SECONDS = 1.0
    CACHE_SIZE = 100_000

    def __init__(self, path: Path):
        self._cache: dict[str, tuple[str | None, float]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tenants (tenant_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                "key_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL)"
            )

    def create(self, tenant_id: str, name: str) -> str | None:
        """A new tenant and its key (shown once); None if the tenant exists."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._db:
            try:
                self._db.execute(
                    "INSERT INTO tenants VALUES (?, ?, ?, ?)", (tenant_id, name, _hash(key), time.time())
                )
            except sqlite3.IntegrityError:
                return None
        self._cache.clear()
        return key

    def rotate(self, tenant_id: str) -> str | None:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._db:
            updated = self._db.execute(
                "UPDATE tenants SET key_hash = ? WHERE tenant_id = ?", (_hash(key), tenant_id)
            ).rowcount
        self._cache.clear()  # this process sees its own rotation at once
        return key if updated else None

    def tenant_of(self, key: str) -> str | None:
        """The key's tenant, from a cache that trusts an answer for ``CACHE_SECONDS``: a key rotated (by
        this or another process) stops working within that time, and the hot routes skip a SQLite read."""
        digest = _hash(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self._lock:
            row = self._db.execute("SELECT tenant_id FROM tenants WHERE key_hash = ?", (digest,)).fetchone()
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[digest] = (row[0] if row else None, now + self.CACHE_SECONDS)
        return row[0] if row else None

    def close(self) -> None:
        self._db.close()


class TokenSigner:
    CACHE_SIZE = 100_000

    def __init__(self, secret: str):
        self._secret = secret
        self._verified: dict[str, tuple[Principal, int]] = {}  # token -> (who, exp): skips the HMAC

    def issue(
        self,
        tenant_id: str,
        customer_id: str | None,
        ttl_seconds: int,
        now: float | None = None,
        *,
        campaigns: tuple[str, ...] = (),
        cohorts: bool = False,
    ) -> tuple[str, int]:
        """An embed token: one customer (optional), some campaigns, the cohort table, live metrics."""
        claims: dict = {"k": "embed", "t": tenant_id}
        if customer_id is not None:
            claims["c"] = customer_id
        if campaigns:
            claims["cp"] = sorted(set(campaigns))
        if cohorts:
            claims["co"] = True
        return self._sign(claims, ttl_seconds, now)

    def issue_dashboard(self, tenant_id: str, ttl_seconds: int, now: float | None = None) -> tuple[str, int]:
        """Reads everything of one tenant, writes nothing: what a browser holds instead of the tenant key."""
        return self._sign({"k": "dash", "t": tenant_id}, ttl_seconds, now)

    def _sign(self, claims: dict, ttl_seconds: int, now: float | None) -> tuple[str, int]:
        exp = int((now or time.time()) + ttl_seconds)
        return jwt.encode({**claims, "exp": exp}, self._secret, "HS256"), exp

    def verify(self, token: str, *, allow_expired: bool = False) -> Principal:
        """``allow_expired`` only for choosing a tenant's page headers (CSP), never for data."""
        cached = self._verified.get(token)
        if cached is not None and (allow_expired or cached[1] > time.time()):
            return cached[0]
        who, exp = self._decode(token, allow_expired)
        if not allow_expired:
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = (who, exp)
        return who

    def _decode(self, token: str, allow_expired: bool) -> tuple[Principal, int]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp"], "verify_exp": not allow_expired},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token expired") from None
        except jwt.InvalidTokenError:
            raise AuthError(401, "invalid token") from None
        tenant, customer, campaigns = claims.get("t"), claims.get("c"), claims.get("cp", [])
        if (
            not isinstance(tenant, str)
            or not (customer is None or isinstance(customer, str))
            or not (isinstance(campaigns, list) and all(isinstance(c, str) for c in campaigns))
        ):
            raise AuthError(401, "invalid token")
        if claims.get("k") == "dash":
            return Principal("dashboard", tenant), claims["exp"]
        if claims.get("k") == "embed":
            return Principal(
                "embed", tenant, customer, frozenset(campaigns), claims.get("co") is True
            ), claims["exp"]
        raise AuthError(401, "invalid token")


def resolve(
    header: str | None, *, registry: TenantRegistry, signer: TokenSigner, admin_token: str
) -> Principal:
    """``Authorization: Bearer <token>`` → who is asking. 401 for anything missing or invalid."""
    if not header or not header.startswith("Bearer "):
        raise AuthError(401, "missing bearer token")
    token = header[7:].strip()
    if not token:
        raise AuthError(401, "missing bearer token")
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal("admin")
    if token.startswith(KEY_PREFIX):
        tenant = registry.tenant_of(token)
        if tenant is None:
            raise AuthError(401, "invalid token")
        return Principal("tenant", tenant)
    return signer.verify(token)
