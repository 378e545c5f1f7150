"""Tenant users: the tenant's own staff, each with one role, signing in with email and password.

Roles (what each admits is declared per route in ``api.access``):
- **owner**: users, API keys, host keys, branding, the audit log — and everything an analyst may do;
- **analyst**: all of the tenant's data, and minting embed tokens that share it;
- **viewer**: the dashboard (the tenant's data, read only).

Passwords are hashed with argon2id (``argon2-cffi``) at OWASP's recommended minimum (19 MiB, 2 passes,
1 lane: ~0.1 s of one core here, where the RFC 9106 low-memory profile's 64 MiB × 4 lanes took 0.7 s on a
busy 2-core box — a sign-in flood would starve the API), re-hashed at the next sign-in when the
parameters change. An email is one account across all tenants
(the sign-in form names no tenant). A user may be *invited*: created without a password and given a
one-time invite token (72 h, stored as a SHA-256 hash like an API key), with which they choose one.
A tenant always keeps at least one owner: demoting or removing the last one is refused.

Stored in ``$DATA_DIR/run/accounts.sqlite`` (mode 0600) next to the sessions, so every worker reads one
truth and a role change or removal applies to the next request in every worker.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lambdalytics.infra import private_files

__all__ = ["ROLES", "AccountError", "User", "Users"]

ROLES = ("owner", "analyst", "viewer")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256  # argon2 hashes any length; a cap keeps a sign-in request's work bounded
INVITE_SECONDS = 72 * 3600
INVITE_PREFIX = "lli_"
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,63}$")


class AccountError(Exception):
    """A refused account change; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class User:
    user_id: str
    tenant_id: str
    email: str
    role: str
    created_at: float
    active: bool  # has a password (an invited user becomes active by accepting the invite)

    def public(self) -> dict:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at,
            "active": self.active,
        }


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise AccountError(422, "not an email address")
    return email


def check_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AccountError(422, f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_COLUMNS = "user_id, tenant_id, email, role, created_at, password_hash IS NOT NULL"


def _user(row: tuple) -> User:
    return User(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


class Users:
    def __init__(self, path: Path, hasher: PasswordHasher | None = None):
        self._hasher = hasher or HASHER
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))  # unknown emails cost one verify too
        self._db = private_files.sqlite(path)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, "
                "email TEXT NOT NULL UNIQUE, role TEXT NOT NULL, password_hash TEXT, invite_hash TEXT UNIQUE, "
                "invite_expires REAL, created_at REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS users_tenant ON users (tenant_id)")

    def create(
        self, tenant_id: str, email: str, role: str, password: str | None = None
    ) -> tuple[User, str | None]:
        """A new user; without a password, an invited one and its invite token (shown once)."""
        email = normal_email(email)
        if role not in ROLES:
            raise AccountError(422, f"role is one of {', '.join(ROLES)}")
        invite = None
        if password is None:
            invite = INVITE_PREFIX + secrets.token_urlsafe(32)
            password_hash, invite_hash, expires = None, _digest(invite), time.time() + INVITE_SECONDS
        else:
            check_password(password)
            password_hash, invite_hash, expires = self._hasher.hash(password), None, None
        user_id = "usr_" + secrets.token_hex(8)
        with self._lock, self._db:
            try:
                self._db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (user_id, tenant_id, email, role, password_hash, invite_hash, expires, time.time()),
                )
            except sqlite3.IntegrityError as exc:  # the email is taken
                raise AccountError(409, "a user with this email exists") from exc
        return self.get(user_id), invite

    def authenticate(self, email: str, password: str) -> User | None:
        """The user whose email and password these are, or None. Always one argon2 verify, whether or not
        the email exists, so the answer's timing does not tell."""
        try:
            email = normal_email(email)
        except AccountError:
            email = ""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS}, password_hash FROM users WHERE email = ?", (email,)
            ).fetchone()
        stored = row[6] if row and row[6] else self._dummy
        try:
            self._hasher.verify(stored, password[:MAX_PASSWORD_CHARS])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or not row[6]:
            return None
        if self._hasher.check_needs_rehash(stored):
            with self._lock, self._db:
                self._db.execute(
                    "UPDATE users SET password_hash = ? WHERE user_id = ?",
                    (self._hasher.hash(password), row[0]),
                )
        return _user(row)

    def accept_invite(self, invite: str, password: str) -> User | None:
        """The invited user, now with a password; None for an unknown, used or expired invite."""
        check_password(password)
        password_hash = self._hasher.hash(password)
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT user_id FROM users WHERE invite_hash = ? AND invite_expires > ?",
                (_digest(invite), time.time()),
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE users SET password_hash = ?, invite_hash = NULL, invite_expires = NULL "
                "WHERE user_id = ?",
                (password_hash, row[0]),
            )
        return self.get(row[0])

    def set_password(self, tenant_id: str, user_id: str, password: str) -> bool:
        check_password(password)
        password_hash = self._hasher.hash(password)
        with self._lock, self._db:
            return bool(
                self._db.execute(
                    "UPDATE users SET password_hash = ?, invite_hash = NULL WHERE user_id = ? AND tenant_id = ?",
                    (password_hash, user_id, tenant_id),
                ).rowcount
            )

    def get(self, user_id: str, tenant_id: str | None = None) -> User | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM users WHERE user_id = ?", (user_id,)).fetchone()
        user = _user(row) if row else None
        return user if user and (tenant_id is None or user.tenant_id == tenant_id) else None

    def by_email(self, email: str) -> User | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM users WHERE email = ?", (email.strip().lower(),)
            ).fetchone()
        return _user(row) if row else None

    def list(self, tenant_id: str) -> list[User]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM users WHERE tenant_id = ? ORDER BY created_at, email", (tenant_id,)
            ).fetchall()
        return [_user(r) for r in rows]

    def set_role(self, tenant_id: str, user_id: str, role: str) -> User | None:
        if role not in ROLES:
            raise AccountError(422, f"role is one of {', '.join(ROLES)}")
        with self._lock, self._db:
            self._keep_an_owner(tenant_id, user_id, role)
            updated = self._db.execute(
                "UPDATE users SET role = ? WHERE user_id = ? AND tenant_id = ?", (role, user_id, tenant_id)
            ).rowcount
        return self.get(user_id) if updated else None

    def remove(self, tenant_id: str, user_id: str) -> bool:
        with self._lock, self._db:
            self._keep_an_owner(tenant_id, user_id, None)
            return bool(
                self._db.execute(
                    "DELETE FROM users WHERE user_id = ? AND tenant_id = ?", (user_id, tenant_id)
                ).rowcount
            )

    def _keep_an_owner(self, tenant_id: str, user_id: str, new_role: str | None) -> None:
        """Refuse a change that would leave the tenant without an owner (inside the writer's transaction)."""
        if new_role == "owner":
            return
        owners = [
            r[0]
            for r in self._db.execute(
                "SELECT user_id FROM users WHERE tenant_id = ? AND role = 'owner'", (tenant_id,)
            )
        ]
        if owners == [user_id]:
            raise AccountError(409, "a tenant keeps at least one owner")

    def close(self) -> None:
        self._db.close()
