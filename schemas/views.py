"""What the batch layer hands to serving: the watermark, the cut rule, and every view it publishes.

Batch writes these views, serving reads them and the speed stores answer for what they do not cover,
so the contract lives here, in the layer all three import (ARCHITECTURE §2, §9):

- :data:`Watermark`, an offset vector ``(topic, partition) → offset``. As a batch watermark W the views
  cover exactly the events with ``offset < W[tp]``; as archiver progress it is the next offset to land.
  It travels as JSON through :func:`encode_offsets` / :func:`decode_offsets`.
- **The cut rule.** Batch cuts only at multiples of the block size B per partition (:func:`cut`); the
  speed side keeps aggregates per offset block (:func:`block_of`) and a block is the speed side's
  exactly when it starts at or above W (:func:`at_or_above`). Whole blocks, never split: no
  coordination needed — as long as both sides use the same B, which :func:`cut_mismatch` checks.
- :class:`Gap`, offsets a consumer skipped when its position was lost: the archiver records them with
  its offsets, the speed side refuses to answer below their end until a batch W passes it.
- **The views**: name → key columns and value columns, derived from the metric catalog, plus the
  columns whose rows a backfill recomputes together. :data:`EVENT_VIEWS` are aggregated from events;
  :data:`DERIVED_VIEWS` are computed from them (order months, cohort counts, RFM cut points).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from .catalog import CATALOG, GRAIN_KEYS, Entity, Grain
from .rfm import DIMENSIONS
from .segments import SEGMENT_BASES

__all__ = [
    "ALIAS_EDGES",
    "CAMPAIGN_KEYS",
    "CAMPAIGN_STATS",
    "COHORT_COUNTS",
    "CUSTOMER_KEYS",
    "CUSTOMER_PROFILE",
    "CUSTOMER_TIMESERIES",
    "CUSTOMER_TRAITS",
    "DERIVED_VIEWS",
    "ENTITY_STATES",
    "EVENT_VIEWS",
    "Gap",
    "HOUR",
    "IDENTITY_COMPONENTS",
    "LIVE_WINDOW_CAP_MS",
    "ORDER_MONTHS",
    "RFM_CUTS",
    "RFM_THRESHOLDS",
    "SEGMENT_MEMBERS",
    "SEGMENT_STATS",
    "TENANT_KEYS",
    "VIEWS",
    "View",
    "Watermark",
    "at_or_above",
    "block_of",
    "cut",
    "cut_mismatch",
    "decode_offsets",
    "encode_offsets",
    "entity_state",
]

Watermark = dict[tuple[str, int], int]
"""(topic, partition) → offset. Partitions absent from a watermark are at 0 (nothing covered)."""


def encode_offsets(offsets: Watermark) -> str:
    return orjson.dumps({f"{t}:{p}": o for (t, p), o in sorted(offsets.items())}).decode()


def decode_offsets(text: str) -> Watermark:
    out: Watermark = {}
    for key, offset in orjson.loads(text).items():
        topic, partition = key.rsplit(":", 1)  # Kafka topic names cannot contain ':'
        out[(topic, int(partition))] = int(offset)
    return out


def block_of(offset: int, block_size: int) -> int:
    """The offset block ``[k·B, (k+1)·B)`` an offset falls in: the unit the speed side keeps and drops."""
    return offset // block_size


def cut(archived: Watermark, block_size: int) -> Watermark:
    """The batch watermark for an archived offset vector: per partition the last block start not above it."""
    return {tp: block_of(offset, block_size) * block_size for tp, offset in archived.items()}


def at_or_above(block: int, offset: int, block_size: int) -> bool:
    """Does the whole block lie at or above ``offset`` (so the speed side, not batch, answers for it)?"""
    return block * block_size >= offset


def cut_mismatch(watermark: Watermark, block_size: int, *, cut_with: int | None = None) -> str | None:
    """Why blocks of ``block_size`` cannot be split at ``watermark`` (cut with ``cut_with``), or None.

    Blocks fall wholly on one side only when every W[tp] is a block start: a W cut with another B splits
    a block and its part above W is lost (B=1000 served with B=300 answers 800 at W=1000, not 1000).
    """
    if cut_with is not None and cut_with != block_size:
        return f"the batch version was cut with block size {cut_with}, the speed side keeps blocks of {block_size}"
    for tp, offset in sorted(watermark.items()):
        if offset % block_size:
            return f"{tp}: W={offset} is not a multiple of the block size {block_size}"
    return None


@dataclass(frozen=True, order=True)
class Gap:
    """Offsets ``[start, end)`` of one partition that a consumer jumped over (its position was lost, or
    reset past them): never consumed, so an answer counting them would silently undercount."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition} offsets [{self.start}, {self.end}) lost"

    def to_json(self) -> dict[str, str | int]:
        return {"topic": self.topic, "partition": self.partition, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class View:
    """One published view table: its rows are unique by ``keys``."""

    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    recompute_by: tuple[str, ...] | None = None
    """Backfill: the key whose rows are recomputed together from all their events (all hours of a
    customer); None for a derived view, which is recomputed whole from the event views."""

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys + self.values


def _names(metrics: Iterable) -> tuple[str, ...]:
    return tuple(m.name for m in metrics)


CUSTOMER_KEYS = GRAIN_KEYS[Grain.customer]
CAMPAIGN_KEYS = GRAIN_KEYS[Grain.campaign]
TENANT_KEYS = GRAIN_KEYS[Grain.tenant]
HOUR = "hour"  # epoch-ms start of an event-time hour
LIVE_WINDOW_CAP_MS = 7 * 24 * 3600 * 1000
"""The longest live-orders window the API accepts (7 days). The serving store indexes by time only the
entities with a windowed milestone within this cap of its build, so a window costs what it holds."""

CUSTOMER_PROFILE = View(
    "customer_profile", CUSTOMER_KEYS, _names(CATALOG.bases(Grain.customer)), recompute_by=CUSTOMER_KEYS
)
CUSTOMER_TIMESERIES = View(
    "customer_timeseries",
    (*CUSTOMER_KEYS, HOUR),
    _names(m for m in CATALOG.bases(Grain.customer) if m.timeseries),
    recompute_by=CUSTOMER_KEYS,
)
CAMPAIGN_STATS = View(
    "campaign_stats",
    (*CAMPAIGN_KEYS, HOUR),
    _names(CATALOG.bases(Grain.campaign)),
    recompute_by=CAMPAIGN_KEYS,
)
ENTITY_STATES: dict[str, View] = {
    e.name: View(
        f"{e.name}_state",
        (*CUSTOMER_KEYS, e.id_column),
        tuple(ms.name for ms in e.milestones),
        recompute_by=CUSTOMER_KEYS,
    )
    for e in CATALOG.entities
}
"""Per entity: the first time of each milestone, so durations straddling W finish after a merge."""

CUSTOMER_TRAITS = View(
    "customer_traits",
    (*CUSTOMER_KEYS, "trait"),
    ("event_time", "offset", "value"),
    recompute_by=CUSTOMER_KEYS,
)
"""Per customer and trait: the latest ``identify`` setting it (``aggregates.latest``): its event time,
its offset (ties) and the value text (``schemas.traits.value_text``)."""

ORDER_MONTHS = View("customer_order_months", CUSTOMER_KEYS, ("first_month", "months"))
"""Per customer who ordered: the cohort month and the sorted months with an order (``schemas.cohorts``)."""
COHORT_COUNTS = View("cohort_counts", (*TENANT_KEYS, "cohort"), ("size", "active"))
"""Per tenant and cohort month: its size and ``active[k]``, the customers ordering in cohort + k, for k
up to the tenant's latest order month. Counts, not shares, so serving can correct them."""
RFM_CUTS: dict[str, str] = {d: f"{d}_cuts" for d in DIMENSIONS}
RFM_THRESHOLDS = View("rfm_thresholds", TENANT_KEYS, ("customers", *RFM_CUTS.values()))
"""Per tenant: the quintile cut points of R, F and M over its customers who ordered (``schemas.rfm``)."""

ALIAS_EDGES = View(
    "alias_edges",
    (*CUSTOMER_KEYS, "previous_id"),
    ("alias_time", "alias_event_id"),
    recompute_by=CUSTOMER_KEYS,
)
"""Per (tenant, survivor, previous id): the latest alias between them by ``(event_time, event_id)``, the
alias order of ``schemas.identity`` (the only alias of an edge a canonical id can depend on)."""
IDENTITY_COMPONENTS = View("identity_components", CUSTOMER_KEYS, ("canonical", "ids", "refused"))
"""Per id named by an alias below W: its component's canonical id, its number of ids and whether it is
refused (over the cap). Cohorts and RFM count a component as one customer (``schemas.identity``)."""
SEGMENT_KEYS = (*TENANT_KEYS, "by", "segment")
SEGMENT_STATS = View("segment_stats", SEGMENT_KEYS, ("customers", *_names(SEGMENT_BASES)))
"""Per tenant, segmentation and segment value (``schemas.segments``): its customers and, per segment
base, the sum (counts, sums) or the HLL union (distinct counts) over them."""
SEGMENT_MEMBERS = View("segment_members", (*SEGMENT_KEYS, CUSTOMER_KEYS[-1]), ())
"""Who is in each segment below W: the drill-down's pages, and what a re-union reads."""

EVENT_VIEWS: tuple[View, ...] = (
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    CAMPAIGN_STATS,
    *ENTITY_STATES.values(),
    ALIAS_EDGES,
    CUSTOMER_TRAITS,
)
DERIVED_VIEWS: tuple[View, ...] = (
    ORDER_MONTHS,
    COHORT_COUNTS,
    RFM_THRESHOLDS,
    IDENTITY_COMPONENTS,
    SEGMENT_STATS,
    SEGMENT_MEMBERS,
)
VIEWS: dict[str, View] = {v.name: v for v in (*EVENT_VIEWS, *DERIVED_VIEWS)}


def entity_state(entity: Entity) -> View:
    return ENTITY_STATES[entity.name]
