"""The audit log: who did what, when and from where — sign-ins (and failed ones), sign-outs, user, role
and key changes, host keys, branding changes, tenant key rotations, batch run triggers and erasures.

Append-only: the API only adds (through the routes that act) and reads (``GET /v1/audit``); nothing
edits or deletes an entry, and the database refuses it too (triggers abort any UPDATE or DELETE).
Entries of one tenant are read by its owners; entries about no tenant (a batch run trigger, a failed
sign-in for an unknown email) by the operator's admin token, which reads every entry. Paging is by the
entry's sequence number (``after``), newest last, so a page never shifts under a reader.

Stored in ``$DATA_DIR/run/audit.sqlite`` (mode 0600).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalytics.infra import private_files

__all__ = ["ACTIONS", "AuditLog", "Entry"]

ACTIONS = (
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "user_created",
    "user_invited",
    "invite_accepted",
    "user_role_changed",
    "user_removed",
    "key_created",
    "key_revoked",
    "tenant_created",
    "tenant_key_rotated",
    "host_key_added",
    "host_key_removed",
    "branding_changed",
    "batch_run_triggered",
    "erasure",
)
MAX_PAGE = 500


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    tenant_id: str | None
    actor: str
    address: str
    action: str
    target: str | None
    detail: dict[str, Any]

    def public(self) -> dict:
        return {
            "seq": self.seq,
            "at": self.at,
            "tenant_id": self.tenant_id,
            "actor": self.actor,
            "address": self.address,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


class AuditLog:
    def __init__(self, path: Path):
        self._db = private_files.sqlite(path)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
                "tenant_id TEXT, actor TEXT NOT NULL, address TEXT NOT NULL, action TEXT NOT NULL, "
                "target TEXT, detail TEXT NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant_id, seq)")
            for op in ("UPDATE", "DELETE"):
                self._db.execute(
                    f"CREATE TRIGGER IF NOT EXISTS audit_no_{op.lower()} BEFORE {op} ON audit "
                    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
                )

    def record(
        self,
        action: str,
        *,
        tenant_id: str | None,
        actor: str,
        address: str,
        target: str | None = None,
        **detail: Any,
    ) -> int:
        """Append one entry; its sequence number."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO audit (at, tenant_id, actor, address, action, target, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), tenant_id, actor, address, action, target, json.dumps(detail, default=str)),
            )
        return int(cursor.lastrowid)

    def page(self, tenant_id: str | None, *, after: int = 0, limit: int = 100) -> list[Entry]:
        """Entries after ``after`` (oldest first), of one tenant or (``None``: the operator) of all."""
        limit = max(1, min(MAX_PAGE, limit))
        sql = "SELECT seq, at, tenant_id, actor, address, action, target, detail FROM audit WHERE seq > ?"
        args: tuple = (after,)
        if tenant_id is not None:
            sql, args = sql + " AND tenant_id = ?", (after, tenant_id)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
        return [Entry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    def close(self) -> None:
        self._db.close()
