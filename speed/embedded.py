"""The embedded speed store: in-process incremental aggregates per key per offset block.

Each deduplicated event updates, for its (topic, partition) and offset block ``offset // B``:
the customer's base states, the customer's and the campaign's per-hour states, and the milestones of
its entities. A query for watermark W folds only the blocks that start at or above ``W[tp]``; since
batch cuts are multiples of B, whole blocks are either covered by batch or by speed, never split.
When serving publishes a new batch version (:meth:`on_batch_published`), :meth:`drop_below` frees every
block the new W covers — memory is bounded by the events after the last batch run (and, without an index, the retained ids).

Deduplication is exact, by no clock: a copy of ``(tenant_id, event_id)`` is not counted when the store
holds another copy above its floor (ids applied there are kept until their block is dropped), or when the
event-id index (``infra.event_index``, written by the archiver before each master commit) names another
copy that lies lower — in Kafka order — or below the floor, i.e. one the batch view counts. Copies share
their key, so they sit in one partition, where the lowest offset is also the first to arrive: the batch
(``batch.views.dedup_events``) and this store keep the same copy, however far apart in time they come.
Without an index (tests, benchmarks) ids of dropped blocks and of records below the floor are retained
for ``dedup_window_ms`` of this process's monotonic clock, which no record can move.

A record the store cannot apply (:meth:`fail`) is a lost range of one offset
(:class:`~lambdalytics.schemas.views.Gap`): reads below its end fail closed until a batch W passes it.

Coverage (fail closed, never zero): a read at W is answered only if, for every partition W names and
every partition the feeding consumer found in the topics' metadata (:meth:`track`), consumption began at
or below W[tp] (:meth:`move_to` reports the consumer's position even before a record arrives), no block
at or above W was dropped, no lost range (:class:`~lambdalytics.schemas.views.Gap`) reaches above W, and
W splits this store's blocks the way the batch cut did (``schemas.views.cut_mismatch``). Anything else
raises :class:`~lambdalytics.speed.store.CoverageError` with the reason (a 503 in serving). A store fed
by ``ingest`` alone (tests, benchmarks) knows the partitions it has seen a record on.

Thread-safety: one writer (the consumer thread) and many readers; a lock guards every access.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from lambdalytics.infra import metric_registry
from lambdalytics.infra.event_index import EventIndex, Position
from lambdalytics.schemas import aggregates
from lambdalytics.schemas.aggregates import Latest
from lambdalytics.schemas.catalog import CATALOG, GRAIN_KEYS, HOUR_MS, Grain
from lambdalytics.schemas.cohorts import COHORT_METRIC, order_months
from lambdalytics.schemas.identity import Alias
from lambdalytics.schemas.views import Gap, at_or_above, block_of, cut_mismatch

from .aliases import ALIAS_EVENT, AliasEdges, alias_of
from .config import DEDUP_WINDOW_MS
from .layout import Row, RowLayout
from .store import CoverageError, Milestones, Partial, SpeedStatus, SpeedStore, Watermark
from .traits import TraitStates

__all__ = ["EmbeddedSpeedStore"]

log = logging.getLogger(__name__)

TP = tuple[str, int]
Block = tuple[str, int, int]  # topic, partition, block number
IdKey = tuple[str, str]  # tenant_id, event_id
Cell = tuple[Block, int]  # block, event-time hour start
Record = tuple[
    dict[str, Any] | None, int, int
]  # to_row dict (None: consumed, not applied), offset, broker ms
TP_BITS = 20  # an applied id's position is one int: offset << TP_BITS | partition id
INDEX_RETRY_S = 1.0  # an index not created yet is looked for again at most this often


class _Customer:
    """One customer's state: a profile row per cell (block, event-time hour) — the profile folds them
    all, a series the hours asked for —, its entities' milestones per block, its own campaign rows per
    (campaign, cell) (an erasure re-folds a campaign cell from the other customers' shares: a monoid
    fold, exact for every aggregate kind, where a min, a max or a distinct set cannot be un-merged),
    and a generation."""

    __slots__ = ("cells", "entities", "gen", "shares")

    def __init__(self) -> None:
        self.cells: dict[int, Row] = {}  # cell id -> row of every customer-grain base
        self.shares: dict[tuple[str, int], Row] | None = None  # (campaign, cell id) -> campaign row
        self.entities: dict[tuple[str, str], dict[Block, Milestones]] | None = None  # (entity, id) ->
        self.gen = 0


class EmbeddedSpeedStore(SpeedStore):
    """Opened from an :class:`~lambdalytics.speed.config.EmbeddedStoreConfig` by ``open_store``; its
    keyword arguments are that config's fields."""

    def __init__(
        self,
        *,
        block_size: int,
        dedup_window_ms: int = DEDUP_WINDOW_MS,
        event_index: str | Path | None = None,
        registered_metrics: str | Path | None = None,
    ):
        self.block_size = block_size
        self.dedup_window_ms = dedup_window_ms
        self.event_index = Path(event_index) if event_index is not None else None
        # the retention clock of an index-less store: this process's, never a record's (tests replace it)
        self.clock: Callable[[], float] = time.monotonic
        self._index: EventIndex | None = None
        self._index_looked_at = float("-inf")
        self._lock = threading.RLock()
        # the built-in catalog plus the metrics registered when the store opens (speed.store.SpeedStore.catalog)
        if registered_metrics is not None:
            self.catalog = metric_registry.current(Path(registered_metrics)).catalog
        self._profile = RowLayout(self.catalog.bases(Grain.customer))
        self._series = frozenset(m.name for m in self.catalog.bases(Grain.customer) if m.timeseries)
        self._campaign = RowLayout(CATALOG.bases(Grain.campaign))
        self._profile_plans, self._campaign_plans = self._profile.plans, self._campaign.plans
        self._campaign_key = GRAIN_KEYS[Grain.campaign][1]
        # event type -> (entity, id column, the milestone it reaches, the entity's milestones)
        self._milestones_of: dict[str, list[tuple[str, str, str, list[str]]]] = defaultdict(list)
        for e in CATALOG.entities:
            for ms in e.milestones:
                self._milestones_of[ms.event_type].append(
                    (e.name, e.id_column, ms.name, [m.name for m in e.milestones])
                )
        # state. Blocks and cells (block, hour) are interned: every key holding one shares its object, a
        # cell by a small int id
        self._blocks: dict[Block, Block] = {}
        self._cells: dict[Cell, int] = {}
        self._cell_of: dict[int, Cell] = {}
        self._next_cell = 0
        self._tenants: dict[str, dict[str, _Customer]] = {}  # tenant -> customer -> state
        self._entity_holders: dict[str, set[str]] = defaultdict(set)  # tenant -> customers with entities
        self._campaign_cells: dict[tuple[str, str], dict[int, Row]] = {}  # (tenant, campaign) -> cell ->
        # per (tenant, campaign) and hour, the fold of every block held: what a read at the served W
        # answers without folding blocks; the per-cell rows above stay only to drop blocks below W
        self._campaign_totals: dict[tuple[str, str], dict[int, Row]] = {}
        # exact dedup: per tenant, ids applied at or above the floor -> where their copy lies (one int:
        # offset << TP_BITS | partition id), dropped with their block
        self._applied: dict[str, dict[str, int]] = {}
        self._tp_ids: dict[TP, int] = {}
        self._tp_list: list[TP] = []
        self._aliases = AliasEdges()  # alias edges above the floor, per block (speed.aliases)
        # without an index: ids the store no longer holds (dropped, below the floor) -> retained since
        self._retained: OrderedDict[IdKey, float] = OrderedDict()
        self._floor: dict[tuple[str, int], int] = {}  # blocks below this offset are not held
        self._start: dict[tuple[str, int], int] = {}  # first offset consumed per partition
        self._positions: dict[tuple[str, int], int] = {}
        # partitions of the topics known from the consumer's metadata; None: a consumer feeds this store
        # and has not read the metadata yet (every read is refused until it has)
        self._partitions: set[TP] | None = set()
        self._gaps: list[Gap] = []  # lost ranges a batch W has not passed yet
        self._lost = 0
        self._high_water: dict[TP, int] = {}
        self._cut_with: int | None = None  # B of the batch version served (its manifest's)
        self._covered: Watermark | None = None  # the last W that passed _check, until floor/start change
        # customer_version(): the epoch moves whenever coverage may change (start, floor), the
        # per-customer generation whenever one of the customer's events is applied
        self._epoch = 0
        self._tenant_gens: dict[str, int] = {}  # tenant_version(): bumped by each of its events applied
        self._events = 0
        self._duplicates = 0
        self._last_broker_ms = 0
        self._caught_up_at: float | None = None
        self._fetched = False  # a consumer reported high-water marks (mark_caught_up) at least once
        self._traits = TraitStates(block_size)  # latest traits and touched customers (speed.traits)

    # ------------------------------------------------------------------ writes

    def ingest(self, row: dict[str, Any], topic: str, partition: int, offset: int, broker_ms: int) -> bool:
        """Apply one validated event (a ``to_row`` dict) at its Kafka position; False if a duplicate."""
        return not self.ingest_many(topic, partition, ((row, offset, broker_ms),))

    def ingest_many(
        self,
        topic: str,
        partition: int,
        records: Iterable[Record],
        *,
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> int:
        """Apply a poll's records of one partition in offset order, under one hold of the lock; returns
        the number of duplicates. Each record is ``(row, offset, broker_ms)``, the row a validated
        ``to_row`` dict, or None for a record consumed but not applied (:meth:`skip`).

        A record whose apply raises: with ``on_error`` it is handed over, ``on_error(index, exc)``, while
        the exception is being handled (the consumer logs it and calls :meth:`fail`), and the records
        after it are applied; without, the exception propagates, the records before it applied.
        """
        tp = (topic, partition)
        duplicates = 0
        with self._lock:
            tp_id, floor, positions, start = (
                self._tp_id(tp),
                self._floor.get(tp, 0),
                self._positions,
                self._start,
            )
            applied_by_tenant, b, aggregate, traits = (
                self._applied,
                self.block_size,
                self._aggregate,
                self._traits,
            )
            block_no, block, hours = -1, None, {}
            for i, (row, offset, broker_ms) in enumerate(records):
                if tp not in start:
                    self._began(tp, offset)
                positions[tp] = offset + 1
                if broker_ms > self._last_broker_ms:
                    self._last_broker_ms = broker_ms
                if row is None:
                    continue
                try:
                    tenant, event_id = row["tenant_id"], row["event_id"]
                    if offset < floor:  # covered by the batch view
                        if self.event_index is not None:
                            continue  # the index holds it already
                        if self._is_copy(tenant, event_id, tp, offset):
                            duplicates += 1
                        else:
                            self._retain((tenant, event_id))  # kept only for deduplication
                        continue
                    applied = applied_by_tenant.get(tenant)
                    if (applied is not None and event_id in applied) or (
                        (self.event_index is not None or self._retained)
                        and self._is_copy(tenant, event_id, tp, offset)
                    ):
                        duplicates += 1
                        continue
                    if applied is None:
                        applied = applied_by_tenant[tenant] = {}
                    applied[event_id] = offset << TP_BITS | tp_id
                    if (number := block_of(offset, b)) != block_no:  # its cells by hour: once per block
                        block_no, block, hours = number, self._block(tp, number), {}
                    event_time = row["event_time"]
                    hour = event_time - event_time % HOUR_MS
                    cell_id = hours.get(hour)
                    if cell_id is None:
                        cell_id = hours[hour] = self._cell(block, hour)
                    aggregate(row, block, cell_id, hour)
                    traits.apply(row, block, offset)
                    self._tenant_gens[tenant] = self._tenant_gens.get(tenant, 0) + 1
                    self._events += 1
                except Exception as exc:
                    if on_error is None:
                        raise
                    on_error(i, exc)
            self._duplicates += duplicates
        return duplicates

    def _tp_id(self, tp: TP) -> int:
        tp_id = self._tp_ids.get(tp)
        if tp_id is None:
            tp_id = self._tp_ids[tp] = len(self._tp_list)
            self._tp_list.append(tp)
        return tp_id

    def _position(self, packed: int) -> Position:
        topic, partition = self._tp_list[packed & ((1 << TP_BITS) - 1)]
        return topic, partition, packed >> TP_BITS

    def _is_copy(self, tenant: str, event_id: str, tp: TP, offset: int) -> bool:
        """Is another copy of this event counted — by this store, or by the batch view?"""
        applied = self._applied.get(tenant)
        if applied is not None and event_id in applied:
            return True  # (the same position again is a redelivery: not counted twice either)
        if self.event_index is None:
            if self._retained:
                self._expire()
                return (tenant, event_id) in self._retained
            return False
        index = self._open_index()
        lowest = index.lowest(tenant, event_id) if index is not None else None
        position = (tp[0], tp[1], offset)
        if lowest is None or lowest == position:
            return False
        # lower in Kafka order (the batch keeps that copy; here it was applied, or the batch counts it), or
        # in a block the batch view counts now
        return lowest < position or lowest[2] < self._floor.get((lowest[0], lowest[1]), 0)

    def _open_index(self) -> EventIndex | None:
        """The event-id index, opened on first use; until the archiver or a batch run has created it,
        nothing is indexed (and no W other than zero can be served, see ``_check``)."""
        if self._index is None and self.event_index is not None:
            now = time.monotonic()
            if now - self._index_looked_at >= INDEX_RETRY_S:
                self._index_looked_at = now
                self._index = EventIndex.open(self.event_index, create=False)
        return self._index

    def _retain(self, key: IdKey) -> None:
        self._retained[key] = self.clock()
        self._retained.move_to_end(key)

    def _expire(self) -> None:
        """Forget retained ids after the window, by this process's clock (a record's time cannot move it)."""
        horizon = self.clock() - self.dedup_window_ms / 1000
        while self._retained:
            key, since = next(iter(self._retained.items()))
            if since >= horizon:
                break
            self._retained.popitem(last=False)

    def fail(self, topic: str, partition: int, offset: int, reason: str) -> Gap:
        """A decoded record this store could not apply: consumed, and a lost range of one offset — reads
        below its end fail closed until a batch W passes it (the batch counts it, the archiver landed it).
        Whatever the failed apply left in the record's block goes with the block."""
        gap = Gap(topic, partition, offset, offset + 1)
        with self._lock:
            self._consumed((topic, partition), offset)
            self._gaps.append(gap)
            self._lost += gap.size
            self._coverage_changed()
        log.error(
            "speed store: %s (%s); reads below %d fail until a batch covers it", gap, reason, offset + 1
        )
        return gap

    def skip(self, topic: str, partition: int, offset: int) -> None:
        """A record consumed but not applied (it breaks the contract; the archiver dead-letters it).

        It still moves the position: were the first record of a partition skipped unrecorded, the store
        would claim consumption started above it, and every read with W below would be refused.
        """
        with self._lock:
            self._consumed((topic, partition), offset)

    def _consumed(self, tp: tuple[str, int], offset: int) -> None:
        if tp not in self._start:
            self._began(tp, offset)
        self._positions[tp] = offset + 1

    def _began(self, tp: TP, offset: int) -> None:
        self._start[tp] = offset
        self._coverage_changed()

    def _coverage_changed(self) -> None:
        self._covered = None
        self._epoch += 1

    def track(self, partitions: Iterable[TP] | None) -> None:
        """The partitions the feeding consumer found in the topics' metadata (None: not read yet).

        Partitions never shrink in Kafka, so the set only grows; each must be consumed from at most W
        before a read at W is answered.
        """
        with self._lock:
            if partitions is None:
                self._partitions = None
            else:
                self._partitions = (self._partitions or set()) | set(partitions)
            self._coverage_changed()

    def move_to(self, topic: str, partition: int, offset: int) -> Gap | None:
        """The consumer's next offset for a partition: where consumption begins on first report, and
        otherwise where the next record comes from. Beyond the store's position it is a jump (a lost
        position reset, a seek past data): the range in between is recorded as a :class:`Gap` — logged,
        counted, refused below its end until a batch W passes it — and returned.
        """
        tp = (topic, partition)
        with self._lock:
            if tp not in self._start:
                self._began(tp, offset)
                self._positions[tp] = offset
                return None
            expected = self._positions.get(tp, self._start[tp])
            if offset <= expected:
                return None
            gap = Gap(topic, partition, expected, offset)
            self._gaps.append(gap)
            self._lost += gap.size
            self._positions[tp] = offset
            self._coverage_changed()
        log.error(
            "speed store: %s (%d offsets); reads below %d fail until a batch covers them",
            gap,
            gap.size,
            offset,
        )
        return gap

    def _block(self, tp: TP, number: int) -> Block:
        """The interned block ``number`` of a partition."""
        key = (tp[0], tp[1], number)
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = key
        return block

    def _cell(self, block: Block, hour: int) -> int:
        """The id of the cell (block, event-time hour start)."""
        cell = (block, hour)
        cell_id = self._cells.get(cell)
        if cell_id is None:
            cell_id = self._cells[cell] = self._next_cell
            self._cell_of[cell_id] = cell
            self._next_cell += 1
        return cell_id

    def _aggregate(self, row: dict[str, Any], block: Block, cell_id: int, hour: int) -> None:
        """Fold one event into the rows of its cell (``cell_id``: ``block`` and event-time ``hour``)."""
        tenant, customer, event_type = row["tenant_id"], row["customer_id"], row["event_type"]
        if event_type == ALIAS_EVENT and (edge := alias_of(row)) is not None:
            self._aliases.add(tenant, edge, block)
        customers = self._tenants.get(tenant)
        if customers is None:
            customers = self._tenants[tenant] = {}
        state = customers.get(customer)
        if state is None:
            state = customers[customer] = _Customer()
        state.gen += 1
        cells = state.cells
        plans = self._profile_plans[event_type]  # shape -> rendered update
        held = cells.get(cell_id)
        cells[cell_id] = plans[0 if held is None else held[0]](held, row)
        campaign = row.get(self._campaign_key)
        if campaign is not None:
            plans = self._campaign_plans[event_type]
            ckey = (tenant, campaign)
            ccells = self._campaign_cells.get(ckey)
            if ccells is None:
                ccells = self._campaign_cells[ckey] = {}
                self._campaign_totals[ckey] = {}
            held = ccells.get(cell_id)
            ccells[cell_id] = plans[0 if held is None else held[0]](held, row)
            totals = self._campaign_totals[ckey]
            held = totals.get(hour)
            totals[hour] = plans[0 if held is None else held[0]](held, row)
            # the customer's own share of the cell: what an erasure re-folds the campaign without
            if state.shares is None:
                state.shares = {}
            share = (campaign, cell_id)
            held = state.shares.get(share)
            state.shares[share] = plans[0 if held is None else held[0]](held, row)
        for name, id_column, milestone, milestones in self._milestones_of.get(event_type, ()):
            entity_id = row.get(id_column)
            if entity_id is None:
                continue
            if state.entities is None:
                state.entities = {}
                self._entity_holders[tenant].add(customer)
            blocks = state.entities.get((name, entity_id))
            if blocks is None:
                blocks = state.entities[(name, entity_id)] = {}
            ms = blocks.get(block)
            if ms is None:
                ms = blocks[block] = dict.fromkeys(milestones)
            aggregates.reach_milestone(ms, milestone, row["event_time"])

    def drop_below(self, watermark: Watermark) -> None:
        """Forget every block (and every lost range) the batch view at ``watermark`` now covers."""
        with self._lock:
            # partitions with offsets this store never consumed that the new W now passes
            passed = {
                tp for tp, o in watermark.items() if self._start.get(tp, 0) > self._floor.get(tp, 0) < o
            }
            for tp, offset in watermark.items():
                self._floor[tp] = max(self._floor.get(tp, 0), offset)
            passed |= {
                (g.topic, g.partition)
                for g in self._gaps
                if g.end <= self._floor.get((g.topic, g.partition), 0)
            }
            self._gaps = [g for g in self._gaps if g.end > self._floor.get((g.topic, g.partition), 0)]
            self._forget_ids_below()
            self._recheck(passed)
            self._coverage_changed()  # every customer's version changes
            self._traits.prune(self._floor)
            self._aliases.keep(self._held)
            dropped = {b for b in self._blocks if not self._held(b)}
            if not dropped:
                return
            for b in dropped:
                del self._blocks[b]
            gone = {i for i, cell in self._cell_of.items() if cell[0] in dropped}
            for i in gone:
                del self._cells[self._cell_of.pop(i)]
            for tenant, customers in list(self._tenants.items()):
                for customer, state in list(customers.items()):
                    if state.shares is not None:
                        _drop_shares(state, gone)  # a share lies in a cell the customer has a row in
                    if not _drop_cells(state.cells, gone) | _drop_entity_blocks(state, dropped):
                        continue
                    if not state.cells and not state.entities:
                        del customers[customer]
                    if not state.entities:
                        self._entity_holders[tenant].discard(customer)
                if not customers:
                    del self._tenants[tenant]
            for key, cells in list(self._campaign_cells.items()):
                if _drop_cells(cells, gone):
                    if cells:
                        self._campaign_totals[key] = self._fold_campaign_hours(cells)
                    else:
                        del self._campaign_cells[key], self._campaign_totals[key]

    def _held(self, block: Block) -> bool:
        return at_or_above(block[2], self._floor.get(block[:2], 0), self.block_size)

    def _fold_campaign_hours(self, cells: dict[int, Row]) -> dict[int, Row]:
        """Per-cell campaign rows folded per hour over every block."""
        by_hour: dict[int, list[Row]] = defaultdict(list)
        for cell_id, row in cells.items():
            by_hour[self._cell_of[cell_id][1]].append(row)
        return {hour: self._campaign.merged(rows) for hour, rows in by_hour.items()}

    def _recheck(self, partitions: set[TP]) -> None:
        """Ids applied above offsets this store never consumed (a lost range, a late start) were decided
        without the copies there, if the archiver had not indexed them yet. Now that a batch counts those
        offsets, look again: an id whose lowest copy lay there is counted twice, so its offset becomes a
        Gap — reads fail closed until a batch W passes it, never a double count."""
        index = self._open_index() if partitions else None
        if index is None:
            return
        for tenant, applied in self._applied.items():
            for event_id, packed in applied.items():
                position = self._position(packed)
                if position[:2] not in partitions:
                    continue
                if (lowest := index.lowest(tenant, event_id)) is None or not lowest < position:
                    continue
                gap = Gap(position[0], position[1], position[2], position[2] + 1)
                self._gaps.append(gap)
                log.error(
                    "speed store: %s holds a copy of an event whose lowest copy %s the batch counts; "
                    "reads below %d fail until a batch covers it",
                    gap,
                    lowest,
                    gap.end,
                )

    def _forget_ids_below(self) -> None:
        """The ids of dropped blocks: the index answers for them now (without one, they are retained)."""
        mask, b = (1 << TP_BITS) - 1, self.block_size
        floors = [self._floor.get(tp, 0) for tp in self._tp_list]
        for tenant, applied in list(self._applied.items()):
            below = [
                event_id
                for event_id, packed in applied.items()
                if not at_or_above(block_of(packed >> TP_BITS, b), floors[packed & mask], b)
            ]
            for event_id in below:
                del applied[event_id]
                if self.event_index is None:
                    self._retain((tenant, event_id))
            if not applied:
                del self._applied[tenant]

    def on_batch_published(self, watermark: Watermark, *, block_size: int | None = None) -> None:
        """The blocks below the published W are the batch view's now: free them. A version cut with
        another B is remembered, and reads refuse to merge with it (``cut_mismatch``)."""
        with self._lock:
            self._cut_with = block_size
            self.drop_below(watermark)

    def mark_caught_up(self, at: float | None = None, *, high_water: Mapping[TP, int] | None = None) -> None:
        """A poll started at ``at`` ended with these high-water marks from the broker's fetch responses.

        The store is caught up while its position in every partition it consumes is at or above the
        mark (what was acknowledged before the poll is applied); a partition without a mark yet is not.
        Without marks (a store fed by ``ingest`` alone) its current positions are taken as the ends.
        """
        with self._lock:
            self._fetched = True
            self._high_water.update(self._positions if high_water is None else high_water)
            if self._reached_high_water():
                self._caught_up_at = at if at is not None else time.time()

    def _reached_high_water(self) -> bool:
        if not self._fetched or self._partitions is None:
            return False
        consumed = self._partitions | self._start.keys()
        return all(
            tp in self._high_water and self._positions.get(tp, -1) >= self._high_water[tp] for tp in consumed
        )

    # ------------------------------------------------------------------ reads

    def _check(self, watermark: Watermark) -> None:
        if watermark is self._covered:  # a batch version's W is one dict object: checked once
            return
        if self._partitions is None:
            raise CoverageError("the speed consumer has not read the topics' partitions yet")
        if reason := cut_mismatch(watermark, self.block_size, cut_with=self._cut_with):
            raise CoverageError(reason)
        for tp, floor in self._floor.items():
            if watermark.get(tp, 0) < floor:
                raise CoverageError(
                    f"{tp}: blocks below {floor} were dropped; asked for W={watermark.get(tp, 0)}"
                )
        for tp in sorted(watermark.keys() | self._partitions):
            if tp not in self._start:
                raise CoverageError(
                    f"{tp}: not consumed by the speed store (not assigned or not reached yet); "
                    f"W={watermark.get(tp, 0)}"
                )
        for tp, start in self._start.items():
            if start > watermark.get(tp, 0):
                raise CoverageError(f"{tp}: consumption started at {start}, above W={watermark.get(tp, 0)}")
        for gap in self._gaps:
            w = watermark.get((gap.topic, gap.partition), 0)
            if w < gap.end:
                raise CoverageError(f"{gap}, above W={w}: refused until a batch version covers it")
        if self.event_index is not None and any(watermark.values()):
            # copies below W are known only from the index: it must hold every master row below W
            if (index := self._open_index()) is None:
                raise CoverageError(f"no event index at {self.event_index} yet, W above zero")
            if reason := index.uncovered(watermark):
                raise CoverageError(reason)
        self._covered = watermark

    def _wanted(self, watermark: Watermark):
        """Is a cell's block at or above ``watermark`` (the speed side's, not the batch view's)?"""
        b, cell_of = self.block_size, self._cell_of

        def wanted(cell_id: int) -> bool:
            block = cell_of[cell_id][0]
            return at_or_above(block[2], watermark.get((block[0], block[1]), 0), b)

        return wanted

    def _customer(self, tenant: str, customer: str) -> _Customer | None:
        customers = self._tenants.get(tenant)
        return customers.get(customer) if customers is not None else None

    def customer(self, tenant: str, customer: str, watermark: Watermark) -> Partial:
        with self._lock:
            self._check(watermark)
            state = self._customer(tenant, customer)
            if state is None:
                return self._profile.fold(())
            wanted = self._wanted(watermark)
            return self._profile.fold(row for cell, row in state.cells.items() if wanted(cell))

    def _entity_states(self, state: _Customer, entity: str, watermark: Watermark):
        """(entity id, merged milestones) of one customer's entities of this kind at or above W."""
        b = self.block_size
        for (name, entity_id), blocks in (state.entities or {}).items():
            if name != entity:
                continue
            merged = aggregates.merge_milestones(
                *[ms for blk, ms in blocks.items() if at_or_above(blk[2], watermark.get(blk[:2], 0), b)]
            )
            if merged:
                yield entity_id, merged

    def customer_entities(
        self, tenant: str, customer: str, entity: str, watermark: Watermark
    ) -> dict[str, Milestones]:
        with self._lock:
            self._check(watermark)
            state = self._customer(tenant, customer)
            return dict(self._entity_states(state, entity, watermark)) if state is not None else {}

    def customer_hours(self, tenant, customer, watermark, start_ms, end_ms):
        with self._lock:
            self._check(watermark)
            state = self._customer(tenant, customer)
            cells = state.cells if state is not None else {}
            return self._hours(self._profile, self._series, cells, watermark, start_ms, end_ms)

    def _hours(self, layout: RowLayout, view, cells: dict[int, Row], watermark, start_ms, end_ms):
        wanted, cell_of = self._wanted(watermark), self._cell_of
        grouped: dict[int, list[Row]] = defaultdict(list)
        for cell_id, row in cells.items():
            hour = cell_of[cell_id][1]
            if start_ms <= hour < end_ms and wanted(cell_id):
                grouped[hour].append(row)
        return {hour: layout.fold(rows, view) for hour, rows in sorted(grouped.items())}

    def campaign_hours(self, tenant, campaign, watermark, start_ms, end_ms):
        with self._lock:
            self._check(watermark)
            if self._holds_only_wanted(watermark):  # the served W: the per-hour folds answer it
                totals = self._campaign_totals.get((tenant, campaign), {})
                return {
                    hour: self._campaign.fold([totals[hour]])  # a copy: the consumer updates the fold
                    for hour in sorted(totals)
                    if start_ms <= hour < end_ms
                }
            cells = self._campaign_cells.get((tenant, campaign), {})
            return self._hours(self._campaign, None, cells, watermark, start_ms, end_ms)

    def _holds_only_wanted(self, watermark: Watermark) -> bool:
        """Is every block held at or above ``watermark`` (it asks for everything the store keeps)?
        Held blocks start at the floor or above, so: W at most the floor in every partition."""
        return all(offset <= self._floor.get(tp, 0) for tp, offset in watermark.items())

    def tenant_entities(
        self, tenant: str, entity: str, watermark: Watermark
    ) -> dict[tuple[str, str], Milestones]:
        with self._lock:
            self._check(watermark)
            customers = self._tenants.get(tenant, {})
            return {
                (customer, entity_id): merged
                for customer in self._entity_holders.get(tenant, ())
                for entity_id, merged in self._entity_states(customers[customer], entity, watermark)
            }

    def order_months(self, tenant: str, watermark: Watermark) -> dict[str, set[int]]:
        with self._lock:
            self._check(watermark)
            wanted, cell_of = self._wanted(watermark), self._cell_of
            out: dict[str, set[int]] = {}
            for customer, state in self._tenants.get(tenant, {}).items():
                if months := order_months(
                    (cell_of[c][1], self._profile.value(row, COHORT_METRIC))
                    for c, row in state.cells.items()
                    if wanted(c)
                ):
                    out[customer] = months
            return out

    def alias_edges(self, tenant: str, customers: Iterable[str] | None, watermark: Watermark) -> set[Alias]:
        with self._lock:
            self._check(watermark)
            b = self.block_size
            return self._aliases.edges(
                tenant, customers, lambda k: at_or_above(k[2], watermark.get((k[0], k[1]), 0), b)
            )

    def erase(self, tenant: str, customers: Iterable[str]) -> int:
        """Forget every event of ``customers`` of ``tenant``: their own rows, entities, traits and alias
        edges go, and the campaign cells they touched are re-folded from the other customers' shares,
        so campaign answers equal a store that never saw them. Their applied ids stay: a redelivered
        copy is still a duplicate, never counted anew."""
        removed = 0
        with self._lock:
            erased = set(customers)
            removed += self._traits.forget(tenant, erased) + self._aliases.forget(tenant, erased)
            held = self._tenants.get(tenant, {})
            touched: set[tuple[str, int]] = set()  # (campaign, cell id) to re-fold
            for customer in erased:
                state = held.pop(customer, None)
                if state is None:
                    continue
                removed += len(state.cells) + sum(len(b) for b in (state.entities or {}).values())
                self._entity_holders[tenant].discard(customer)
                touched.update(state.shares or ())
            if not held:
                self._tenants.pop(tenant, None)
            if touched:
                rest: dict[tuple[str, int], list[Row]] = defaultdict(list)
                for state in held.values():
                    for share in touched.intersection(state.shares or ()):
                        rest[share].append(state.shares[share])
                refold: set[str] = set()
                for campaign, cell_id in touched:
                    cells = self._campaign_cells.get((tenant, campaign))
                    if cells is None:
                        continue
                    if rows := rest.get((campaign, cell_id)):
                        cells[cell_id] = self._campaign.merged(rows)
                    else:
                        cells.pop(cell_id, None)
                    refold.add(campaign)
                    removed += 1
                for campaign in refold:
                    key = (tenant, campaign)
                    if cells := self._campaign_cells[key]:
                        self._campaign_totals[key] = self._fold_campaign_hours(cells)
                    else:
                        del self._campaign_cells[key], self._campaign_totals[key]
            self._epoch += 1  # every cached answer's token changes
        return removed

    def customer_traits(self, tenant: str, customer: str, watermark: Watermark) -> dict[str, Latest]:
        with self._lock:
            self._check(watermark)
            return self._traits.customer(tenant, customer, watermark)

    def touched_customers(self, tenant: str, watermark: Watermark) -> set[str]:
        with self._lock:
            self._check(watermark)
            return self._traits.touched(tenant, watermark)

    def customer_version(self, tenant: str, customer: str) -> tuple[int, int]:
        with self._lock:
            state = self._customer(tenant, customer)
            return self._epoch, state.gen if state is not None else 0

    def tenant_version(self, tenant: str) -> tuple[int, int]:
        with self._lock:
            return self._epoch, self._tenant_gens.get(tenant, 0)

    def lag_ms(self) -> int:
        with self._lock:
            return self._lag_ms()

    def _lag_ms(self) -> int:
        now = time.time()
        if self._caught_up_at is not None:
            lag = int((now - self._caught_up_at) * 1000)
        else:
            lag = int(now * 1000) - self._last_broker_ms if self._last_broker_ms else 0
        return max(lag, 0)

    def status(self) -> SpeedStatus:
        with self._lock:
            known = self._partitions or set()
            return SpeedStatus(
                lag_ms=self._lag_ms(),
                positions=dict(self._positions),
                events=self._events,
                duplicates=self._duplicates,
                caught_up=self._reached_high_water(),
                high_water=dict(self._high_water),
                unassigned=tuple(sorted(known - self._start.keys())),
                gaps=tuple(self._gaps),
                lost_offsets=self._lost,
            )

    def active_customers(self) -> int:
        """Customers with state in the store (what its memory is sized by, with their events)."""
        with self._lock:
            return sum(len(customers) for customers in self._tenants.values())

    def memory_keys(self) -> int:
        """Number of (key, cell) rows and entity block states held: what memory grows with."""
        with self._lock:
            return (
                sum(len(c.cells) for customers in self._tenants.values() for c in customers.values())
                + sum(len(cells) for cells in self._campaign_cells.values())
                + sum(
                    len(blocks)
                    for customers in self._tenants.values()
                    for c in customers.values()
                    for blocks in (c.entities or {}).values()
                )
            )


def _drop_cells(cells: dict[int, Row], gone: set[int]) -> bool:
    """Remove the rows of dropped cells in place; True if any was removed."""
    dead = [c for c in cells if c in gone]
    for c in dead:
        del cells[c]
    return bool(dead)


def _drop_shares(state: _Customer, gone: set[int]) -> None:
    """Remove a customer's campaign shares of dropped cells in place."""
    shares = state.shares
    for key in [k for k in shares if k[1] in gone]:
        del shares[key]
    if not shares:
        state.shares = None


def _drop_entity_blocks(state: _Customer, dropped: set[Block]) -> bool:
    """Remove a customer's entity states of dropped blocks in place; True if any was removed."""
    changed = False
    for key, blocks in list((state.entities or {}).items()):
        dead = [b for b in blocks if b in dropped]
        for b in dead:
            del blocks[b]
        changed |= bool(dead)
        if not blocks:
            del state.entities[key]
    return changed
