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
from lambdalytics.schemas.catalog import CATALOG, GRAIN_KEYS, HOUR_MS, BaseMetric, Grain
from lambdalytics.schemas.cohorts import COHORT_METRIC, order_months
from lambdalytics.schemas.compile import python_predicate
from lambdalytics.schemas.identity import Alias
from lambdalytics.schemas.views import Gap, at_or_above, block_of, cut_mismatch

from .aliases import AliasEdges, alias_of
from .config import DEDUP_WINDOW_MS
from .erasure import CampaignContributions
from .store import CoverageError, Milestones, Partial, SpeedStatus, SpeedStore, Watermark
from .traits import TraitStates

__all__ = ["EmbeddedSpeedStore"]

log = logging.getLogger(__name__)

TP = tuple[str, int]
Block = tuple[str, int, int]  # topic, partition, block number
IdKey = tuple[str, str]  # tenant_id, event_id
INDEX_RETRY_S = 1.0  # an index not created yet is looked for again at most this often


class _Compiled:
    """The catalog's bases of one grain as (metric, predicate) pairs."""

    def __init__(self, bases: list[BaseMetric]):
        self.bases = [(m, python_predicate(m.filter)) for m in bases]

    def empty(self) -> Partial:
        return {m.name: aggregates.empty(m) for m, _ in self.bases}

    def update(self, partial: Partial, row: dict[str, Any]) -> None:
        for m, matches in self.bases:
            if matches(row):
                partial[m.name] = aggregates.update(m, partial[m.name], row[m.column] if m.column else None)

    def fold(self, partials: list[Partial]) -> Partial:
        out = self.empty()
        for p in partials:
            for m, _ in self.bases:
                out[m.name] = aggregates.merge(m, out[m.name], p[m.name])
        return out


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
        self._profile = _Compiled(self.catalog.bases(Grain.customer))
        self._series = _Compiled([m for m in self.catalog.bases(Grain.customer) if m.timeseries])
        self._campaign = _Compiled(CATALOG.bases(Grain.campaign))
        self._campaign_key = GRAIN_KEYS[Grain.campaign][1]
        self._entities = {
            e.name: (e, {ms.event_type: ms.name for ms in e.milestones}) for e in CATALOG.entities
        }
        # state
        self._customers: dict[tuple[str, str], dict[Block, Partial]] = {}
        self._customer_hours: dict[tuple[str, str], dict[tuple[Block, int], Partial]] = {}
        self._campaign_hours: dict[tuple[str, str], dict[tuple[Block, int], Partial]] = {}
        # per (tenant, campaign) and hour, the fold of every block held: what a read at the served W
        # answers without folding blocks; the per-block partials above stay only to drop blocks below W
        self._campaign_totals: dict[tuple[str, str], dict[int, Partial]] = {}
        # each customer's own share of the campaign partials: what an erasure re-folds without it
        self._contributions = CampaignContributions()
        self._entity_states: dict[str, dict[tuple[str, str, str], dict[Block, Milestones]]] = {
            name: {} for name in self._entities
        }
        self._tenant_customers: dict[str, set[str]] = defaultdict(set)
        self._aliases = AliasEdges()  # alias edges above the floor, per block (speed.aliases)
        self._tenant_entities: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        # (entity, tenant, customer) -> entity ids: a profile read must not scan every entity held
        self._customer_entities: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        # exact dedup: ids applied at or above the floor, where their copy lies, and the ids of each block
        self._applied: dict[IdKey, Position] = {}
        self._block_ids: dict[Block, list[IdKey]] = defaultdict(list)
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
        self._customer_gen: dict[tuple[str, str], int] = {}
        self._events = 0
        self._duplicates = 0
        self._last_broker_ms = 0
        self._caught_up_at: float | None = None
        self._fetched = False  # a consumer reported high-water marks (mark_caught_up) at least once
        self._traits = TraitStates(block_size)  # latest traits and touched customers (speed.traits)

    # ------------------------------------------------------------------ writes

    def ingest(self, row: dict[str, Any], topic: str, partition: int, offset: int, broker_ms: int) -> bool:
        """Apply one validated event (a ``to_row`` dict) at its Kafka position; False if a duplicate."""
        tp = (topic, partition)
        with self._lock:
            self._consumed(tp, offset)
            self._last_broker_ms = max(self._last_broker_ms, broker_ms)
            key = (row["tenant_id"], row["event_id"])
            if offset < self._floor.get(tp, 0):  # covered by the batch view
                if self.event_index is not None:
                    return True  # the index holds it already
                if self._is_copy(key, (topic, partition, offset)):
                    self._duplicates += 1
                    return False
                self._retain(key)  # kept only for deduplication
                return True
            if self._is_copy(key, (topic, partition, offset)):
                self._duplicates += 1
                return False
            block = (topic, partition, block_of(offset, self.block_size))
            self._applied[key] = (topic, partition, offset)
            self._block_ids[block].append(key)
            self._aggregate(row, block)
            self._traits.apply(row, block, offset)
            self._events += 1
            return True

    def _is_copy(self, key: IdKey, position: Position) -> bool:
        """Is another copy of this event counted — by this store, or by the batch view?"""
        if key in self._applied:
            return True  # (the same position again is a redelivery: not counted twice either)
        if self.event_index is None:
            self._expire()
            return key in self._retained
        index = self._open_index()
        lowest = index.lowest(*key) if index is not None else None
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

    def _aggregate(self, row: dict[str, Any], block: Block) -> None:
        tenant, customer = row["tenant_id"], row["customer_id"]
        ckey = (tenant, customer)
        self._customer_gen[ckey] = self._customer_gen.get(ckey, 0) + 1
        self._tenant_customers[tenant].add(customer)
        if (edge := alias_of(row)) is not None:
            self._aliases.add(tenant, edge, block)
        blocks = self._customers.setdefault(ckey, {})
        self._profile.update(blocks.setdefault(block, self._profile.empty()), row)
        hour = row["event_time"] - row["event_time"] % HOUR_MS
        hours = self._customer_hours.setdefault(ckey, {})
        self._series.update(hours.setdefault((block, hour), self._series.empty()), row)
        campaign = row.get(self._campaign_key)
        if campaign is not None:
            chours = self._campaign_hours.setdefault((tenant, campaign), {})
            self._campaign.update(chours.setdefault((block, hour), self._campaign.empty()), row)
            totals = self._campaign_totals.setdefault((tenant, campaign), {})
            self._campaign.update(totals.setdefault(hour, self._campaign.empty()), row)
            cell = (campaign, block, hour)
            self._campaign.update(
                self._contributions.partial(tenant, customer, cell, self._campaign.empty), row
            )
        for name, (entity, by_type) in self._entities.items():
            milestone = by_type.get(row["event_type"])
            entity_id = row.get(entity.id_column)
            if milestone is None or entity_id is None:
                continue
            states = self._entity_states[name].setdefault((tenant, customer, entity_id), {})
            ms = states.setdefault(block, {m.name: None for m in entity.milestones})
            aggregates.reach_milestone(ms, milestone, row["event_time"])
            self._tenant_entities[(tenant, name)].add((customer, entity_id))
            self._customer_entities[(name, tenant, customer)].add(entity_id)

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
            self._coverage_changed()  # every customer's version changes: their generations can start over
            self._customer_gen = {}
            self._customers = _prune(self._customers, self._floor, self.block_size, lambda k: k)
            self._traits.prune(self._floor)
            self._customer_hours = _prune(self._customer_hours, self._floor, self.block_size, lambda k: k[0])
            self._campaign_hours = _prune(self._campaign_hours, self._floor, self.block_size, lambda k: k[0])
            self._campaign_totals = {
                key: _fold_hours(self._campaign, held) for key, held in self._campaign_hours.items()
            }
            self._contributions.prune(self._floor, self.block_size)
            for name in self._entity_states:
                self._entity_states[name] = _prune(
                    self._entity_states[name], self._floor, self.block_size, lambda k: k
                )
            self._aliases.keep(lambda b: at_or_above(b[2], self._floor.get((b[0], b[1]), 0), self.block_size))
            live = {(t, c) for t, c in self._customers}
            self._tenant_customers = defaultdict(set)
            for t, c in live:
                self._tenant_customers[t].add(c)
            self._tenant_entities = defaultdict(set)
            self._customer_entities = defaultdict(set)
            for name, states in self._entity_states.items():
                for t, c, i in states:
                    self._tenant_entities[(t, name)].add((c, i))
                    self._customer_entities[(name, t, c)].add(i)

    def _recheck(self, partitions: set[TP]) -> None:
        """Ids applied above offsets this store never consumed (a lost range, a late start) were decided
        without the copies there, if the archiver had not indexed them yet. Now that a batch counts those
        offsets, look again: an id whose lowest copy lay there is counted twice, so its offset becomes a
        Gap — reads fail closed until a batch W passes it, never a double count."""
        index = self._open_index() if partitions else None
        if index is None:
            return
        for key, position in list(self._applied.items()):
            if (
                position[:2] in partitions
                and (lowest := index.lowest(*key)) is not None
                and lowest < position
            ):
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
        for block in [
            b for b in self._block_ids if not at_or_above(b[2], self._floor.get(b[:2], 0), self.block_size)
        ]:
            for key in self._block_ids.pop(block):
                if self._applied.pop(key, None) is not None and self.event_index is None:
                    self._retain(key)

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
        b = self.block_size

        def wanted(block: Block) -> bool:
            return at_or_above(block[2], watermark.get((block[0], block[1]), 0), b)

        return wanted

    def customer(self, tenant: str, customer: str, watermark: Watermark) -> Partial:
        with self._lock:
            self._check(watermark)
            wanted = self._wanted(watermark)
            blocks = self._customers.get((tenant, customer), {})
            return self._profile.fold([p for blk, p in blocks.items() if wanted(blk)])

    def customer_entities(
        self, tenant: str, customer: str, entity: str, watermark: Watermark
    ) -> dict[str, Milestones]:
        with self._lock:
            self._check(watermark)
            wanted = self._wanted(watermark)
            states = self._entity_states[entity]
            out: dict[str, Milestones] = {}
            for entity_id in self._customer_entities.get((entity, tenant, customer), ()):
                blocks = states[(tenant, customer, entity_id)]
                merged = aggregates.merge_milestones(*[m for blk, m in blocks.items() if wanted(blk)])
                if merged:
                    out[entity_id] = merged
            return out

    def _hours(self, store, compiled: _Compiled, key, watermark: Watermark, start_ms: int, end_ms: int):
        with self._lock:
            self._check(watermark)
            wanted = self._wanted(watermark)
            grouped: dict[int, list[Partial]] = defaultdict(list)
            for (blk, hour), partial in store.get(key, {}).items():
                if wanted(blk) and start_ms <= hour < end_ms:
                    grouped[hour].append(partial)
            return {hour: compiled.fold(parts) for hour, parts in sorted(grouped.items())}

    def customer_hours(self, tenant, customer, watermark, start_ms, end_ms):
        return self._hours(
            self._customer_hours, self._series, (tenant, customer), watermark, start_ms, end_ms
        )

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
        return self._hours(
            self._campaign_hours, self._campaign, (tenant, campaign), watermark, start_ms, end_ms
        )

    def _holds_only_wanted(self, watermark: Watermark) -> bool:
        """Is every block held at or above ``watermark`` (it asks for everything the store keeps)?
        Held blocks start at the floor or above, so: W at most the floor in every partition."""
        return all(offset <= self._floor.get(tp, 0) for tp, offset in watermark.items())

    def tenant_entities(
        self, tenant: str, entity: str, watermark: Watermark
    ) -> dict[tuple[str, str], Milestones]:
        with self._lock:
            self._check(watermark)
            wanted = self._wanted(watermark)
            states = self._entity_states[entity]
            out = {}
            for customer, entity_id in self._tenant_entities.get((tenant, entity), ()):
                merged = aggregates.merge_milestones(
                    *[m for blk, m in states[(tenant, customer, entity_id)].items() if wanted(blk)]
                )
                if merged:
                    out[(customer, entity_id)] = merged
            return out

    def order_months(self, tenant: str, watermark: Watermark) -> dict[str, set[int]]:
        with self._lock:
            self._check(watermark)
            wanted = self._wanted(watermark)
            out: dict[str, set[int]] = {}
            for customer in self._tenant_customers.get(tenant, ()):
                hours = self._customer_hours.get((tenant, customer), {}).items()
                if months := order_months(
                    (hour, p[COHORT_METRIC]) for (blk, hour), p in hours if wanted(blk)
                ):
                    out[customer] = months
            return out

    def alias_edges(self, tenant: str, customers: Iterable[str] | None, watermark: Watermark) -> set[Alias]:
        with self._lock:
            self._check(watermark)
            return self._aliases.edges(tenant, customers, self._wanted(watermark))

    def erase(self, tenant: str, customers: Iterable[str]) -> int:
        """Forget every event of ``customers`` of ``tenant``: their own partials, entities and order
        months go, and the campaign cells they touched are re-folded from the other customers'
        shares (``speed.erasure``), so campaign answers equal a store that never saw them."""
        removed = 0
        with self._lock:
            campaigns: set[tuple[str, str]] = set()
            erased = set(customers)
            removed += self._traits.forget(tenant, erased) + self._aliases.forget(tenant, erased)
            for customer in erased:
                ckey = (tenant, customer)
                removed += len(self._customers.pop(ckey, {})) + len(self._customer_hours.pop(ckey, {}))
                self._tenant_customers.get(tenant, set()).discard(customer)
                for name, states in self._entity_states.items():
                    for entity_id in self._customer_entities.pop((name, tenant, customer), set()):
                        removed += len(states.pop((tenant, customer, entity_id), {}))
                        self._tenant_entities.get((tenant, name), set()).discard((customer, entity_id))
                for campaign, block, hour in self._contributions.take(tenant, customer):
                    held = self._campaign_hours.get((tenant, campaign), {})
                    rest = self._contributions.others(tenant, (campaign, block, hour))
                    if rest:
                        held[(block, hour)] = self._campaign.fold(rest)
                    else:
                        held.pop((block, hour), None)
                    campaigns.add((tenant, campaign))
                    removed += 1
                self._customer_gen[ckey] = self._customer_gen.get(ckey, 0) + 1
            for key in campaigns:
                self._campaign_totals[key] = _fold_hours(self._campaign, self._campaign_hours.get(key, {}))
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
            return self._epoch, self._customer_gen.get((tenant, customer), 0)

    def status(self) -> SpeedStatus:
        with self._lock:
            now = time.time()
            if self._caught_up_at is not None:
                lag = int((now - self._caught_up_at) * 1000)
            else:
                lag = int(now * 1000) - self._last_broker_ms if self._last_broker_ms else 0
            known = self._partitions or set()
            return SpeedStatus(
                lag_ms=max(lag, 0),
                positions=dict(self._positions),
                events=self._events,
                duplicates=self._duplicates,
                caught_up=self._reached_high_water(),
                high_water=dict(self._high_water),
                unassigned=tuple(sorted(known - self._start.keys())),
                gaps=tuple(self._gaps),
                lost_offsets=self._lost,
            )

    def memory_keys(self) -> int:
        """Number of (key, block) partials held: what memory grows with."""
        with self._lock:
            return (
                sum(len(v) for v in self._customers.values())
                + sum(len(v) for v in self._customer_hours.values())
                + sum(len(v) for v in self._campaign_hours.values())
                + sum(len(v) for states in self._entity_states.values() for v in states.values())
            )


def _fold_hours(compiled: _Compiled, held: dict[tuple[Block, int], Partial]) -> dict[int, Partial]:
    """Per-(block, hour) partials folded per hour over every block."""
    grouped: dict[int, list[Partial]] = defaultdict(list)
    for (_, hour), partial in held.items():
        grouped[hour].append(partial)
    return {hour: compiled.fold(parts) for hour, parts in grouped.items()}


def _prune(store: dict, floor: Watermark, block_size: int, block_key) -> dict:
    """Drop entries whose block lies entirely below the floor; drop keys left empty."""
    out = {}
    for key, entries in store.items():
        kept = {
            k: v
            for k, v in entries.items()
            if at_or_above((b := block_key(k))[2], floor.get((b[0], b[1]), 0), block_size)
        }
        if kept:
            out[key] = kept
    return out
