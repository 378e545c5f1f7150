"""Files only their owner may read (secrets, ``credentials.json``), written so no reader ever sees them
half-written or with a wider mode, and so workers racing the first write agree on one content.

Both writers go through a temporary file in the same directory, opened ``O_CREAT | O_EXCL`` with mode
0600 (never readable by others, not even for an instant), written and fsynced, then put in place with
one atomic directory operation: ``os.link`` for a file created once (the link fails if another writer
got there first, and that writer's content wins) or ``os.replace`` for one replaced each time.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from pathlib import Path

__all__ = ["create_once", "ensure", "replace", "sqlite"]

MODE = 0o600


def _write_temp(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, MODE)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def _sync_dir(path: Path) -> None:
    """Make the new directory entry durable (the file's bytes already are)."""
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_once(path: Path, text: str) -> None:
    if not path.exists():
        temp = _write_temp(path, text)
        try:
            os.link(temp, path)
            _sync_dir(path)
        except FileExistsError:
            pass  # another worker won the race: its content is the one
        finally:
            temp.unlink()


def create_once(path: Path, text: str) -> str:
    """``path``'s content: ``text`` if this call created it, else what the first writer wrote."""
    _link_once(path, text)
    return path.read_text()


def ensure(path: Path) -> Path:
    """``path`` exists, created empty with mode 0600 if it did not: what a SQLite file of credentials is
    opened on (SQLite gives its journal files the database file's mode)."""
    _link_once(path, "")
    return path


def replace(path: Path, text: str) -> None:
    """Write ``path`` atomically (readers see the old or the new content, whole), mode 0600."""
    temp = _write_temp(path, text)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _sync_dir(path)


def sqlite(path: Path) -> sqlite3.Connection:
    """A SQLite database of credentials, created 0600, shared by every worker process (SQLite's own
    locking; a writer waits up to 10 s for another)."""
    return sqlite3.connect(str(ensure(path)), check_same_thread=False, timeout=10)
