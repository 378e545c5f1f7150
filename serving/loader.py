"""Keeps the newest complete batch view version loaded, and tells the speed store what it may drop.

Polls the Delta ``_manifest``; a new version's serving store (``infra.serving_store``, memory-mapped,
shared by every worker; built from the Delta views if the batch run did not leave it) is opened into a
fresh :class:`BatchIndex` off the request path, then swapped in with one reference assignment (atomic
for readers, and O(1): the data stays in the file), the store files of older versions are removed, and
only *then* the speed store is told (``SpeedStore.on_batch_published``): the embedded store drops the blocks the new W
covers, Pinot has nothing to do. Requests that raced the swap retry once in ``serving.merge``. The poll
reads the manifest pointer (O(1), ``batch.writer.read_manifest``). A version that cannot be loaded — its
files vacuumed by retention while it loaded — leaves the loaded version serving and sets
``last_error``; the next poll loads the newer one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lambdalytics.batch.writer import read_manifest
from lambdalytics.infra.serving_store import remove_below
from lambdalytics.infra.supervisor import Supervised
from lambdalytics.speed.store import SpeedStore

from .index import BatchIndex

log = logging.getLogger(__name__)

__all__ = ["BatchLoader"]


class BatchLoader:
    def __init__(self, data_dir: Path, speed: SpeedStore, *, poll_seconds: float = 2.0):
        self.data_dir = Path(data_dir)
        self.speed = speed
        self.poll_seconds = poll_seconds
        self.index = BatchIndex.empty()
        self.loaded_once = False
        self.last_error: str | None = None
        self._refreshing = threading.Lock()
        self.after_poll: Callable[[], None] | None = None  # e.g. applying pending erasures (serving.erasure)
        self.worker = Supervised("batch-loader", self._poll)

    def current(self) -> BatchIndex:
        return self.index

    def refresh(self) -> bool:
        """Load a newer manifest if there is one; True when a new version was swapped in.

        Serialised: the poll thread and a finished batch run both call it, and a slow load of version N
        swapped in after N+1 (whose W the speed store already dropped below) would fail every read.
        """
        with self._refreshing:
            return self._refresh()

    def _refresh(self) -> bool:
        try:
            manifest = read_manifest(self.data_dir)
        except Exception as exc:  # an unreadable log must not kill serving: keep the loaded version
            self.last_error = f"manifest unreadable: {exc}"
            log.warning(self.last_error)
            return False
        self.loaded_once = True
        self.last_error = None
        if manifest is None or manifest.batch_version <= self.index.version:  # never backwards
            return False
        started = time.monotonic()
        try:
            fresh = BatchIndex.load(self.data_dir, manifest)
        except Exception as exc:  # e.g. retention vacuumed the version mid-load: keep the loaded one
            self.last_error = f"batch version {manifest.batch_version} unreadable: {exc}"
            log.warning("%s; keeping version %d", self.last_error, self.index.version)
            return False
        self.index = fresh  # the swap: one reference assignment
        # after the swap; a read racing it retries once
        self.speed.on_batch_published(manifest.watermark, block_size=manifest.block_size)
        try:  # derived files: a failed removal costs disk, never an answer (retention removes them too)
            remove_below(self.data_dir, manifest.batch_version)
        except OSError as exc:
            log.warning("could not remove older serving store files: %s", exc)
        log.info(
            "serving batch version %d (loaded in %.1fs)", manifest.batch_version, time.monotonic() - started
        )
        return True

    def start(self) -> BatchLoader:
        self.refresh()
        self.worker.start()
        return self

    def stop(self) -> None:
        self.worker.stop(5)

    def _poll(self, stop: threading.Event) -> None:
        """The supervised poll loop. A load that raises ends it: the supervisor logs it, counts it, shows
        it in ``/readyz`` and polls again after its backoff; the loaded version keeps serving meanwhile."""
        while not stop.wait(self.poll_seconds):
            self.refresh()
            if self.after_poll is not None:
                self.after_poll()
