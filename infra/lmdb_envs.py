"""One LMDB environment per file per process, shared by every handle on it (LMDB allows only one).

The event-id index and the quality ledger each open their file through :func:`acquire` and give it
back with :func:`release`; the environment closes with its last handle. Never shared across a fork."""

from __future__ import annotations

import threading
from pathlib import Path

import lmdb

__all__ = ["acquire", "release"]

_ENVS: dict[Path, tuple[lmdb.Environment, int]] = {}
_LOCK = threading.Lock()


def acquire(path: Path, *, map_size: int, dbs: tuple[bytes, ...]) -> lmdb.Environment:
    """The environment at ``path`` (resolved, created when absent), its named databases made to exist."""
    with _LOCK:
        if path in _ENVS:
            env, handles = _ENVS[path]
        else:
            path.mkdir(parents=True, exist_ok=True)
            env, handles = lmdb.open(str(path), map_size=map_size, max_dbs=len(dbs), writemap=False), 0
            with env.begin(write=True) as txn:  # idempotent: makes the named databases exist
                for name in dbs:
                    env.open_db(name, txn=txn)
        _ENVS[path] = (env, handles + 1)
        return env


def release(path: Path) -> None:
    """One handle on ``path`` is done; the last one closes the environment."""
    with _LOCK:
        env, handles = _ENVS[path]
        if handles > 1:
            _ENVS[path] = (env, handles - 1)
        else:
            del _ENVS[path]
            env.close()
