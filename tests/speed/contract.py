"""Machinery of the speed-store contract suite: each store opened over a record list, every read of the
interface enumerated over a stream's keys, and answers compared with the oracle, value and type."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from lambdalytics.schemas.catalog import CATALOG, GRAIN_KEYS, Grain
from lambdalytics.speed.config import TABLE_BY_TOPIC, EmbeddedStoreConfig, PinotConfig
from lambdalytics.speed.factory import open_store
from lambdalytics.speed.pinot import PinotSpeedStore
from lambdalytics.speed.store import SpeedStore

from .oracle import SpeedOracle
from .pinot_double import PinotBrokerDouble
from .streams import Record, stream

BLOCK = 10
HOUR = 3_600_000
EVERYTHING = (0, 2**62)
READS = (
    "customer",
    "customer_hours",
    "customer_entities",
    "campaign_hours",
    "tenant_entities",
    "order_months",
    "alias_edges",
    "customer_traits",
    "touched_customers",
)
"""Every read of :class:`SpeedStore`; the suite checks this is all of them."""

Read = tuple[str, tuple]
Starts = Mapping[tuple[str, int], int] | None


def open_embedded(records: list[Record], start_offsets: Starts = None, **config) -> SpeedStore:
    """The embedded store after consuming ``records`` (a partition's consumption beginning at its start);
    ``config``: further config fields (``registered_metrics``)."""
    store = open_store(EmbeddedStoreConfig(block_size=BLOCK, **config))
    for row, topic, partition, offset, broker_ms in records:
        if offset >= (start_offsets or {}).get((topic, partition), 0):
            store.ingest(row, topic, partition, offset, broker_ms)
    return store


def pinot_store(double: PinotBrokerDouble, *, erasures=None, **config) -> PinotSpeedStore:
    """The Pinot store over the broker double (``session``: no socket; not a config field)."""
    return PinotSpeedStore(
        PinotConfig(broker_url="http://pinot-broker:8099", **config),
        session=double.client(),
        erasures=erasures,
    )


def open_pinot(records: list[Record], start_offsets: Starts = None, **config) -> SpeedStore:
    """The Pinot store over the rows Pinot holds after ingesting ``records``. One statement at a time:
    the double answers under a lock, so threads would only add overhead."""
    double = PinotBrokerDouble.from_stream(records, TABLE_BY_TOPIC, start_offsets=start_offsets)
    return pinot_store(double, parallelism=1, **config)


OPENERS: dict[str, Callable[..., SpeedStore]] = {"embedded": open_embedded, "pinot": open_pinot}
STORES = tuple(OPENERS)


@functools.cache
def loaded(kind: str, seed: int) -> SpeedStore:
    """A store of ``kind`` over ``stream(seed)``, shared by the tests that only read (never publish)."""
    return OPENERS[kind](stream(seed))


@functools.cache
def oracle_of(seed: int) -> SpeedOracle:
    return SpeedOracle(stream(seed))


def reads(records: list[Record], w, *, every: int = 1) -> list[Read]:
    """Every read for every key in the stream (every n-th customer), plus keys that have no event."""
    rows = [r[0] for r in records]
    start = min(r["event_time"] for r in rows)
    window = (start + 7 * HOUR + HOUR // 2, start + 31 * HOUR + HOUR // 4)  # not hour-aligned on purpose
    customers = sorted({(r["tenant_id"], r["customer_id"]) for r in rows})[::every] + [
        ("demo-food", "nobody")
    ]
    key = GRAIN_KEYS[Grain.campaign][1]
    campaigns = sorted({(r["tenant_id"], r[key]) for r in rows if r[key] is not None})
    tenants = sorted({r["tenant_id"] for r in rows}) + ["no-such-tenant"]
    out: list[Read] = []
    for i, (tenant, customer) in enumerate(customers):
        out.append(("customer", (tenant, customer, w)))
        out.append(("customer_hours", (tenant, customer, w, *EVERYTHING)))
        if i % 5 == 0:
            out.append(("customer_hours", (tenant, customer, w, *window)))
        out += [("customer_entities", (tenant, customer, e.name, w)) for e in CATALOG.entities]
        out.append(("customer_traits", (tenant, customer, w)))
    for tenant, campaign in campaigns:
        out += [
            ("campaign_hours", (tenant, campaign, w, *EVERYTHING)),
            ("campaign_hours", (tenant, campaign, w, *window)),
        ]
    for tenant in tenants:
        out += [("tenant_entities", (tenant, e.name, w)) for e in CATALOG.entities]
        out.append(("order_months", (tenant, w)))
        out.append(("alias_edges", (tenant, None, w)))
        out.append(("touched_customers", (tenant, w)))
    for i, (tenant, customer) in enumerate(customers):
        if i % 3 == 0:
            out.append(("alias_edges", (tenant, [customer, f"anon-{i}"], w)))
    return out


def erased_customers(records: list[Record]) -> list[tuple[str, str]]:
    """A customer with campaign events and one with orders (their erasure must reach tenant answers)."""
    key = GRAIN_KEYS[Grain.campaign][1]
    with_campaign = next(r[0] for r in records if r[0][key] is not None)
    with_order = next(
        r[0]
        for r in records
        if r[0]["event_type"] == "order_placed" and r[0]["customer_id"] != with_campaign["customer_id"]
    )
    return [
        (with_campaign["tenant_id"], with_campaign["customer_id"]),
        (with_order["tenant_id"], with_order["customer_id"]),
    ]


def typed(x):
    """A comparable form that also tells 1 from 1.0 and a set from a list."""
    if isinstance(x, dict):
        return {typed(k): typed(v) for k, v in x.items()}
    if isinstance(x, set | frozenset):
        return ("set", frozenset(typed(v) for v in x))
    if isinstance(x, list | tuple):
        return (type(x).__name__, tuple(typed(v) for v in x))
    return (type(x).__name__, x)


def assert_answers(store: SpeedStore, oracle: SpeedOracle, todo: list[Read]) -> None:
    """Each read's answer equals the oracle's, value and type."""
    wrong = []
    for method, args in todo:
        want, got = getattr(oracle, method)(*args), getattr(store, method)(*args)
        if typed(want) != typed(got):
            shown = tuple(a for a in args if not isinstance(a, dict))  # the watermark is long
            wrong.append(f"{method}{shown}: oracle {want!r} != store {got!r}")
    assert not wrong, f"{len(wrong)} of {len(todo)} reads differ, e.g.\n" + "\n".join(wrong[:5])
