"""The serving half of an erasure: record it, purge what this worker holds, start the durable purge.

``DELETE /v1/customers/{id}`` calls :meth:`Erasures.request`: the erasure is recorded pending
(``infra.erasures``, with its identity component), this worker's speed store forgets the component and
its answer caches are emptied, and the purge of the master, the views and the serving-store files starts
in a process of its own (``python -m lambdalytics.batch.erasure``: an API worker never runs Spark). Every
other worker applies pending erasures on its loader's poll (:meth:`Erasures.sync`), idempotently, until
they are complete; the purge waits for that before its last pass. A worker restarted meanwhile applies
them on its first poll.

The answer caches are emptied whole: their entries are keyed by answer, and which tenant-level answers
(campaigns, cohorts) held the customer is not worth tracking for a rare operation.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from lambdalytics.infra.erasures import Erasure, ErasureLog, erasures_path
from lambdalytics.infra.settings import Settings, settings_env
from lambdalytics.speed.store import SpeedStore

from .answer_cache import AnswerCache

log = logging.getLogger(__name__)

__all__ = ["ENTRY_POINT", "Erasures"]

ENTRY_POINT = (sys.executable, "-m", "lambdalytics.batch.erasure")


class Erasures:
    def __init__(
        self,
        settings: Settings,
        speed: SpeedStore,
        caches: Sequence[AnswerCache],
        components: Callable[[str, str], list[str]],
        *,
        command: Sequence[str] = ENTRY_POINT,
    ):
        self.settings = settings
        self.speed = speed
        self.caches = tuple(caches)  # the merger's answer caches (profiles, tenant-level answers)
        self.components = components  # the ids of a customer's identity component (Merger.component_ids)
        self.command = tuple(command)
        self._log: ErasureLog | None = None
        self._lock = threading.Lock()

    @property
    def log(self) -> ErasureLog:
        """Opened on first use: a server that never erases needs no erasure secret."""
        with self._lock:
            if self._log is None:
                self._log = ErasureLog.open(self.settings)
            return self._log

    def request(self, tenant_id: str, customer_id: str) -> tuple[Erasure, bool]:
        """Record (or find) the customer's erasure; purge here and start the durable purge while it is
        pending. Returns the erasure as recorded and whether this call created it."""
        erasure, created = self.log.request(tenant_id, customer_id, self.components(tenant_id, customer_id))
        if erasure.state == "pending":
            self._apply(erasure)
            self._start_purge(erasure.erasure_id)
        return self.log.get(erasure.erasure_id) or erasure, created

    def get(self, tenant_id: str, erasure_id: str) -> Erasure | None:
        """The tenant's erasure (None for another tenant's: no hint that it exists)."""
        erasure = self.log.get(erasure_id)
        return erasure if erasure is not None and erasure.tenant_id == tenant_id else None

    def sync(self) -> None:
        """Apply every pending erasure to this worker (the loader's poll calls it)."""
        if self._log is None and not self._exists():
            return
        for erasure in self.log.pending():
            self._apply(erasure)

    def _exists(self) -> bool:
        return erasures_path(self.settings.data_dir).exists()

    def _apply(self, erasure: Erasure) -> None:
        partials = self.speed.erase(erasure.tenant_id, erasure.customer_ids)
        entries = sum(len(cache) for cache in self.caches)
        for cache in self.caches:
            cache.clear()
        # a store that cannot delete (Pinot) says so: its rows remain, left out of every answer
        excluded = {} if self.speed.erase_deletes else {"excluded_from_answers": True}
        self.log.purged(erasure.erasure_id, "speed_store", partials=partials, **excluded)
        self.log.purged(erasure.erasure_id, "answer_cache", entries=entries)

    def _start_purge(self, erasure_id: str) -> None:
        run = Path(self.settings.data_dir) / "run"
        run.mkdir(parents=True, exist_ok=True)
        with (run / "erasure.log").open("ab") as out:
            process = subprocess.Popen(
                [*self.command, erasure_id],
                env=settings_env(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # the purge finishes even if the API is stopped meanwhile
            )
        threading.Thread(target=process.wait, name="erasure-reaper", daemon=True).start()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
