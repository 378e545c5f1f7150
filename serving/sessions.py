"""Server-side dashboard sessions: what a signed-in browser holds is a random id in an HttpOnly cookie.

- The id (256 bits) is stored as its SHA-256 hash: the database alone does not let anyone sign in.
- Each session has its own CSRF token; every state-changing request made with the cookie must carry it
  (a form field or the ``X-CSRF-Token`` header), compared in constant time.
- A session ends when it is idle for ``idle_seconds``, when it is ``absolute_seconds`` old (whatever its
  activity), at sign-out, and when its user is removed. It is read from SQLite on every request (no
  cache), so a sign-out revokes it at once in every worker; ``last_seen`` is written at most once every
  ``TOUCH_SECONDS`` per session, which the idle timeout rounds down by.
- Sign-in always makes a new session and ends any session the browser presented (rotation: a session
  id planted before sign-in — session fixation — is never the one that is signed in).

Stored in ``$DATA_DIR/run/accounts.sqlite`` (mode 0600), beside the users.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lambdalytics.infra import private_files

__all__ = ["Session", "Sessions"]

TOUCH_SECONDS = 30.0


@dataclass(frozen=True)
class Session:
    user_id: str
    tenant_id: str
    csrf: str
    created_at: float
    last_seen: float
    expires_at: float  # the sooner of the idle and the absolute end, as of ``last_seen``


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    def __init__(
        self,
        path: Path,
        *,
        idle_seconds: float,
        absolute_seconds: float,
        clock: Callable[[], float] = time.time,
    ):
        self.idle_seconds, self.absolute_seconds, self.clock = idle_seconds, absolute_seconds, clock
        self._db = private_files.sqlite(path)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
                "tenant_id TEXT NOT NULL, csrf TEXT NOT NULL, created_at REAL NOT NULL, "
                "last_seen REAL NOT NULL, address TEXT NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id)")

    def create(self, user_id: str, tenant_id: str, address: str) -> tuple[str, Session]:
        """A new session (its id is in this answer only). Also drops sessions that have ended."""
        session_id, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), self.clock()
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM sessions WHERE last_seen < ? OR created_at < ?",
                (now - self.idle_seconds, now - self.absolute_seconds),
            )
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_digest(session_id), user_id, tenant_id, csrf, now, now, address),
            )
        return session_id, self._session(user_id, tenant_id, csrf, now, now)

    def lookup(self, session_id: str) -> Session | None:
        """The live session of this id, or None (unknown, signed out, idle too long or too old)."""
        if not session_id or len(session_id) > 128:
            return None
        key, now = _digest(session_id), self.clock()
        with self._lock:
            row = self._db.execute(
                "SELECT user_id, tenant_id, csrf, created_at, last_seen FROM sessions WHERE id_hash = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        user_id, tenant_id, csrf, created_at, last_seen = row
        if now - last_seen > self.idle_seconds or now - created_at > self.absolute_seconds:
            self._delete(key)
            return None
        if now - last_seen >= TOUCH_SECONDS:
            with self._lock, self._db:
                self._db.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, key))
            last_seen = now
        return self._session(user_id, tenant_id, csrf, created_at, last_seen)

    def revoke(self, session_id: str) -> bool:
        return self._delete(_digest(session_id)) if session_id else False

    def revoke_user(self, user_id: str) -> int:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount

    def _delete(self, key: str) -> bool:
        with self._lock, self._db:
            return bool(self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (key,)).rowcount)

    def _session(self, user_id, tenant_id, csrf, created_at, last_seen) -> Session:
        expires = min(last_seen + self.idle_seconds, created_at + self.absolute_seconds)
        return Session(user_id, tenant_id, csrf, created_at, last_seen, expires)

    def close(self) -> None:
        self._db.close()
