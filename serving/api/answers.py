"""Tenant-level answers kept encoded between polls (campaign stats, cohorts, live orders, segments):
dashboards ask the same question every few seconds, and a repeat answer is a bytes copy plus its freshness.

An entry is the orjson encoding of an answer without its ``freshness`` (added per request,
``hot.with_freshness``), held in the merger's ``answers`` cache (``serving.answer_cache``): valid for one
batch index and one ``SpeedStore.tenant_version`` of its tenant — which changes whenever one of the
tenant's events is applied, one of its customers is erased or the store's coverage changes. The token is
read *before* the answer is computed, so an event applied meanwhile can only make the entry look older
than it is (recomputed next time), never newer; a store without tokens (Pinot) is never cached. The
speed side's staleness is checked on every request, hits included (503 as for any read). A key is the
tenant, the route and every parameter the answer depends on. An answer that moves with the clock (live
orders) is kept with the interval of times it holds for (``encoded_at``), exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import orjson

from ..state import ServingState

__all__ = ["encoded", "encoded_at"]


def encoded(state: ServingState, tenant: str, key: tuple[Hashable, ...], answer: Callable[[], Any]) -> bytes:
    """The encoded answer for ``(tenant, *key)``: cached, or ``answer()`` encoded (and kept)."""
    return _cached(state, tenant, key, None, lambda: (answer(), None))


def encoded_at(
    state: ServingState,
    tenant: str,
    key: tuple[Hashable, ...],
    now_ms: int,
    answer: Callable[[], tuple[Any, int]],
) -> bytes:
    """The same for an answer that moves with the clock: ``answer()`` gives it at ``now_ms`` and the
    time it may change (``Merger.live_orders_until``); an entry serves a now in [computed at, until)."""
    return _cached(state, tenant, key, now_ms, answer)


def _cached(state, tenant, key, now_ms, answer) -> bytes:
    merger = state.merger
    merger.check_live()
    index = state.loader.current()
    version = state.speed.tenant_version(tenant)  # before computing
    full_key = (tenant, *key)
    if version is not None:
        found = merger.answers.get(index, full_key, version)
        if found is not None and (now_ms is None or found[0] <= now_ms < found[1]):
            return found[2]
    body, until = answer()
    encoded = orjson.dumps(body)
    if version is not None and (until is None or now_ms < until):
        merger.answers.put(index, full_key, version, (now_ms, until, encoded))
    return encoded
