"""Host-signed embed tokens: a tenant registers public keys (a JWKS document or one PEM key, each with a
``kid``); its own backend then signs embed tokens with the matching private key, and we accept them
without the host calling our API — as embedded-analytics products let a host app mint tokens.

A host token is a JWT with our embed claims: ``t`` (the tenant), ``c`` (one customer), ``cp`` (campaigns),
``co`` (the cohort table), ``exp`` (required, at most ``MAX_LIFETIME_SECONDS`` ahead) and optionally
``jti``. Its header names ``kid``. It is verified with the key registered under (``t``, ``kid``) only,
with that key's one algorithm only (RS256 for an RSA key of 2048 bits or more, ES256 for a P-256 key):

- no ``kid``, or a ``kid`` the tenant never registered (or removed): refused;
- a key of another tenant: refused (keys are looked up under the token's own ``t``, and the signature
  covers ``t``);
- HS256 signed with the public key as an HMAC secret (algorithm confusion), ``alg=none``, or RS256 on an
  EC key: refused — the algorithm comes from the registered key, never from the token;
- private or symmetric keys are refused at registration.

Rotation is by ``kid``: register the new key, move the host to it, remove the old one. Removing a key
stops its tokens within ``CACHE_SECONDS`` in every worker (at once in the worker that removed it).
Stored in ``$DATA_DIR/run/host_keys.sqlite`` (mode 0600).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from lambdalytics.infra import private_files

from .principal_cache import changed, trusted_until

__all__ = ["MAX_LIFETIME_SECONDS", "HostKey", "HostKeyError", "HostKeys", "KidTaken"]

MAX_LIFETIME_SECONDS = 86_400  # like our own embed tokens' longest TTL
MIN_RSA_BITS = 2048
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")  # RFC 7518 §6.2.2, §6.3.2, §6.4


class HostKeyError(ValueError):
    """A key document we refuse to register; the message says why."""


class KidTaken(HostKeyError):
    """A kid the tenant registered already: rotation takes a new kid, never new material under an old one."""


@dataclass(frozen=True)
class HostKey:
    tenant_id: str
    kid: str
    alg: str
    jwk: dict[str, Any]
    created_at: float

    def public(self) -> dict:
        return {"kid": self.kid, "alg": self.alg, "kty": self.jwk["kty"], "created_at": self.created_at}


def _kid(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise HostKeyError("every key needs a kid (1-128 characters)")
    return value


def _checked(jwk: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(kid, alg, public JWK) of one JWK, or HostKeyError."""
    if not isinstance(jwk, dict):
        raise HostKeyError("a key is a JSON object (a JWK)")
    kid = _kid(jwk.get("kid"))
    if [m for m in PRIVATE_MEMBERS if m in jwk]:
        raise HostKeyError(f"key {kid}: register public keys only (no private or symmetric key)")
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            key = RSAAlgorithm.from_jwk(jwk)
            alg = "RS256"
            if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
                raise HostKeyError(f"key {kid}: an RSA key has at least {MIN_RSA_BITS} bits")
        elif kty == "EC":
            key = ECAlgorithm.from_jwk(jwk)
            alg = "ES256"
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise HostKeyError(f"key {kid}: an EC key is on P-256 (ES256)")
        else:
            raise HostKeyError(f"key {kid}: kty is RSA (RS256) or EC (ES256)")
    except (jwt.InvalidKeyError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, HostKeyError):
            raise
        raise HostKeyError(f"key {kid}: not a valid public JWK ({exc})") from None
    if jwk.get("alg", alg) != alg:
        raise HostKeyError(f"key {kid}: a {kty} key signs with {alg} only")
    public = json.loads((RSAAlgorithm if alg == "RS256" else ECAlgorithm).to_jwk(key))
    return kid, alg, {**public, "kid": kid, "alg": alg}


def parse_keys(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The keys of a JWKS document (``{"keys": [...]}``), one JWK, or ``{"kid", "public_key_pem"}``."""
    if "public_key_pem" in document:
        kid = _kid(document.get("kid"))
        try:
            key = serialization.load_pem_public_key(str(document["public_key_pem"]).encode())
        except ValueError:
            raise HostKeyError(f"key {kid}: not a PEM public key") from None
        if isinstance(key, rsa.RSAPublicKey):
            jwk = json.loads(RSAAlgorithm.to_jwk(key))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            jwk = json.loads(ECAlgorithm.to_jwk(key))
        else:
            raise HostKeyError(f"key {kid}: kty is RSA (RS256) or EC (ES256)")
        return [_checked({**jwk, "kid": kid})]
    keys = document.get("keys", [document])
    if not isinstance(keys, list) or not 1 <= len(keys) <= 20:
        raise HostKeyError("a JWKS document holds 1 to 20 keys")
    found = [_checked(k) for k in keys]
    if len({kid for kid, _, _ in found}) != len(found):
        raise HostKeyError("two keys share a kid")
    return found


class HostKeys:
    CACHE_SECONDS = 1.0
    CACHE_SIZE = 100_000

    def __init__(self, path: Path):
        self._db = private_files.sqlite(path)
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], tuple[tuple[HostKey, Any] | None, float]] = {}
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS host_keys (tenant_id TEXT NOT NULL, kid TEXT NOT NULL, "
                "alg TEXT NOT NULL, jwk TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (tenant_id, kid))"
            )

    def add(self, tenant_id: str, document: dict[str, Any]) -> list[HostKey]:
        """Register the document's keys; a kid already registered is refused (rotation takes a new kid)."""
        keys, now = parse_keys(document), time.time()
        with self._lock, self._db:
            taken = [
                kid
                for kid, _, _ in keys
                if self._db.execute(
                    "SELECT 1 FROM host_keys WHERE tenant_id = ? AND kid = ?", (tenant_id, kid)
                ).fetchone()
            ]
            if taken:
                raise KidTaken(f"kid already registered: {', '.join(taken)} (rotate with a new kid)")
            self._db.executemany(
                "INSERT INTO host_keys VALUES (?, ?, ?, ?, ?)",
                [(tenant_id, kid, alg, json.dumps(jwk), now) for kid, alg, jwk in keys],
            )
        self._keys.clear()
        changed()
        return [HostKey(tenant_id, kid, alg, jwk, now) for kid, alg, jwk in keys]

    def list(self, tenant_id: str) -> list[HostKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kid, alg, jwk, created_at FROM host_keys WHERE tenant_id = ? ORDER BY created_at, kid",
                (tenant_id,),
            ).fetchall()
        return [HostKey(tenant_id, r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def remove(self, tenant_id: str, kid: str) -> bool:
        with self._lock, self._db:
            removed = self._db.execute(
                "DELETE FROM host_keys WHERE tenant_id = ? AND kid = ?", (tenant_id, kid)
            ).rowcount
        self._keys.clear()
        changed()
        return bool(removed)

    def key(self, tenant_id: str, kid: str) -> tuple[HostKey, Any] | None:
        """The registered key and its loaded public key, trusted from a cache for ``CACHE_SECONDS``."""
        now = time.monotonic()
        cached = self._keys.get((tenant_id, kid))
        if cached is not None and cached[1] > now:
            trusted_until(monotonic=cached[1])
            return cached[0]
        with self._lock:
            row = self._db.execute(
                "SELECT alg, jwk, created_at FROM host_keys WHERE tenant_id = ? AND kid = ?", (tenant_id, kid)
            ).fetchone()
        found = None
        if row is not None:
            jwk = json.loads(row[1])
            loader = RSAAlgorithm if row[0] == "RS256" else ECAlgorithm
            found = (HostKey(tenant_id, kid, row[0], jwk, row[2]), loader.from_jwk(jwk))
        if len(self._keys) >= self.CACHE_SIZE:
            self._keys.clear()
        self._keys[(tenant_id, kid)] = (found, now + self.CACHE_SECONDS)
        trusted_until(monotonic=now + self.CACHE_SECONDS)
        return found

    def verify(
        self, token: str, header: dict[str, Any], *, allow_expired: bool = False
    ) -> tuple[dict[str, Any], str]:
        """The claims of a host-signed token and its rate-limit identity; ``ValueError`` with the reason
        for anything refused. ``allow_expired`` only to pick an embed page's headers, never for data."""
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("host token without kid")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise ValueError("invalid token") from None
        tenant = unverified.get("t")
        found = self.key(tenant, kid) if isinstance(tenant, str) else None
        if found is None:
            raise ValueError("unknown key id")
        registered, public_key = found
        if header.get("alg") != registered.alg:
            raise ValueError("algorithm does not match the registered key")
        try:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=[registered.alg],
                options={"require": ["exp"], "verify_exp": not allow_expired},
            )
        except jwt.ExpiredSignatureError:
            raise ValueError("token expired") from None
        except jwt.InvalidTokenError:
            raise ValueError("invalid token") from None
        if claims["exp"] - time.time() > MAX_LIFETIME_SECONDS:
            raise ValueError(f"a host token expires within {MAX_LIFETIME_SECONDS} s")
        jti = claims.get("jti")
        identity = jti if isinstance(jti, str) and jti else hashlib.sha256(token.encode()).hexdigest()[:32]
        return claims, f"host:{tenant}:{kid}:{identity}"

    def close(self) -> None:
        self._db.close()
