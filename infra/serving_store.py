"""A batch view version as one read-only, memory-mapped LMDB file: the serving store (ARCHITECTURE §9).

Delta stays the system of record; this file is derived from one view version's tables and can be
rebuilt from them at any time (:func:`build`). The batch job writes it beside the version it publishes,
the serving loader builds it when it is missing. Every API worker opens the same file read-only and
lock-free (:class:`ServingStore`): the pages live once in the OS page cache whatever the number of
workers, and opening costs the same for 10 or 10 M customers, so the loader's swap stays O(1).

Layout: one named LMDB database per view (``customer_profile``, ``customer_timeseries`` …), keys
tenant first and order-preserving (strings escaped and terminated, integers big-endian with the sign
flipped), so a customer's hours or a campaign's hours are one contiguous range, values msgpack arrays
of the view's value columns in contract order (``schemas.views``). Two databases serve what the views
hold only by history:

- ``<entity>_window``: per tenant and time, the entities whose windowed milestone (an order's
  ``placed``/``delivered``) falls at or after :attr:`ServingStore.horizon` — ``min(build time, newest
  milestone) - LIVE_WINDOW_CAP_MS`` — so a live-orders read scans only its window. A window starting
  before the horizon cannot be served from it (:meth:`ServingStore.entities_in_window` says None).
- ``cohort_counts`` per tenant as one value (the table is cohorts × months, whatever the history).
- ``alias_edges`` per (tenant, id): every alias edge naming the id, under both of its ids, so a read
  walks a customer's identity component edge by edge (``schemas.identity.component_of``).

A file is complete before anyone opens it: written to a temporary name, synced, renamed.
"""

from __future__ import annotations

import gc
import os
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import lmdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lambdalytics.schemas.catalog import CATALOG, Grain
from lambdalytics.schemas.cohorts import CohortCounts
from lambdalytics.schemas.identity import Alias
from lambdalytics.schemas.registered import REGISTERED_PROFILE, REGISTERED_TIMESERIES, registered_view
from lambdalytics.schemas.views import (
    ALIAS_EDGES,
    CAMPAIGN_STATS,
    COHORT_COUNTS,
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    CUSTOMER_TRAITS,
    ENTITY_STATES,
    LIVE_WINDOW_CAP_MS,
    ORDER_MONTHS,
    RFM_CUTS,
    RFM_THRESHOLDS,
    SEGMENT_MEMBERS,
    SEGMENT_STATS,
    View,
)

__all__ = [
    "FORMAT",
    "ServingStore",
    "StoreBroken",
    "build",
    "remove_below",
    "store_dir",
    "store_path",
    "windowed_milestones",
]

FORMAT = 3
"""Layout version, stored in the file: a file of another layout is rebuilt, never misread."""

_MAP_SIZE = 1 << 40  # address space only: written with writemap=False, the file holds the used pages
_MAX_DBS = 16
_META = b"meta"
_WINDOW = "{}_window"
_INT = struct.Struct(">Q")
_SIGN = 1 << 63

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class StoreBroken(RuntimeError):
    """A store file that cannot be opened as this layout (another format, truncated, not LMDB)."""


def store_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "serving_store"


def store_path(data_dir: Path, batch_version: int) -> Path:
    """Where the serving store of one batch version lives (one file per version)."""
    return store_dir(data_dir) / f"v{batch_version:010d}.lmdb"


def remove_below(data_dir: Path, batch_version: int) -> list[int]:
    """Delete the store files of every version older than ``batch_version`` (after a swap, and by
    retention); returns the versions removed. A newer file (built by a batch run about to publish it)
    stays. Workers still reading a removed file keep their map: POSIX frees it when the last one closes.
    """
    removed = []
    for path in store_dir(data_dir).glob("v*.lmdb"):
        try:
            version = int(path.stem[1:])
        except ValueError:
            continue
        if version < batch_version:
            path.unlink(missing_ok=True)
            removed.append(version)
    return sorted(removed)


def windowed_milestones() -> dict[str, tuple[str, ...]]:
    """Per entity, the milestones its tenant-grain windowed metrics window on (order: placed, delivered)."""
    out = {}
    for entity, metrics in CATALOG.entity_metrics(Grain.tenant).items():
        if metrics and all(m.windowed for m in metrics):
            out[entity] = tuple(sorted({m.window_on for m in metrics}))
    return out


# ---------------------------------------------------------------------------------------------- keys


def _s(value: str) -> bytes:
    """An order-preserving, self-delimiting string: NUL escaped as 00 FF, terminated by 00 00."""
    return value.encode().replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _i(value: int) -> bytes:
    return _INT.pack(value + _SIGN)


def _parts(key: bytes, n: int) -> list[str]:
    """The first ``n`` strings of a key made with :func:`_s`."""
    out, at = [], 0
    for _ in range(n):
        end = at
        while True:
            end = key.index(b"\x00", end)
            if key[end + 1] == 0:
                break
            end += 2
        out.append(key[at:end].replace(b"\x00\xff", b"\x00").decode())
        at = end + 2
    return out


# ---------------------------------------------------------------------------------------------- build


# Whole columns are keyed and sorted by Arrow (C++), then encoded and appended in chunks of _CHUNK rows:
# Python touches each row once (its msgpack value) and memory stays bounded by a chunk plus the keys.
_CHUNK = 1 << 16
_END = pa.scalar(b"\x00\x00", pa.large_binary())
_NOTHING = pa.scalar(b"", pa.large_binary())


def _key_column(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    if column.null_count:
        raise ValueError(f"serving store: key column {name!r} holds {column.null_count:,} nulls")
    return column


def _s_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """:func:`_s` over a whole column."""
    binary = pc.cast(_key_column(table.column(name), name), pa.large_binary())
    escaped = pc.replace_substring(binary, b"\x00", b"\x00\xff")
    return pc.binary_join_element_wise(escaped, _END, _NOTHING)


def _i_column(table: pa.Table, name: str) -> pa.Array:
    """:func:`_i` over a whole integer column (big-endian, sign flipped: byte order is number order)."""
    ints = pc.cast(_key_column(table.column(name), name), pa.int64()).to_numpy()
    raw = (ints.view(np.uint64) ^ np.uint64(_SIGN)).astype(">u8")
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(8), len(raw), [None, pa.py_buffer(raw.tobytes())])
    return pc.cast(fixed, pa.large_binary())


def _keys(table: pa.Table, parts: Iterable[tuple[str, str]]) -> pa.ChunkedArray:
    """One key per row: the (kind, column) parts joined, ``s`` a string, ``i`` an integer."""
    columns = [_s_column(table, c) if kind == "s" else _i_column(table, c) for kind, c in parts]
    return pc.binary_join_element_wise(*columns, _NOTHING)


def _sorted_chunks(
    keys: pa.ChunkedArray, values: list[pa.ChunkedArray]
) -> Iterator[Iterable[tuple[bytes, bytes]]]:
    """(key, msgpack of the values) in key order, ``_CHUNK`` rows at a time (LMDB appends sorted keys);
    rows are taken chunk by chunk, so no sorted copy of the view is ever whole in memory."""
    order = pc.sort_indices(keys)
    for at in range(0, len(order), _CHUNK):
        rows = order.slice(at, _CHUNK)
        cols = [v.take(rows).to_pylist() for v in values]
        yield zip(keys.take(rows).to_pylist(), map(_encode, zip(*cols, strict=True)), strict=True)


def _view_chunks(table: pa.Table, view: View, kinds: str) -> Iterator[Iterable[tuple[bytes, bytes]]]:
    keys = _keys(table, zip(kinds, view.keys, strict=True))
    return _sorted_chunks(keys, [table.column(c) for c in view.values])


def _window_chunks(table: pa.Table, view: View, on: tuple[str, ...], now_ms: int):
    """Entities keyed by (tenant, time of each windowed milestone at or after the horizon) — a milestone
    at the same time as an earlier one adds no second key — and the horizon."""
    times = {name: pc.cast(table.column(name), pa.int64()) for name in on}
    newest = [m for t in times.values() if (m := pc.max(t).as_py()) is not None]
    horizon = min(now_ms, max(newest, default=now_ms)) - LIVE_WINDOW_CAP_MS
    tenant, customer, entity_id = view.keys
    keys, values = [], []
    for j, name in enumerate(on):
        keep = pc.fill_null(pc.greater_equal(times[name], horizon), False)
        for earlier in on[:j]:
            keep = pc.and_(keep, pc.fill_null(pc.not_equal(times[name], times[earlier]), True))
        rows = table.filter(keep)
        keys.append(_keys(rows, (("s", tenant), ("i", name), ("s", customer), ("s", entity_id))))
        values.append([rows.column(c) for c in (customer, entity_id, *view.values)])
    if not keys:
        return iter(()), horizon
    merged = [
        pa.chunked_array([c for k in values for c in k[i].chunks], values[0][i].type)
        for i in range(len(values[0]))
    ]
    return _sorted_chunks(
        pa.chunked_array([c for k in keys for c in k.chunks], pa.large_binary()), merged
    ), horizon


def _cohort_rows(table: pa.Table) -> list[tuple[bytes, bytes]]:
    per_tenant: dict[str, list] = {}
    columns = [table.column(c).to_pylist() for c in COHORT_COUNTS.columns]
    for tenant, cohort, size, active in zip(*columns, strict=True):
        per_tenant.setdefault(tenant, []).append([cohort, size, active])
    return sorted((_s(t), _encode(rows)) for t, rows in per_tenant.items())


def _put(env: lmdb.Environment, name: str, chunks: Iterable[Iterable[tuple[bytes, bytes]]]) -> None:
    """Append each sorted chunk in its own write transaction (the file is renamed into place only once
    complete, so a partial file is never read; small transactions keep LMDB's dirty pages bounded)."""
    db = env.open_db(name.encode())
    for chunk in chunks:
        with env.begin(write=True, db=db) as txn:
            consumed, added = txn.cursor().putmulti(chunk, append=True)
        if added != consumed:
            raise ValueError(f"serving store: {name} holds {consumed - added:,} duplicate keys")


def _alias_rows(table: pa.Table) -> list[tuple[bytes, bytes]]:
    """Each edge under both of its ids: (tenant, id) → [[previous, survivor, time, event id], …]."""
    per_id: dict[bytes, list] = {}
    columns = [table.column(c).to_pylist() for c in ALIAS_EDGES.columns]
    for tenant, survivor, previous, at, event_id in zip(*columns, strict=True):
        edge = [previous, survivor, at, event_id]
        for customer in (previous, survivor):
            per_id.setdefault(_s(tenant) + _s(customer), []).append(edge)
    return sorted((k, _encode(v)) for k, v in per_id.items())


def build(path: Path, tables: Mapping[str, pa.Table], *, now_ms: int | None = None) -> Path:
    """Write the serving store of one view version (view name → table) to ``path``, atomically.

    ``now_ms`` (default: the clock) places the live-orders horizon; a later read never has an earlier
    clock, so every window the API accepts lies above it.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    try:
        env = lmdb.open(
            tmp, subdir=False, map_size=_MAP_SIZE, max_dbs=_MAX_DBS, lock=False, writemap=False, sync=False
        )
        collecting = gc.isenabled()
        gc.disable()  # millions of short-lived keys and values, no cycles: collections would only cost
        try:
            horizons, registered = _write_views(env, tables, now_ms)
            meta = {"format": FORMAT, "built_ms": now_ms, "horizons": horizons, "registered": registered}
            with env.begin(write=True, db=env.open_db(_META)) as txn:
                txn.put(b"meta", _encode(meta))
            env.sync(True)
        finally:
            if collecting:
                gc.enable()
            env.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def _write_views(
    env: lmdb.Environment, tables: Mapping[str, pa.Table], now_ms: int
) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
    """Every database of the layout; returns the live-window horizons per entity and the value columns
    of each registered view held (those of its table: what was backfilled)."""
    for view, kinds in (
        (CUSTOMER_PROFILE, "ss"),
        (CUSTOMER_TIMESERIES, "ssi"),
        (CAMPAIGN_STATS, "ssi"),
        (ORDER_MONTHS, "ss"),
        (RFM_THRESHOLDS, "s"),
        (CUSTOMER_TRAITS, "sss"),
        (SEGMENT_STATS, "sss"),
    ):
        _put(env, view.name, _view_chunks(tables[view.name], view, kinds))
    members = tables[SEGMENT_MEMBERS.name]  # keys only: the customer doubles as the (unread) value
    keys = _keys(members, [("s", c) for c in SEGMENT_MEMBERS.keys])
    _put(env, SEGMENT_MEMBERS.name, _sorted_chunks(keys, [members.column(SEGMENT_MEMBERS.keys[-1])]))
    _put(env, COHORT_COUNTS.name, [_cohort_rows(tables[COHORT_COUNTS.name])])
    _put(env, ALIAS_EDGES.name, [_alias_rows(tables[ALIAS_EDGES.name])])
    horizons = {}
    for name, view in ENTITY_STATES.items():
        _put(env, view.name, _view_chunks(tables[view.name], view, "sss"))
        if on := windowed_milestones().get(name):
            chunks, horizons[name] = _window_chunks(tables[view.name], view, on, now_ms)
            _put(env, _WINDOW.format(name), chunks)
    registered = {}
    for name, kinds in ((REGISTERED_PROFILE, "ss"), (REGISTERED_TIMESERIES, "ssi")):
        if name in tables:
            keys = registered_view(name, ()).keys
            view = registered_view(name, [c for c in tables[name].schema.names if c not in keys])
            _put(env, name, _view_chunks(tables[name], view, kinds))
            registered[name] = view.values
    return horizons, registered


# ---------------------------------------------------------------------------------------------- read


class ServingStore:
    """One version's store, opened read-only and memory-mapped; every read names the tenant.

    Open it with :meth:`open`: LMDB allows one open environment per file and process, so a file already
    open here (the same inode) is shared, not opened twice.
    """

    _open: weakref.WeakValueDictionary[tuple[int, int], ServingStore] = weakref.WeakValueDictionary()
    _opening = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> ServingStore:
        with cls._opening:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise StoreBroken(f"{path}: cannot open ({exc})") from exc
            key = (st.st_dev, st.st_ino)
            store = cls._open.get(key)
            if store is None:
                store = cls._open[key] = cls(path)
            return store

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._env = lmdb.open(
                str(self.path), subdir=False, readonly=True, lock=False, max_dbs=_MAX_DBS, readahead=False
            )
            self._dbs = {
                name: self._env.open_db(name.encode(), create=False)
                for name in (
                    CUSTOMER_PROFILE.name,
                    CUSTOMER_TIMESERIES.name,
                    CAMPAIGN_STATS.name,
                    ORDER_MONTHS.name,
                    COHORT_COUNTS.name,
                    RFM_THRESHOLDS.name,
                    ALIAS_EDGES.name,
                    CUSTOMER_TRAITS.name,
                    SEGMENT_STATS.name,
                    SEGMENT_MEMBERS.name,
                    *(v.name for v in ENTITY_STATES.values()),
                    *(_WINDOW.format(e) for e in windowed_milestones()),
                )
            }
            with self._env.begin(db=self._env.open_db(_META, create=False)) as txn:
                meta = _decode(txn.get(b"meta"))
        except (lmdb.Error, msgspec.DecodeError, TypeError) as exc:
            raise StoreBroken(f"{self.path}: not a serving store ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise StoreBroken(f"{self.path}: layout {meta.get('format')}, expected {FORMAT}")
        self.horizons: dict[str, int] = meta["horizons"]
        self.registered: dict[str, View] = {
            name: registered_view(name, values) for name, values in meta.get("registered", {}).items()
        }
        """The registered views this version holds, with the metrics backfilled into them."""
        for name in self.registered:
            self._dbs[name] = self._env.open_db(name.encode(), create=False)

    def close(self) -> None:
        self._env.close()

    def used_bytes(self) -> int:
        """Pages in use: what every worker shares through the page cache."""
        return (self._env.info()["last_pgno"] + 1) * self._env.stat()["psize"]

    def _get(self, db: str, key: bytes) -> Any | None:
        with self._env.begin(db=self._dbs[db], buffers=True) as txn:
            raw = txn.get(key)
            return None if raw is None else _decode(raw)

    def _scan(self, db: str, start: bytes, stop: bytes) -> Iterator[tuple[bytes, Any]]:
        """Keys in [start, stop) with their decoded values (materialised inside one read transaction)."""
        with self._env.begin(db=self._dbs[db]) as txn:
            cursor = txn.cursor()
            out = []
            if cursor.set_range(start):
                for key, raw in cursor:
                    if key >= stop:
                        break
                    out.append((key, _decode(raw)))
        return iter(out)

    def _prefix(self, db: str, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        return self._scan(db, prefix, prefix[:-1] + b"\x01")  # past every key below this prefix

    # -------------------------------------------------------------------- customers

    def profile(self, tenant: str, customer: str) -> dict[str, Any] | None:
        values = self._get(CUSTOMER_PROFILE.name, _s(tenant) + _s(customer))
        if values is None:
            return None
        out = dict(zip(CUSTOMER_PROFILE.values, values, strict=True))
        if view := self.registered.get(REGISTERED_PROFILE):  # one more lookup, only with registered metrics
            extra = self._get(view.name, _s(tenant) + _s(customer))
            out.update(zip(view.values, extra or (), strict=bool(extra)))
        return out

    def customer_traits(self, tenant: str, customers: Iterable[str]) -> dict[str, dict[str, tuple]]:
        """The batch latest-trait states ``{trait: (event_time, offset, value)}`` of these customers."""
        t = _s(tenant)
        out: dict[str, dict[str, tuple]] = {}
        with self._env.begin(db=self._dbs[CUSTOMER_TRAITS.name]) as txn:
            cursor = txn.cursor()
            for customer in customers:
                prefix = t + _s(customer)
                if cursor.set_range(prefix):
                    for key, raw in cursor:
                        if not key.startswith(prefix):
                            break
                        out.setdefault(customer, {})[_parts(key, 3)[2]] = tuple(_decode(raw))
        return out

    def segments(self, tenant: str, by: str) -> dict[str, dict[str, Any]]:
        """Segment value → ``{"customers", <segment base>…}`` of one segmentation (its segments only)."""
        prefix = _s(tenant) + _s(by)
        return {
            _parts(key, 3)[2]: dict(zip(SEGMENT_STATS.values, values, strict=True))
            for key, values in self._prefix(SEGMENT_STATS.name, prefix)
        }

    def segment_members(
        self, tenant: str, by: str, segment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Customers of one batch segment in id order, from just after ``after``, at most ``limit``."""
        prefix = _s(tenant) + _s(by) + _s(segment)
        out: list[str] = []
        with self._env.begin(db=self._dbs[SEGMENT_MEMBERS.name]) as txn:
            cursor = txn.cursor()
            start = prefix if after is None else prefix + _s(after) + b"\x00"
            if cursor.set_range(start):
                for key in cursor.iternext(values=False):
                    if not key.startswith(prefix) or (limit is not None and len(out) >= limit):
                        break
                    out.append(_parts(key, 4)[3])
        return out

    def customers(self) -> Iterator[tuple[str, str]]:
        """Every (tenant, customer) with a profile, in key order (reports and benchmarks; never a request)."""
        with self._env.begin(db=self._dbs[CUSTOMER_PROFILE.name]) as txn:
            for key in txn.cursor().iternext(values=False):
                yield tuple(_parts(key, 2))

    def customer_hours(self, tenant: str, customer: str, start_ms: int, end_ms: int) -> dict[int, dict]:
        prefix = _s(tenant) + _s(customer)
        hours = self._hours(CUSTOMER_TIMESERIES, prefix, start_ms, end_ms)
        if view := self.registered.get(REGISTERED_TIMESERIES):
            for hour, values in self._hours(view, prefix, start_ms, end_ms).items():
                hours.setdefault(hour, {}).update(values)
        return hours

    def campaign_hours(self, tenant: str, campaign: str, start_ms: int, end_ms: int) -> dict[int, dict]:
        return self._hours(CAMPAIGN_STATS, _s(tenant) + _s(campaign), start_ms, end_ms)

    def has_campaign(self, tenant: str, campaign: str) -> bool:
        prefix = _s(tenant) + _s(campaign)
        with self._env.begin(db=self._dbs[CAMPAIGN_STATS.name], buffers=True) as txn:
            cursor = txn.cursor()
            return cursor.set_range(prefix) and bytes(cursor.key()[: len(prefix)]) == prefix

    def _hours(self, view: View, prefix: bytes, start_ms: int, end_ms: int) -> dict[int, dict]:
        names = view.values
        n = len(prefix)
        return {
            _INT.unpack(key[n:])[0] - _SIGN: dict(zip(names, values, strict=True))
            for key, values in self._scan(view.name, prefix + _i(start_ms), prefix + _i(end_ms))
        }

    def customer_entities(self, entity: str, tenant: str, customer: str) -> dict[str, dict]:
        view = ENTITY_STATES[entity]
        prefix = _s(tenant) + _s(customer)
        return {
            _parts(key, 3)[2]: dict(zip(view.values, values, strict=True))
            for key, values in self._prefix(view.name, prefix)
        }

    def entity_state(self, entity: str, tenant: str, customer: str, entity_id: str) -> dict | None:
        view = ENTITY_STATES[entity]
        values = self._get(view.name, _s(tenant) + _s(customer) + _s(entity_id))
        return None if values is None else dict(zip(view.values, values, strict=True))

    def entity_states(
        self, entity: str, tenant: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], dict]:
        """The states of these (customer, id) entities that the batch holds, in one read transaction."""
        view = ENTITY_STATES[entity]
        t = _s(tenant)
        out = {}
        with self._env.begin(db=self._dbs[view.name], buffers=True) as txn:
            for customer, entity_id in keys:
                raw = txn.get(t + _s(customer) + _s(entity_id))
                if raw is not None:
                    out[(customer, entity_id)] = dict(zip(view.values, _decode(raw), strict=True))
        return out

    def order_months_of(self, tenant: str, customers: Iterable[str]) -> dict[str, frozenset[int]]:
        """The batch order months of these customers (those who ordered), in one read transaction."""
        t = _s(tenant)
        out = {}
        with self._env.begin(db=self._dbs[ORDER_MONTHS.name], buffers=True) as txn:
            for customer in customers:
                raw = txn.get(t + _s(customer))
                if raw is not None:
                    out[customer] = frozenset(_decode(raw)[-1])
        return out

    def alias_edges(self, tenant: str, customers: Iterable[str]) -> set[Alias]:
        """Every alias edge below W naming one of these ids, in one read transaction."""
        t = _s(tenant)
        out = set()
        with self._env.begin(db=self._dbs[ALIAS_EDGES.name], buffers=True) as txn:
            for customer in customers:
                raw = txn.get(t + _s(customer))
                if raw is not None:
                    out |= {
                        Alias(at, event_id, previous, survivor)
                        for previous, survivor, at, event_id in _decode(raw)
                    }
        return out

    # -------------------------------------------------------------------- tenants

    def tenant_entities(self, entity: str, tenant: str) -> dict[tuple[str, str], dict]:
        """Every entity of the tenant: what a window reaching below the horizon has to read."""
        view = ENTITY_STATES[entity]
        return {
            tuple(_parts(key, 3)[1:]): dict(zip(view.values, values, strict=True))
            for key, values in self._prefix(view.name, _s(tenant))
        }

    def entities_in_window(
        self, entity: str, tenant: str, start_ms: int, end_ms: int
    ) -> dict[tuple[str, str], dict] | None:
        """Entities with a windowed milestone in [start_ms, end_ms]; None when the window starts below
        the horizon (or the entity has no window index), so only :meth:`tenant_entities` can answer."""
        horizon = self.horizons.get(entity)
        if horizon is None or start_ms < horizon:
            return None
        names = ENTITY_STATES[entity].values
        t = _s(tenant)
        return {
            (c, e): dict(zip(names, state, strict=True))
            for _, (c, e, *state) in self._scan(_WINDOW.format(entity), t + _i(start_ms), t + _i(end_ms + 1))
        }

    def order_months(self, tenant: str, customer: str) -> frozenset[int]:
        values = self._get(ORDER_MONTHS.name, _s(tenant) + _s(customer))
        return frozenset(values[-1]) if values else frozenset()

    def cohorts(self, tenant: str) -> CohortCounts:
        """A fresh table the caller may correct (decoded per call: cohorts × months, not customers)."""
        rows = self._get(COHORT_COUNTS.name, _s(tenant))
        return CohortCounts.from_rows(rows or ())

    def rfm_cuts(self, tenant: str) -> dict[str, list[float]] | None:
        values = self._get(RFM_THRESHOLDS.name, _s(tenant))
        if values is None:
            return None
        row = dict(zip(RFM_THRESHOLDS.values, values, strict=True))
        return {d: row[column] for d, column in RFM_CUTS.items()}
