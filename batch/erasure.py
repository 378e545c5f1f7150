"""The durable half of an erasure: the master dataset, the event-id index, every view version and the
serving-store files lose the customer's component, physically (``infra.erasures`` holds the record).

Steps, each idempotent, each reported into the erasure's receipt, all under the views' one lock
(:func:`~.writer.exclusive`), so no batch run, backfill or retention runs in between — a run that holds
it is waited for (its master snapshot still has the rows; its version is replaced by ours):

1. **Master**: ``DeltaTable.delete`` of the component's rows, then ``vacuum`` with zero retention
   (tombstoned files only, so an archiver's files not committed yet are never touched): the files that
   held the rows are gone, and time travel to any older version fails. The archiver's progress lives in
   the ``txn`` state and survives the delete commit; a racing append retries like after a compaction.
2. **Event-id index**: the entries of the deleted rows' event ids go (``EventIndex.forget``); so do the
   quality ledger's identified-customer marks of the ids (``QualityLedger.forget``).
3. **Views**: every view is recomputed from the purged master at the current W and published as the
   next version (``job.republish_locked``): customer rows gone, campaign stats, cohort counts and RFM cut
   points equal a run that never saw the customer. Then every view table is vacuumed with zero
   retention: older versions — which held the customer — can no longer be read.
4. **Serving store**: the LMDB files of every version older than the new one are removed (serving swaps
   to the new version within one poll).
5. A second pass over the master removes rows that raced the erasure list (archived by an archiver that
   had not re-read it yet); they lie above W, so no view holds them. It runs once the archiver's fence
   (``infra.erasures``) says none can land any more: the archiver's last commit records a list holding
   this erasure (an idle archiver commits a zero-row batch to record it), or no archiver is running.
   The receipt names that batch (``master_second_pass.archiver_batch``; null: no archiver ran).
6. Before it is marked complete, one list refresh plus two loader polls after the request pass: every
   speed consumer has re-read the list, and every serving worker has re-applied the pending erasure to
   its speed store after that (the speed side's bound is this time, not a commit).

The identity component is resolved when the erasure is recorded (the API: ``Merger.component_ids``, batch
and speed aliases together; ``lambdalytics erase``: :func:`master_component`, every archived alias); the
purge removes the ids its record holds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable

from lambdalytics.infra import serving_store
from lambdalytics.infra.erasures import REFRESH_S, Erasure, ErasureLog, archiver_running
from lambdalytics.infra.event_index import EventIndex, event_index_path
from lambdalytics.infra.quality_ledger import QualityLedger, ledger_path
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.identity import Alias, component_of

from .job import republish_locked
from .master import master_path, read_progress, recorded_fence
from .writer import BatchBusyError, exclusive, views_dir

log = logging.getLogger(__name__)

__all__ = ["ERASURE_KIND", "LOCK_WAIT_S", "master_component", "purge"]

ERASURE_KIND = "erasure"  # the manifest kind of the version an erasure publishes
LOCK_WAIT_S = 3600.0
"""How long a purge waits for a batch run holding the lock before it gives up (staying pending)."""


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _predicate(tenant_id: str, ids: Sequence[str]) -> str:
    return f"tenant_id = {_quote(tenant_id)} AND customer_id IN ({', '.join(_quote(c) for c in ids)})"


def master_component(settings: Settings, tenant_id: str, customer_id: str) -> list[str]:
    """Every id of ``customer_id``'s identity component by the alias events in the master (every
    archived alias, below and above W): what ``lambdalytics erase`` removes. A component over the cap is
    not merged (``schemas.identity``), so only the id asked for is erased, as only it answers for it."""
    path = master_path(settings.data_dir)
    if not (path / "_delta_log").exists():
        return [customer_id]
    dataset = DeltaTable(str(path)).to_pyarrow_dataset()
    aliases = dataset.to_table(
        columns=["event_time", "event_id", "previous_id", "customer_id"],
        filter=(pc.field("tenant_id") == tenant_id) & pc.field("previous_id").is_valid(),
    ).to_pylist()
    edges = [Alias(r["event_time"], r["event_id"], r["previous_id"], r["customer_id"]) for r in aliases]

    def edges_of(ids):
        wanted = set(ids)
        return [e for e in edges if wanted & set(e.ids)]

    return list(component_of(customer_id, edges_of).ids)


def _delete_master(path: Path, erasure: Erasure) -> tuple[int, list[str]]:
    """Delete the component's rows; (rows deleted, their event ids). Retried when a concurrent commit
    (an archiver append, a compaction) wins the race."""
    for attempt in range(5):
        table = DeltaTable(str(path))
        ids = list(erasure.customer_ids)
        rows = table.to_pyarrow_dataset().to_table(
            columns=["event_id"],
            filter=(pc.field("tenant_id") == erasure.tenant_id) & pc.field("customer_id").isin(ids),
        )
        if rows.num_rows == 0:
            return 0, []
        try:
            metrics = table.delete(
                _predicate(erasure.tenant_id, ids),
                commit_properties=CommitProperties(
                    custom_metadata={"lambdalytics.erasure": erasure.erasure_id}
                ),
            )
        except Exception as exc:  # noqa: BLE001 - a lost commit race: read the new snapshot and retry
            log.warning("master delete lost a commit race (attempt %d): %s", attempt + 1, exc)
            time.sleep(0.2 * (attempt + 1))
            continue
        return int(metrics.get("num_deleted_rows", rows.num_rows)), rows.column("event_id").to_pylist()
    raise RuntimeError("the master delete kept losing commit races; the erasure stays pending")


def _vacuum(path: Path) -> int:
    """Physically remove every file no longer in the table's latest version (tombstoned files only)."""
    return len(
        DeltaTable(str(path)).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    )


def _purge_master(settings: Settings, erasure: Erasure, erasures: ErasureLog) -> None:
    data_dir = Path(settings.data_dir)
    path = master_path(data_dir)
    if not DeltaTable.is_deltatable(str(path)):
        erasures.purged(erasure.erasure_id, "master", rows=0, files_removed=0)
        erasures.purged(erasure.erasure_id, "event_index", entries=0)
        _purge_quality_marks(data_dir, erasure, erasures)
        return
    rows, event_ids = _delete_master(path, erasure)
    files = _vacuum(path)
    entries = 0
    index = EventIndex.open(event_index_path(data_dir), create=False)
    if index is not None:
        with index:
            entries = index.forget(erasure.tenant_id, event_ids)
    erasures.purged(erasure.erasure_id, "master", rows=rows, files_removed=files)
    erasures.purged(erasure.erasure_id, "event_index", entries=entries)
    _purge_quality_marks(data_dir, erasure, erasures)


def _purge_quality_marks(data_dir: Path, erasure: Erasure, erasures: ErasureLog) -> None:
    """The quality ledger's identified-customer marks of the component's ids (its counters name no one)."""
    marks = 0
    ledger = QualityLedger.open(ledger_path(data_dir), create=False)
    if ledger is not None:
        with ledger:
            marks = ledger.forget(erasure.tenant_id, erasure.customer_ids)
    erasures.purged(erasure.erasure_id, "quality_ledger", marks=marks)


def _purge_views(settings: Settings, erasure: Erasure, erasures: ErasureLog, *, spark, show_progress: bool):
    data_dir = Path(settings.data_dir)
    manifest = republish_locked(settings, kind=ERASURE_KIND, spark=spark, show_progress=show_progress)
    # every view table the new version names: their older versions held the customer
    files = sum(_vacuum(views_dir(data_dir) / name) for name in (manifest.views if manifest else ()))
    removed = serving_store.remove_below(data_dir, manifest.batch_version) if manifest else []
    erasures.purged(
        erasure.erasure_id,
        "views",
        batch_version=manifest.batch_version if manifest else None,
        files_removed=files,
    )
    erasures.purged(erasure.erasure_id, "serving_store", versions_removed=sorted(removed))


def _await_fence(data_dir: Path, seq: int, *, wait_s: float, say: Callable[[str], None]) -> int | None:
    """Wait until no row of erasure ``seq``'s customers can land in the master any more: the archiver's
    last commit was checked against a list holding it (its batch number is returned: every later batch
    is, its commits being sequential), or no archiver runs (None: one that starts reads the list before
    it lands a row). Exact by the archiver's own commits, not by a time (``infra.erasures``)."""
    path = master_path(data_dir)
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        if recorded_fence(path) >= seq:
            return read_progress(path).batch_seq
        if not archiver_running(data_dir):
            return None
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the running archiver has not recorded erasure list seq {seq} in {wait_s:.0f}s")
        if not told:
            say("waiting for the archiver to record the erasure in a commit")
            told = True
        time.sleep(0.1)


@contextmanager
def _waiting_lock(data_dir: Path, wait_s: float, say: Callable[[str], None]) -> Iterator[None]:
    """The views' lock, waiting (at most ``wait_s``) for a batch run, backfill or retention holding it."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            with exclusive(data_dir):
                yield
            return
        except BatchBusyError:
            if time.monotonic() >= deadline:
                raise
            if not told:
                say("waiting for the batch run that holds the views' lock")
                told = True
            time.sleep(1.0)


def purge(
    settings: Settings,
    erasure_id: str,
    *,
    spark=None,
    show_progress: bool = True,
    lock_wait_s: float = LOCK_WAIT_S,
    say: Callable[[str], None] = log.info,
) -> Erasure:
    """Complete one pending erasure (a complete one is returned as it is). Safe to run again after any
    crash: every step finds what is left and removes it."""
    erasures = ErasureLog.open(settings)
    try:
        erasure = erasures.get(erasure_id)
        if erasure is None:
            raise KeyError(f"no erasure {erasure_id}")
        if erasure.state == "complete":
            return erasure
        data_dir = Path(settings.data_dir)
        with _waiting_lock(data_dir, lock_wait_s, say):
            say("master dataset and event-id index")
            _purge_master(settings, erasure, erasures)
            say("view versions and serving-store files")
            _purge_views(settings, erasure, erasures, spark=spark, show_progress=show_progress)
            # the second pass: once the archiver's fence says no raced row can land any more
            fence = _await_fence(data_dir, erasure.seq, wait_s=lock_wait_s, say=say)
            master = master_path(data_dir)
            raced = _delete_master(master, erasure)[0] if DeltaTable.is_deltatable(str(master)) else 0
            if raced:
                _vacuum(master)
                log.warning("erasure %s: %d rows archived while it ran were removed", erasure_id, raced)
            erasures.purged(erasure.erasure_id, "master_second_pass", rows=raced, archiver_batch=fence)
            # every speed consumer re-reads the list within REFRESH_S; every serving worker re-applies a
            # pending erasure to its speed store on each loader poll: wait for both before completing
            settle = erasure.requested_at + REFRESH_S + 2 * settings.batch_poll_seconds - time.time()
            if settle > 0:
                time.sleep(settle)
        erasures.complete(erasure_id)
        done = erasures.get(erasure_id)
        assert done is not None
        return done
    finally:
        erasures.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lambdalytics.batch.erasure ERASURE_ID``: the purge an API worker starts (never Spark in
    a worker). A failure leaves the erasure pending; running it again completes it."""
    parser = argparse.ArgumentParser(prog="python -m lambdalytics.batch.erasure")
    parser.add_argument("erasure_id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        purge(Settings(), args.erasure_id, show_progress=False)
    except Exception:
        log.exception("erasure %s failed; it stays pending", args.erasure_id)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
