"""The derived views of an incremental run, from the previous version's and the customers it touched.

A full run derives order months, cohort counts, RFM cut points and segments from every customer
(``batch.tenant_views``, ``batch.segment_views``). After a fold, only some customers changed: those the
new events touched (their keys in the new events' views) and those an alias merged or re-keyed. So:

- **Order months** are recomputed for the touched customers only (from their folded timeseries rows);
  every other row is the previous version's.
- **Cohort counts** count a merged customer once, with its ids' months. The affected ids are the touched
  ones plus every id whose component changed, closed under the previous and the new components (so each
  component touching them lies inside the set). Each previous group of the set is taken out of the
  previous counts with its previous months (``CohortCounts.add(…, -1)``), each new group put in with its
  new months — the correction serving makes for the speed side, here with the batch's own groups. Exact:
  every group outside the set has the same ids and months in both versions. Months only grow across
  folds, so the latest order month does too (what ``CohortCounts`` assumes).
- **RFM cut points** are quantiles over a tenant's customers: recomputed for the tenants of the affected
  ids (in proportion to those tenants' customers, the one cost that follows customers, not events), the
  others kept.
- **Segments** depend on the tenant's cut points (an RFM segment moves when they do), so they are
  recomputed for the same tenants and kept for the others.

Identity components are derived from ``alias_edges`` in full (in proportion to aliases, not events).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from lambdalytics.schemas import identity
from lambdalytics.schemas.cohorts import CohortCounts
from lambdalytics.schemas.views import (
    ALIAS_EDGES,
    COHORT_COUNTS,
    CUSTOMER_KEYS,
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    CUSTOMER_TRAITS,
    IDENTITY_COMPONENTS,
    ORDER_MONTHS,
    RFM_THRESHOLDS,
    SEGMENT_MEMBERS,
    SEGMENT_STATS,
    TENANT_KEYS,
)

from .segment_views import segment_views
from .tenant_views import (
    COHORT_SCHEMA,
    Groups,
    identity_components,
    months_of,
    rfm_thresholds,
    tenant_components,
)

__all__ = ["fold_derived"]

_TENANT = TENANT_KEYS[0]
_TOUCHING = (CUSTOMER_PROFILE, CUSTOMER_TIMESERIES, CUSTOMER_TRAITS)
"""The customer-keyed event views whose new rows mark a customer touched."""


def fold_derived(
    previous: dict[str, pa.Table],
    tables: dict[str, pa.Table],
    added: dict[str, pa.Table],
    step: Callable[[str], Callable[[], None]],
) -> dict[str, pa.Table]:
    """``tables`` (the folded event views) with the derived views added, from ``previous`` (every view
    of the previous version) and ``added`` (the new events' views, before the fold)."""
    done = step("identity components (from alias_edges)")
    old_groups = tenant_components(previous[ALIAS_EDGES.name])
    groups = tenant_components(tables[ALIAS_EDGES.name])
    tables[IDENTITY_COMPONENTS.name] = identity_components(groups)
    touched = _touched(added)
    rekeyed = _rekeyed(old_groups, groups)
    affected = _closure(
        {t: touched.get(t, set()) | rekeyed.get(t, set()) for t in touched.keys() | rekeyed.keys()},
        old_groups,
        groups,
    )
    done()
    done = step(f"order months and cohort counts ({sum(map(len, touched.values())):,} touched customers)")
    months = _fold_months(previous[ORDER_MONTHS.name], tables[CUSTOMER_TIMESERIES.name], touched)
    tables[ORDER_MONTHS.name] = months
    tables[COHORT_COUNTS.name] = _fold_cohorts(
        previous[COHORT_COUNTS.name], previous[ORDER_MONTHS.name], months, affected, old_groups, groups
    )
    done()
    tenants = sorted(t for t, ids in affected.items() if ids)
    done = step(f"RFM cut points and segments ({len(tenants):,} tenants)")
    profile = _of_tenants(tables[CUSTOMER_PROFILE.name], tenants)
    fresh = rfm_thresholds(profile, {t: groups[t] for t in tenants if t in groups})
    tables[RFM_THRESHOLDS.name] = _replace_tenants(previous[RFM_THRESHOLDS.name], fresh, tenants)
    sub = {
        CUSTOMER_PROFILE.name: profile,
        CUSTOMER_TRAITS.name: _of_tenants(tables[CUSTOMER_TRAITS.name], tenants),
        ORDER_MONTHS.name: _of_tenants(months, tenants),
        RFM_THRESHOLDS.name: fresh,
    }
    stats, members = segment_views(sub, {t: groups[t] for t in tenants if t in groups})
    for view, fresh_rows in ((SEGMENT_STATS, stats), (SEGMENT_MEMBERS, members)):  # sorted, as a full run's
        replaced = _replace_tenants(previous[view.name], fresh_rows, tenants)
        tables[view.name] = replaced.sort_by([(k, "ascending") for k in view.keys])
    done()
    return tables


def _touched(added: dict[str, pa.Table]) -> dict[str, set[str]]:
    """Per tenant, the customers with rows among the new events' customer-keyed views."""
    out: dict[str, set[str]] = defaultdict(set)
    for view in _TOUCHING:
        keys = added[view.name].select(list(CUSTOMER_KEYS))
        for tenant, customer in zip(*(keys.column(c).to_pylist() for c in CUSTOMER_KEYS), strict=True):
            out[tenant].add(customer)
    return out


def _rekeyed(old: Groups, new: Groups) -> dict[str, set[str]]:
    """Per tenant, the ids whose component differs between the two versions (an alias merged them, or
    pushed their component over the cap, or moved its canonical id)."""
    out: dict[str, set[str]] = defaultdict(set)
    for tenant in old.keys() | new.keys():
        before, after = old.get(tenant, {}), new.get(tenant, {})
        out[tenant] = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
    return out


def _closure(ids: dict[str, set[str]], old: Groups, new: Groups) -> dict[str, set[str]]:
    """``ids`` with every id of their previous and new components, until no component crosses its edge."""
    out = {}
    for tenant, start in ids.items():
        seen, frontier = set(start), list(start)
        while frontier:
            i = frontier.pop()
            for groups in (old.get(tenant, {}), new.get(tenant, {})):
                comp = groups.get(i)
                for j in comp.ids if comp is not None and comp.refused is None else ():
                    if j not in seen:
                        seen.add(j)
                        frontier.append(j)
        out[tenant] = seen
    return out


def _keys_table(ids: dict[str, set[str]]) -> pa.Table:
    pairs = sorted((t, c) for t, cs in ids.items() for c in cs)
    return pa.table({k: pa.array([p[i] for p in pairs], pa.string()) for i, k in enumerate(CUSTOMER_KEYS)})


def _with_keys(table: pa.Table, keys: pa.Table, *, keep: bool) -> pa.Table:
    """The rows of ``table`` whose customer keys are in ``keys`` (``keep``) or are not (Arrow joins take no
    list columns, so the join runs on the keys and a row number)."""
    numbered = table.select(list(CUSTOMER_KEYS)).append_column(
        "_row", pa.array(range(table.num_rows), pa.int64())
    )
    rows = numbered.join(keys, list(CUSTOMER_KEYS), join_type="left semi" if keep else "left anti")
    return table.take(rows.sort_by("_row").column("_row"))


def _fold_months(previous: pa.Table, timeseries: pa.Table, touched: dict[str, set[str]]) -> pa.Table:
    """``customer_order_months``: the touched customers' rows recomputed, every other row kept."""
    keys = _keys_table(touched)
    kept = _with_keys(previous, keys, keep=False)
    fresh = months_of(timeseries.join(keys, list(CUSTOMER_KEYS), join_type="left semi"))
    return pa.concat_tables([kept.select(fresh.schema.names).cast(fresh.schema), fresh])


def _months_by_id(months: pa.Table, ids: dict[str, set[str]]) -> dict[tuple[str, str], set[int]]:
    rows = _with_keys(months, _keys_table(ids), keep=True)
    columns = [rows.column(c).to_pylist() for c in (*CUSTOMER_KEYS, "months")]
    return {(t, c): set(m) for t, c, m in zip(*columns, strict=True)}


def _fold_cohorts(
    counts: pa.Table,
    old_months: pa.Table,
    new_months: pa.Table,
    affected: dict[str, set[str]],
    old_groups: Groups,
    groups: Groups,
) -> pa.Table:
    """``cohort_counts``: each affected tenant's counts with its affected groups taken out and put back."""
    tenants = sorted(t for t, ids in affected.items() if ids)
    before, after = _months_by_id(old_months, affected), _months_by_id(new_months, affected)
    rows = []
    previous = _of_tenants(counts, tenants)
    by_tenant: dict[str, list] = defaultdict(list)
    for tenant, cohort, size, active in zip(
        *(previous.column(c).to_pylist() for c in COHORT_COUNTS.columns), strict=True
    ):
        by_tenant[tenant].append((cohort, size, active))
    for tenant in tenants:
        table = CohortCounts.from_rows(by_tenant.get(tenant, []))
        for months, grouping, sign in ((before, old_groups, -1), (after, groups, 1)):
            merged: dict[str, set[int]] = defaultdict(set)
            for customer in affected[tenant]:
                merged[identity.group_of(customer, grouping.get(tenant, {}))] |= months.get(
                    (tenant, customer), set()
                )
            for group_months in merged.values():
                table.add(group_months, sign)
        rows += [(tenant, *row) for row in table.rows()]
    fresh = pa.Table.from_pylist(
        [dict(zip(COHORT_SCHEMA.names, r, strict=True)) for r in rows], schema=COHORT_SCHEMA
    )
    return _replace_tenants(counts, fresh, tenants)


def _of_tenants(table: pa.Table, tenants: list[str]) -> pa.Table:
    return table.filter(pc.is_in(table.column(_TENANT), pa.array(tenants, pa.string())))


def _replace_tenants(previous: pa.Table, fresh: pa.Table, tenants: list[str]) -> pa.Table:
    """``previous`` with every row of ``tenants`` replaced by ``fresh`` (the tenants recomputed)."""
    kept = previous.filter(pc.invert(pc.is_in(previous.column(_TENANT), pa.array(tenants, pa.string()))))
    return pa.concat_tables([kept.select(fresh.schema.names).cast(fresh.schema), fresh])
