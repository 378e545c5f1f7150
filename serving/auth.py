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
- Every tenant has a key *generation*, bumped by each rotation. A key's lookup answers its generation,
  every token carries the generation of the key that minted it (claim ``g``), and a token of an older
  generation than its tenant's is refused: rotating a key revokes what it minted. Generations are read
  through the registry's 1 s cache, so a rotation reaches every worker within ``CACHE_SECONDS``.

- Named API keys with scopes (``api_keys``), host-signed embed tokens (``host_keys``) and user sessions
  (``sessions``, resolved in ``api.deps`` from the cookie) are further credentials. Each credential
  resolves to a ``Principal`` whose :meth:`Principal.grants` are what routes admit (``api.access``).

The tenant is always taken from the verified credential, never from the request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jwt

from .principal_cache import changed, trusted_until

if TYPE_CHECKING:
    from .api_keys import ApiKeys
    from .host_keys import HostKeys

__all__ = ["AuthError", "Principal", "TenantRegistry", "TokenSigner", "verify_token"]

KEY_PREFIX = "llk_"
FIRST_GENERATION = 1


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


READERS = ("tenant", "dashboard", "user")  # read everything of their tenant
ALL_SCOPES = ("read", "ingest", "admin")  # the tenant key's: it is a key with every scope


@dataclass(frozen=True)
class Principal:
    kind: Literal["admin", "tenant", "dashboard", "embed", "user"]
    tenant_id: str | None = None
    customer_id: str | None = None
    campaigns: frozenset[str] = frozenset()
    cohorts: bool = False
    generation: int = 0  # of the tenant key that is, or minted, this credential
    credential: str = ""  # which credential this is (its rate-limit bucket): a key's hash, a token's jti
    scopes: frozenset[str] = frozenset()  # a key's (kind "tenant")
    role: str | None = None  # a user's (kind "user")
    key_id: str | None = None  # the named key that is, or minted, this credential
    user_id: str | None = None
    actor: str = ""  # who, in the audit log: "admin", "tenant key", "key <name>", "user <email>"
    csrf: str | None = None  # a session's CSRF token (kind "user")
    host_kid: str | None = None  # the tenant's host key that signed this embed token

    def grants(self) -> frozenset[str]:
        """What this credential is, in the words routes admit it by (``api.access``): a role
        (``owner``/``analyst``/``viewer``), a key scope (``key:read``/``key:ingest``/``key:admin``), or
        ``admin``, ``dashboard``, ``embed``. Computed once per principal (a cached one asks per request)."""
        grants = self.__dict__.get("_grants")
        if grants is None:
            if self.kind == "tenant":
                grants = frozenset(f"key:{s}" for s in self.scopes)
            elif self.kind == "user":
                grants = frozenset({self.role}) if self.role else frozenset()
            else:
                grants = frozenset({self.kind})
            object.__setattr__(self, "_grants", grants)  # not a field: equality and hashing ignore it
        return grants

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
        self._keys: dict[str, tuple[tuple[str, int] | None, float]] = {}  # key hash -> (tenant, gen)
        self._generations: dict[str, tuple[int | None, float]] = {}  # tenant -> generation
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tenants (tenant_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                "key_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, "
                f"generation INTEGER NOT NULL DEFAULT {FIRST_GENERATION})"
            )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(tenants)")}
            if "generation" not in columns:  # a registry written before generations existed
                self._db.execute(
                    f"ALTER TABLE tenants ADD COLUMN generation INTEGER NOT NULL DEFAULT {FIRST_GENERATION}"
                )

    def create(self, tenant_id: str, name: str) -> str | None:
        """A new tenant and its key (shown once); None if the tenant exists."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._db:
            try:
                self._db.execute(
                    "INSERT INTO tenants (tenant_id, name, key_hash, created_at, generation) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (tenant_id, name, _hash(key), time.time(), FIRST_GENERATION),
                )
            except sqlite3.IntegrityError:
                return None
        self._forget()
        return key

    def rotate(self, tenant_id: str) -> str | None:
        """A new key; the old one and every token it minted stop working (next generation)."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._db:
            updated = self._db.execute(
                "UPDATE tenants SET key_hash = ?, generation = generation + 1 WHERE tenant_id = ?",
                (_hash(key), tenant_id),
            ).rowcount
        self._forget()  # this process sees its own rotation at once
        return key if updated else None

    def lookup(self, key: str) -> tuple[str, int] | None:
        """The key's (tenant, generation), from a cache that trusts an answer for ``CACHE_SECONDS``: a key
        rotated (by this or another process) stops working within that time, and the hot routes skip a
        SQLite read."""
        return self._cached(
            self._keys,
            _hash(key),
            "SELECT tenant_id, generation FROM tenants WHERE key_hash = ?",
            lambda row: (row[0], row[1]),
        )

    def tenant_of(self, key: str) -> str | None:
        found = self.lookup(key)
        return found[0] if found else None

    def generation(self, tenant_id: str) -> int | None:
        """The tenant's current key generation (None: no such tenant), cached like :meth:`lookup`."""
        return self._cached(
            self._generations,
            tenant_id,
            "SELECT generation FROM tenants WHERE tenant_id = ?",
            lambda row: row[0],
        )

    def _cached(self, cache: dict, key: str, sql: str, value: Callable[[tuple], Any]) -> Any:
        now = time.monotonic()
        cached = cache.get(key)
        if cached is not None and cached[1] > now:
            trusted_until(monotonic=cached[1])
            return cached[0]
        with self._lock:
            row = self._db.execute(sql, (key,)).fetchone()
        if len(cache) >= self.CACHE_SIZE:
            cache.clear()
        answer = value(row) if row else None
        cache[key] = (answer, now + self.CACHE_SECONDS)
        trusted_until(monotonic=now + self.CACHE_SECONDS)
        return answer

    def _forget(self) -> None:
        self._keys.clear()
        self._generations.clear()
        changed()

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
        generation: int = FIRST_GENERATION,
        campaigns: tuple[str, ...] = (),
        cohorts: bool = False,
        key_id: str | None = None,
    ) -> tuple[str, int]:
        """An embed token: one customer (optional), some campaigns, the cohort table, live metrics.
        ``generation``: of the key that asks (``Principal.generation``); a fresh tenant's is the first.
        ``key_id``: the named key that asks, whose revocation revokes the token too."""
        claims: dict = {"k": "embed", "t": tenant_id, "g": generation}
        if key_id is not None:
            claims["ki"] = key_id
        if customer_id is not None:
            claims["c"] = customer_id
        if campaigns:
            claims["cp"] = sorted(set(campaigns))
        if cohorts:
            claims["co"] = True
        return self._sign(claims, ttl_seconds, now)

    def issue_dashboard(
        self,
        tenant_id: str,
        ttl_seconds: int,
        now: float | None = None,
        *,
        generation: int = FIRST_GENERATION,
        key_id: str | None = None,
    ) -> tuple[str, int]:
        """Reads everything of one tenant, writes nothing: what an API client holds instead of the key."""
        claims: dict = {"k": "dash", "t": tenant_id, "g": generation}
        if key_id is not None:
            claims["ki"] = key_id
        return self._sign(claims, ttl_seconds, now)

    def _sign(self, claims: dict, ttl_seconds: int, now: float | None) -> tuple[str, int]:
        exp = int((now or time.time()) + ttl_seconds)
        jti = secrets.token_urlsafe(12)  # the token's identity: re-encodings of it share one bucket
        return jwt.encode({**claims, "jti": jti, "exp": exp}, self._secret, "HS256"), exp

    def verify(self, token: str, *, allow_expired: bool = False) -> Principal:
        """The token's claims, signature and expiry checked (not its generation: :func:`verify_token`).
        ``allow_expired`` only for choosing a tenant's page headers (CSP), never for data."""
        cached = self._verified.get(token)
        if cached is not None and (allow_expired or cached[1] > time.time()):
            trusted_until(wall=cached[1])
            return cached[0]
        who, exp = self._decode(token, allow_expired)
        trusted_until(wall=exp)
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
                options={"require": ["exp", "g", "jti"], "verify_exp": not allow_expired},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token expired") from None
        except jwt.InvalidTokenError:
            raise AuthError(401, "invalid token") from None
        generation, jti, key_id = claims["g"], claims["jti"], claims.get("ki")
        if (
            type(generation) is not int
            or not isinstance(jti, str)
            or not (key_id is None or isinstance(key_id, str))
        ):
            raise AuthError(401, "invalid token")
        if claims.get("k") == "dash":
            tenant = claims.get("t")
            if not isinstance(tenant, str):
                raise AuthError(401, "invalid token")
            who = Principal(
                "dashboard",
                tenant,
                generation=generation,
                credential=jti,
                key_id=key_id,
                actor="dashboard token",
            )
            return who, claims["exp"]
        if claims.get("k") == "embed":
            return embed_principal(claims, generation=generation, credential=jti, key_id=key_id), claims[
                "exp"
            ]
        raise AuthError(401, "invalid token")


def embed_principal(claims: dict, *, credential: str, generation: int = 0, **extra: Any) -> Principal:
    """The embed claims (ours, or a host's: the same ``t``, ``c``, ``cp``, ``co``), their types checked."""
    tenant, customer, campaigns = claims.get("t"), claims.get("c"), claims.get("cp", [])
    if (
        not isinstance(tenant, str)
        or not (customer is None or isinstance(customer, str))
        or not (isinstance(campaigns, list) and all(isinstance(c, str) for c in campaigns))
    ):
        raise AuthError(401, "invalid token")
    return Principal(
        "embed",
        tenant,
        customer,
        frozenset(campaigns),
        claims.get("co") is True,
        generation,
        credential,
        actor="embed token",
        **extra,
    )


def verify_token(
    token: str,
    *,
    registry: TenantRegistry,
    signer: TokenSigner,
    keys: ApiKeys | None = None,
    host_keys: HostKeys | None = None,
    allow_expired: bool = False,
) -> Principal:
    """A signed token that its tenant's current key generation still honours (a rotation revokes it), and
    the named key that minted it too (revoking that key revokes it); or a host-signed embed token
    (``host_keys``: its header names a ``kid``) whose key is still registered, of an existing tenant."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError(401, "invalid token") from None
    if "kid" in header:  # never ours: only a tenant's registered host key can sign it
        return _host_token(token, header, registry, host_keys, allow_expired)
    who = signer.verify(token, allow_expired=allow_expired)
    if registry.generation(who.tenant_id) != who.generation:
        raise AuthError(401, "token revoked (the tenant key was rotated)")
    if who.key_id is not None and (keys is None or not keys.active(who.key_id)):
        raise AuthError(401, "token revoked (the key that minted it was revoked)")
    return who


def _host_token(
    token: str, header: dict, registry: TenantRegistry, host_keys: HostKeys | None, allow_expired: bool
) -> Principal:
    if host_keys is None:
        raise AuthError(401, "invalid token")
    try:
        claims, credential = host_keys.verify(token, header, allow_expired=allow_expired)
    except ValueError as exc:
        raise AuthError(401, "token expired" if str(exc) == "token expired" else "invalid token") from None
    trusted_until(wall=claims["exp"])
    who = embed_principal(claims, credential=credential, host_kid=header["kid"])
    if registry.generation(who.tenant_id) is None:
        raise AuthError(401, "invalid token")
    return who


def resolve(
    header: str | None,
    *,
    registry: TenantRegistry,
    signer: TokenSigner,
    admin_token: str,
    keys: ApiKeys | None = None,
    host_keys: HostKeys | None = None,
) -> Principal:
    """``Authorization: Bearer <token>`` → who is asking. 401 for anything missing or invalid."""
    if not header or not header.startswith("Bearer "):
        raise AuthError(401, "missing bearer token")
    token = header[7:].strip()
    if not token:
        raise AuthError(401, "missing bearer token")
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal("admin", credential="admin", actor="admin")
    if token.startswith(KEY_PREFIX):
        return _key(token, registry, keys)
    return verify_token(token, registry=registry, signer=signer, keys=keys, host_keys=host_keys)


def _key(token: str, registry: TenantRegistry, keys: ApiKeys | None) -> Principal:
    """The tenant key (every scope) or a named key (its scopes)."""
    credential = "key:" + _hash(token)
    found = registry.lookup(token)
    if found is not None:
        return Principal(
            "tenant",
            found[0],
            generation=found[1],
            credential=credential,
            scopes=frozenset(ALL_SCOPES),
            actor="tenant key",
        )
    named = keys.lookup(token) if keys is not None else None
    generation = registry.generation(named.tenant_id) if named is not None else None
    if named is None or generation is None:
        raise AuthError(401, "invalid token")
    return Principal(
        "tenant",
        named.tenant_id,
        generation=generation,
        credential=credential,
        scopes=frozenset(named.scopes),
        key_id=named.key_id,
        actor=f"key {named.name} ({named.key_id})",
    )
