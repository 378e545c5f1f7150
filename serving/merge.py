"""The one place where batch ⊕ speed becomes an answer (Summingbird's ClientStore, in spirit).

Every answer is computed from a single (batch index, W) snapshot: the batch view covers offsets < W,
the speed store is asked for offsets >= W, base states are merged with ``schemas.aggregates``, and only
then are derived metrics, durations, RFM scores and cohort shares computed — from catalog definitions
and the analyses in ``schemas.rfm`` / ``schemas.cohorts``. A customer is its identity component
(``schemas.identity``, edges from both sides via ``serving.identity``): its ids' states are merged like
the two sides are, and cohorts count a component once. If the speed
store cannot cover W (it dropped blocks because a newer batch version was swapped in mid-request), the
answer is recomputed once from the new snapshot; a second failure propagates (503, fail closed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lambdalytics.schemas import aggregates, rfm, segments
from lambdalytics.schemas.catalog import (
    CATALOG,
    TRAITS_BY_NAME,
    Aggregate,
    Catalog,
    Grain,
    finalize,
    show_trait,
)
from lambdalytics.schemas.identity import Component
from lambdalytics.speed.store import CoverageError, SpeedStore

from .answer_cache import AnswerCache
from .identity import IdentityGraph
from .index import BatchIndex
from .served_metrics import MetricPending, pending

__all__ = ["Merger", "NotFound", "SpeedStale", "UnknownMetric"]

_NO_VALUE = segments.NO_VALUE


LIVE_HORIZON_MS = 60_000
"""How far past now a live-orders answer looks for batch milestones entering its window: an answer holds
at most this long (``Merger.live_orders_until``)."""


class NotFound(LookupError):
    """No data for this object in this tenant (the API answers 404 either way)."""


class UnknownMetric(ValueError):
    pass


class SpeedStale(CoverageError):
    """The speed side made no progress for longer than its bound: it cannot vouch for events >= W
    acknowledged since, so the answer would be a frozen undercount (503, like any coverage gap)."""


class Merger:
    def __init__(self, index: Callable[[], BatchIndex], speed: SpeedStore, *, profile_cache: int = 0):
        self._index = index
        self.speed = speed
        self.profiles = AnswerCache(profile_cache)
        self.answers = AnswerCache(profile_cache)  # encoded tenant-level answers (``api.answers``)
        self.stale: Callable[[], str | None] | None = None  # why the speed side is stale, if it is
        self._pending_at: tuple[tuple[int, int] | None, frozenset[str]] = (None, frozenset())

    def check_live(self) -> None:
        """SpeedStale when the speed side is stale: every read passes here, cached answers included."""
        if self.stale is not None and (reason := self.stale()):
            raise SpeedStale(reason)

    def _with_snapshot(self, fn):
        self.check_live()
        try:
            return fn(self._index())
        except CoverageError:
            return fn(self._index())  # a swap raced this request: the new snapshot covers it

    # ------------------------------------------------------------------ identity

    def component_ids(self, tenant: str, customer: str) -> list[str]:
        """Every id merged with ``customer`` (itself included), batch and speed aliases together: what
        erasing or reading the whole customer has to reach. ``[customer]`` when it has no alias or its
        component is refused (over ``schemas.identity.MAX_COMPONENT_IDS``)."""
        return self._with_snapshot(
            lambda ix: list(IdentityGraph(ix, self.speed, tenant).component(customer).ids)
        )

    # ------------------------------------------------------------------ customer

    def profile(self, tenant: str, customer: str, now_ms: int | None = None) -> dict[str, Any]:
        """The merged customer's profile; ``identity`` says which ids it merges and its canonical id."""
        now_ms = now_ms or int(time.time() * 1000)
        return self._with_snapshot(lambda ix: self._profile(ix, tenant, customer, now_ms))

    def _profile(self, ix: BatchIndex, tenant: str, customer: str, now_ms: int) -> dict[str, Any]:
        comp = IdentityGraph(ix, self.speed, tenant).component(customer)
        key = (tenant, comp.ids)
        versions = [self.speed.customer_version(tenant, i) for i in comp.ids]  # before computing
        version = None if None in versions else tuple(versions)
        cached = None if version is None else self.profiles.get(ix, key, version)
        if cached is None:
            cached = self._profile_at(ix, tenant, comp)
            if version is not None:
                self.profiles.put(ix, key, version, cached)
        metrics, scores, last_order, traits = cached
        recency = rfm.recency_days(last_order, now_ms) if last_order is not None else None
        return {
            "metrics": metrics,
            "rfm": {"recency_days": recency, **scores},
            "identity": _identity(comp),
            "traits": traits,
        }

    def _pending(self, ix: BatchIndex) -> frozenset[str]:
        """Registered metrics this snapshot cannot answer exactly (``serving.served_metrics``), per version."""
        if self._pending_at[0] != (ix.version, id(self.speed.catalog)):
            self._pending_at = (
                (ix.version, id(self.speed.catalog)),
                pending(self.speed.catalog, ix.registered),
            )
        return self._pending_at[1]

    def _profile_at(
        self, ix: BatchIndex, tenant: str, comp: Component
    ) -> tuple[dict, dict, int | None, dict]:
        """Everything of a profile that does not depend on the clock: (metrics, RFM scores, last order,
        latest traits — the latest over every id of the component)."""
        w = ix.watermark
        catalog, skip = self.speed.catalog, self._pending(ix)  # built-in plus registered metrics
        batch = [b for i in comp.ids if (b := ix.profile(tenant, i)) is not None]
        speed = [self.speed.customer(tenant, i, w) for i in comp.ids]
        if not batch and not any(s.get("events_total") for s in speed):
            raise NotFound(comp.canonical)
        raw = {
            m.name: aggregates.merge_all(m, [b.get(m.name) for b in batch], [s.get(m.name) for s in speed])
            for m in catalog.bases(Grain.customer)
        }
        raw = catalog.derive(Grain.customer, raw)
        for entity, metrics in CATALOG.entity_metrics(Grain.customer).items():
            states = [s for i in comp.ids for s in self._customer_entities(ix, tenant, i, entity)]
            for m in metrics:
                raw[m.name] = m.compute(states)  # customer-grain entity metrics are not windowed
        metrics = {
            m.name: finalize(m, raw[m.name])
            for m in catalog.at(Grain.customer, public_only=True)
            if m.name not in skip
        }
        latest = self._traits(ix, tenant, comp.ids)
        traits = {name: show_trait(TRAITS_BY_NAME[name], s[2]) for name, s in sorted(latest.items())}
        return metrics, self._rfm_scores(ix, tenant, raw), raw[rfm.R_METRIC], traits

    def _traits(self, ix: BatchIndex, tenant: str, ids) -> dict[str, aggregates.Latest]:
        batch = ix.customer_traits(tenant, list(ids))
        speed = [self.speed.customer_traits(tenant, i, ix.watermark) for i in ids]
        return aggregates.merge_latest(*(batch.get(i) for i in ids), *speed)

    def _customer_entities(self, ix: BatchIndex, tenant: str, customer: str, entity: str):
        batch = ix.customer_entities(entity, tenant, customer)
        speed = self.speed.customer_entities(tenant, customer, entity, ix.watermark)
        return [aggregates.merge_milestones(batch.get(i), speed.get(i)) for i in batch.keys() | speed.keys()]

    @staticmethod
    def _rfm_scores(ix: BatchIndex, tenant: str, raw: dict[str, Any]) -> dict[str, Any]:
        """RFM without recency_days (the one part that moves with the clock)."""
        last, freq, mon = raw[rfm.R_METRIC], raw[rfm.F_METRIC], raw[rfm.M_METRIC]
        out: dict[str, Any] = {
            "frequency": freq,
            "monetary": finalize(CATALOG[rfm.M_METRIC], mon),
            "r": None,
            "f": None,
            "m": None,
            "segment": None,
        }
        out.update(rfm.scores(last, freq, mon, ix.rfm_cuts(tenant)) or {})
        return out

    # ------------------------------------------------------------------ time series

    @staticmethod
    def _buckets(
        grain: Grain,
        batch_hours: list[dict[int, dict]],
        speed_hours: list[dict[int, dict]],
        start_ms: int,
        end_ms: int,
        bucket_ms: int,
        names: list[str],
        catalog: Catalog = CATALOG,
    ) -> list[tuple[int, dict]]:
        """Hours of any number of keys (a component's ids) on each side, merged per bucket."""
        grouped: dict[int, tuple[list, list]] = {}
        for side, per_key in enumerate((batch_hours, speed_hours)):
            for hours in per_key:
                for hour, values in hours.items():
                    if start_ms <= hour < end_ms:
                        grouped.setdefault(hour - hour % bucket_ms, ([], []))[side].append(values)
        out = []
        for bucket in sorted(grouped):
            b, s = grouped[bucket]
            raw = {
                m.name: aggregates.merge_all(m, [v.get(m.name) for v in b], [v.get(m.name) for v in s])
                for m in catalog.bases(grain)
                if m.name in catalog.series(grain)
            }
            raw = catalog.derive(grain, raw)
            out.append((bucket, {n: finalize(catalog[n], raw[n]) for n in names}))
        return out

    def timeseries(
        self, tenant: str, customer: str, metric: str, start_ms: int, end_ms: int, bucket_ms: int
    ) -> list[tuple[int, Any]]:
        catalog = self.speed.catalog  # built-in plus registered metrics
        if metric not in catalog.series(Grain.customer) or not catalog[metric].public:
            raise UnknownMetric(metric)

        def run(ix: BatchIndex):
            if metric in self._pending(ix):
                raise MetricPending(
                    f"{metric} is registered but batch version {ix.version} does not hold it yet: "
                    f"run `lambdalytics batch backfill --metric {metric}`"
                )
            ids = IdentityGraph(ix, self.speed, tenant).component(customer).ids
            batch = [ix.customer_hours(tenant, i, start_ms, end_ms) for i in ids]
            speed = [self.speed.customer_hours(tenant, i, ix.watermark, start_ms, end_ms) for i in ids]
            known = any(
                ix.profile(tenant, i) is not None
                or self.speed.customer(tenant, i, ix.watermark).get("events_total")
                for i in ids
            )
            if not known:
                raise NotFound(customer)
            points = self._buckets(
                Grain.customer, batch, speed, start_ms, end_ms, bucket_ms, [metric], catalog
            )
            return [(ts, values[metric]) for ts, values in points]

        return self._with_snapshot(run)

    # ------------------------------------------------------------------ campaigns

    def campaign(self, tenant: str, campaign: str, start_ms: int, end_ms: int, bucket_ms: int):
        """Totals and points of every public campaign metric (the campaign answer's fields)."""
        names = [m.name for m in CATALOG.at(Grain.campaign, public_only=True)]

        def run(ix: BatchIndex):
            # the hours in range only: cost follows the points asked for, never the campaign's history
            batch = ix.campaign_hours(tenant, campaign, start_ms, end_ms)
            speed = self.speed.campaign_hours(tenant, campaign, ix.watermark, start_ms, end_ms)
            unknown = not batch and not speed and not ix.has_campaign(tenant, campaign)
            if unknown and not self.speed.campaign_hours(tenant, campaign, ix.watermark, 0, 2**62):
                raise NotFound(campaign)
            points = self._buckets(Grain.campaign, [batch], [speed], start_ms, end_ms, bucket_ms, names)
            total = self._buckets(Grain.campaign, [batch], [speed], start_ms, end_ms, 2**62, names)
            if total:
                totals = total[0][1]
            else:
                raw = CATALOG.derive(
                    Grain.campaign, {m.name: aggregates.empty(m) for m in CATALOG.bases(Grain.campaign)}
                )
                totals = {n: finalize(CATALOG[n], raw[n]) for n in names}
            return totals, points

        return self._with_snapshot(run)

    # ------------------------------------------------------------------ tenant

    def live_orders(self, tenant: str, window_ms: int, now_ms: int | None = None) -> dict[str, Any]:
        """Costs the batch entities with a windowed milestone in the window (the store's time index)
        plus the entities the speed side saw after W, each merged with its batch state by key.

        Exact: an entity the speed side did not touch is its batch state, in the window only if one of
        its windowed milestones is; a touched one is merged before the window is applied.
        """
        return self.live_orders_until(tenant, window_ms, now_ms or int(time.time() * 1000))[0]

    def live_orders_until(self, tenant: str, window_ms: int, now_ms: int) -> tuple[dict[str, Any], int]:
        """:meth:`live_orders` at ``now_ms`` and the first time it may answer differently with the same
        data: the same answer holds for every now in [now_ms, until). Until then no windowed milestone
        enters the window (one at t > now_ms enters at t, the batch ones up to ``LIVE_HORIZON_MS``
        ahead are looked at) or leaves it (one at t in the window leaves at t + window + 1)."""

        def run(ix: BatchIndex):
            out, until = {}, now_ms + LIVE_HORIZON_MS
            for entity, metrics in CATALOG.entity_metrics(Grain.tenant).items():
                states = ix.entities_in_window(entity, tenant, now_ms - window_ms, until)
                speed = self.speed.tenant_entities(tenant, entity, ix.watermark)
                states |= ix.entity_states(entity, tenant, [k for k in speed if k not in states])
                for key, milestones in speed.items():
                    states[key] = aggregates.merge_milestones(states.get(key), milestones)
                public = [m for m in metrics if m.public]
                out |= {
                    m.name: finalize(m, m.compute(states.values(), now_ms=now_ms, window_ms=window_ms))
                    for m in public
                }
                if not all(m.windowed for m in public):
                    until = now_ms  # a metric over every entity: no interval is known to hold
                for on in {m.window_on for m in public if m.windowed}:
                    for state in states.values():
                        t = state.get(on)
                        if t is not None and t >= now_ms - window_ms:
                            until = min(until, t if t > now_ms else t + window_ms + 1)
            return out, until

        return self._with_snapshot(run)

    def cohorts(self, tenant: str, start_month: int | None, end_month: int | None) -> list[dict[str, Any]]:
        """The batch cohort counts, corrected for what the speed side saw after W.

        The batch counted each of its components (aliases below W) once. The customers the speed side
        touched — orders above W, or named by an alias above W — and everything merged with them, before
        or after, are taken out as the batch grouped them and put back as merged components with their
        merged months. Costs the cohort table plus those customers, never the tenant's history; equal
        to ``schemas.cohorts.retention`` over the merged months of every merged customer.
        """

        def run(ix: BatchIndex):
            table = ix.cohorts(tenant)  # a fresh copy of the tenant's table
            speed = self.speed.order_months(tenant, ix.watermark)
            graph = IdentityGraph(ix, self.speed, tenant, preload=True)
            pending, seen, before, after = set(speed) | graph.speed_ids(), set(), set(), set()
            while pending:  # close over both groupings: each id's batch and merged component
                customer = pending.pop()
                seen.add(customer)
                b, m = graph.batch_component(customer).ids, graph.component(customer).ids
                before.add(b)
                after.add(m)
                pending |= {*b, *m} - seen
            batch = ix.order_months_of(tenant, seen)
            for ids in before:
                table.add(set().union(*(batch.get(i, ()) for i in ids)), -1)
            for ids in after:
                table.add(set().union(*(batch.get(i, ()) for i in ids), *(speed.get(i, ()) for i in ids)))
            return table.retention(start=start_month, end=end_month)

        return self._with_snapshot(run)

    # ------------------------------------------------------------------ segments

    def segments(
        self, tenant: str, by: str, metric: str, *, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """Per segment of ``by``: its merged customers and ``metric``, from the batch segment table
        corrected for the merged customers the speed side touched after W (:meth:`_segment_moves`: take
        each batch component out of its batch segment with its batch state, put each merged component
        into its merged segment with its merged state — a trait set or an alias above W moves them).
        Counts and sums subtract; a distinct count's segment left by a component is re-unioned from its
        members' sketches (the one cost that follows a segment's size); HLL unions are idempotent, so a
        joining component adds every sketch of its ids.

        With ``start_ms``/``end_ms`` (either may be None: unbounded) the segments are the same, and
        ``metric`` covers only the hours that start in [start, end): see :meth:`_segments_in_range`.
        """
        segments.segmentation(by)
        bases = [CATALOG[b] for b in segments.segment_metric(metric)]
        if start_ms is not None or end_ms is not None:
            lo, hi = -(2**62) if start_ms is None else start_ms, 2**62 if end_ms is None else end_ms
            return self._with_snapshot(
                lambda ix: self._segments_in_range(ix, tenant, by, bases, metric, lo, hi)
            )

        def run(ix: BatchIndex):
            table = {seg: dict(row) for seg, row in ix.segments(tenant, by).items()}
            moves = self._segment_moves(ix, tenant, by)
            extra: dict[str, dict[str, list]] = {}  # segment -> distinct base -> sketches / speed sets
            left: dict[str, set[str]] = {}  # segment -> batch components (canonical ids) that left it
            for canonical, (seg, batch, _, into) in moves.before.items():
                _add(table, seg, _sums(bases, batch, []), -1)
                if moves.after[into][0] != seg:
                    left.setdefault(seg, set()).add(canonical)
            for seg, batch, speed, _ in moves.after.values():
                _add(table, seg, _sums(bases, batch, speed), 1)
                for b in (b for b in bases if b.aggregate is Aggregate.hll_distinct):
                    into = extra.setdefault(seg, {}).setdefault(b.name, [])
                    into += [v.get(b.name) for v in batch]
                    into += [set(v.get(b.name) or ()) for v in speed]
            out = []
            for seg, row in table.items():
                if row["customers"] <= 0:
                    continue
                raw = {}
                for b in bases:
                    if b.aggregate is not Aggregate.hll_distinct:
                        raw[b.name] = row.get(b.name)
                        continue
                    sketches = (
                        [row.get(b.name)]
                        if seg not in left
                        else self._members_sketches(ix, tenant, by, seg, b.name, exclude=left[seg])
                    )
                    added = extra.get(seg, {}).get(b.name, [])
                    sketches += [x for x in added if isinstance(x, bytes)]
                    sets = [x for x in added if isinstance(x, set)]
                    raw[b.name] = round(aggregates.union_sketch(sketches, sets).get_estimate())
                value = CATALOG.derive(Grain.customer, raw)[metric]
                out.append(
                    {
                        "key": seg,
                        "segment": _shown(by, seg),
                        "customers": row["customers"],
                        "value": finalize(CATALOG[metric], value),
                    }
                )
            out.sort(key=lambda r: (r["key"] == _NO_VALUE, r["key"]))
            return out

        return self._with_snapshot(run)

    def _segments_in_range(
        self, ix: BatchIndex, tenant: str, by: str, bases: list, metric: str, start_ms: int, end_ms: int
    ) -> list[dict[str, Any]]:
        """The merged segments' members (the batch members without the components that left after W,
        with those that joined), and ``metric`` over each segment's hours in [start, end): every id's
        batch hours (below W) merged with the speed side's (at or above W, touched ids only) per base —
        the same exact merge as a time series, distinct counts as one HLL union per segment. The batch
        keeps no per-segment hours, so this costs the tenant's customers × their hours in range."""
        w = ix.watermark
        members = {seg: set(ix.segment_members(tenant, by, seg)) for seg in ix.segments(tenant, by)}
        moves = self._segment_moves(ix, tenant, by)
        for canonical, (seg, *_) in moves.before.items():
            members.setdefault(seg, set()).discard(canonical)
        for canonical, (seg, *_) in moves.after.items():
            members.setdefault(seg, set()).add(canonical)
        graph = IdentityGraph(ix, self.speed, tenant)
        out = []
        for seg, canonicals in members.items():
            if not canonicals:
                continue
            ids = sorted(
                i
                for c in canonicals
                for i in (moves.ids[c] if c in moves.ids else graph.batch_component(c).ids)
            )
            batch = [ix.customer_hours(tenant, i, start_ms, end_ms) for i in ids]
            speed = [
                self.speed.customer_hours(tenant, i, w, start_ms, end_ms) for i in ids if i in moves.seen
            ]
            b = [v for hours in batch for h, v in hours.items() if start_ms <= h < end_ms]
            s = [v for hours in speed for h, v in hours.items() if start_ms <= h < end_ms]
            raw = {}
            for base in bases:  # a sum over no events is 0 here, as in the segment table
                merged = aggregates.merge_all(
                    base, [v.get(base.name) for v in b], [v.get(base.name) for v in s]
                )
                raw[base.name] = merged if merged is not None else 0
            value = finalize(CATALOG[metric], CATALOG.derive(Grain.customer, raw)[metric])
            out.append({"key": seg, "segment": _shown(by, seg), "customers": len(canonicals), "value": value})
        out.sort(key=lambda r: (r["key"] == _NO_VALUE, r["key"]))
        return out

    def segment_customers(
        self, tenant: str, by: str, key: str, *, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """One merged segment's customers (canonical ids) in id order after the cursor ``after``: the
        batch members' page without the components that left after W, with those that joined; (page,
        next cursor or None)."""
        segments.segmentation(by)

        def run(ix: BatchIndex):
            moves = self._segment_moves(ix, tenant, by)
            was = {c for c, (seg, *_) in moves.before.items() if seg == key}
            now = {c for c, (seg, *_) in moves.after.items() if seg == key}
            gone, joined = was - now, sorted(now - was)
            batch = ix.segment_members(tenant, by, key, after=after, limit=limit + len(gone) + 1)
            page = sorted(
                {c for c in batch if c not in gone} | {c for c in joined if after is None or c > after}
            )
            if len(batch) == limit + len(gone) + 1:  # the batch page may stop short of later joiners
                page = [c for c in page if c <= batch[-1]]
            more = len(page) > limit
            page = page[:limit]
            return page, (page[-1] if more and page else None)

        return self._with_snapshot(run)

    def _segment_moves(self, ix: BatchIndex, tenant: str, by: str) -> _Moves:
        """The merged customers the speed side changed: every id it touched after W (an event, or named
        by an alias above W), closed over both groupings as cohorts are — each id's batch component (the
        one the batch counted) and its merged component. ``before``: batch canonical → (batch segment,
        its ids' batch rows, [], the merged canonical it is now part of), for components the batch held;
        ``after``: merged canonical → (merged segment, batch rows, speed states, itself)."""
        w = ix.watermark
        graph = IdentityGraph(ix, self.speed, tenant, preload=True)
        pending = set(self.speed.touched_customers(tenant, w)) | graph.speed_ids()
        moves = _Moves()
        if not pending:
            return moves
        seen, before, after = set(), {}, {}
        while pending:
            customer = pending.pop()
            seen.add(customer)
            b, m = graph.batch_component(customer), graph.component(customer)
            before[b.canonical], after[m.canonical] = b, m
            pending |= {*b.ids, *m.ids} - seen
        ids = sorted(seen)
        cuts = ix.rfm_cuts(tenant)
        profiles = {i: p for i in ids if (p := ix.profile(tenant, i)) is not None}
        speed = {i: self.speed.customer(tenant, i, w) for i in ids}
        batch_traits = ix.customer_traits(tenant, ids)
        speed_traits = {i: self.speed.customer_traits(tenant, i, w) for i in ids}
        months = ix.order_months_of(tenant, ids) if by == "cohort" else {}
        speed_months = self.speed.order_months(tenant, w) if by == "cohort" else {}
        into = {i: m.canonical for m in after.values() for i in m.ids}

        def segment(comp, with_speed: bool) -> str:
            batch_rows = [profiles[i] for i in comp.ids if i in profiles]
            speed_rows = [speed[i] for i in comp.ids] if with_speed else []
            traits = [batch_traits.get(i) for i in comp.ids]
            traits += [speed_traits[i] for i in comp.ids] if with_speed else []
            month_sets = [months.get(i, ()) for i in comp.ids]
            month_sets += [speed_months.get(i, ()) for i in comp.ids] if with_speed else []
            return segments.segment_of(
                by,
                traits=aggregates.merge_latest(*traits),
                raw=segments.component_raw(batch_rows, speed_rows),
                first_month=min((m for ms in month_sets for m in ms), default=None),
                cuts=cuts,
            )

        for canonical, comp in before.items():
            if any(i in profiles for i in comp.ids):  # the batch counted it
                rows = [profiles[i] for i in comp.ids if i in profiles]
                moves.before[canonical] = (segment(comp, False), rows, [], into[comp.ids[0]])
        for canonical, comp in after.items():
            rows = [profiles[i] for i in comp.ids if i in profiles]
            if rows or any(speed[i].get("events_total") for i in comp.ids):
                moves.after[canonical] = (segment(comp, True), rows, [speed[i] for i in comp.ids], canonical)
                moves.ids[canonical] = comp.ids
        moves.seen = seen
        return moves

    def _members_sketches(
        self, ix: BatchIndex, tenant: str, by: str, seg: str, base: str, *, exclude: set[str]
    ) -> list:
        """The batch sketches of every id of every batch member of ``seg`` but ``exclude``."""
        graph = IdentityGraph(ix, self.speed, tenant)
        return [
            (ix.profile(tenant, i) or {}).get(base)
            for c in ix.segment_members(tenant, by, seg)
            if c not in exclude
            for i in graph.batch_component(c).ids
        ]


class _Moves:
    """What :meth:`Merger._segment_moves` found (see there)."""

    def __init__(self) -> None:
        self.before: dict[str, tuple] = {}
        self.after: dict[str, tuple] = {}
        self.ids: dict[str, tuple[str, ...]] = {}  # merged canonical -> its ids
        self.seen: set[str] = set()  # every id of the closure (the only ones with speed state)


def _sums(bases, batch: list[dict], speed: list[dict]) -> dict[str, Any]:
    """A component's additive bases over its ids' batch rows and speed states (distinct ones: None)."""
    return {
        b.name: aggregates.merge_all(b, [v.get(b.name) for v in batch], [v.get(b.name) for v in speed])
        for b in bases
        if b.aggregate is not Aggregate.hll_distinct
    }


def _add(table: dict[str, dict], seg: str, values: dict[str, Any], sign: int) -> None:
    """Count one merged customer's additive bases into (``sign=1``) or out of (``-1``) a segment's row."""
    row = table.setdefault(seg, {"customers": 0})
    row["customers"] += sign
    for name, value in values.items():
        row[name] = (row.get(name) or 0) + sign * (value or 0)


def _shown(by: str, key: str):
    """A segment key as the answer shows it: null for no value, a trait as its type shows it."""
    if key == _NO_VALUE:
        return None
    if by.startswith("trait:"):
        return show_trait(TRAITS_BY_NAME[by.removeprefix("trait:")], key)
    return key


def _identity(comp: Component) -> dict[str, Any]:
    return {"canonical": comp.canonical, "ids": list(comp.ids), "refused": comp.refused}
