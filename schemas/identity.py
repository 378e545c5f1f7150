"""Customer identity merges: alias edges, the connected components they form, a component's canonical id.

An ``alias`` event (``customer_id`` survives, ``previous_id`` is merged into it) is an undirected edge
between two ids of one tenant. Every answer about an id is the answer about its whole **component** (the
ids connected by alias edges): per-customer aggregates are mergeable, so the component's answer is the
merge of its ids' aggregates, exactly, whichever side of the batch cut each event or alias lies on.

Definitions, used by batch (the ``identity_components`` view), serving (reads) and the tests' oracle:

- **Order of aliases**: by ``(event_time, event_id)`` — a function of the deduplicated events, never of
  offsets or of the cut, so batch and speed agree on it and a late alias sorts by when it happened.
- **Canonical id**: the survivor (``customer_id``) of the component's latest alias. A chain a→b, b→c has
  canonical c; two components joined by x→y have canonical y when that alias is the latest; a late
  alias that sorts before the latest one does not change it.
- **Cap**: a component of more than :data:`MAX_COMPONENT_IDS` ids is *refused* — not merged: each of
  its ids answers alone (its own events only) and reads say why. Refusing the whole component (rather
  than the alias that crossed the cap) keeps the answer a function of the set of aliases, independent of
  the order they arrive in. Components only grow, so a refused component stays refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["MAX_COMPONENT_IDS", "Alias", "Component", "component_of", "components", "group_of"]

MAX_COMPONENT_IDS = 64
"""The most ids one merged customer may have; larger components are refused (see module docstring)."""


@dataclass(frozen=True, order=True)
class Alias:
    """One alias edge; ordered by ``(event_time, event_id)``, the alias order."""

    event_time: int
    event_id: str
    previous_id: str
    customer_id: str  # the survivor

    @property
    def ids(self) -> tuple[str, str]:
        return self.previous_id, self.customer_id


@dataclass(frozen=True)
class Component:
    """The merged customer an id belongs to. ``ids`` are sorted; a lone or refused id is ``(id,)``."""

    ids: tuple[str, ...]
    canonical: str
    refused: str | None = None  # why the component is not merged (over the cap), or None

    @property
    def merged(self) -> bool:
        return len(self.ids) > 1


EdgesOf = Callable[[Iterable[str]], Iterable[Alias]]
"""Given ids, every alias edge touching any of them (both sides of the cut, for serving)."""


def component_of(customer: str, edges_of: EdgesOf, *, cap: int | None = None) -> Component:
    """The component of ``customer``: a breadth-first walk over alias edges, asking ``edges_of`` once
    per layer, that stops as soon as the component is over ``cap`` (so a read costs at most the cap)."""
    cap = MAX_COMPONENT_IDS if cap is None else cap
    seen, frontier, edges = {customer}, {customer}, set()
    while frontier:
        found = set(edges_of(sorted(frontier)))
        edges |= found
        frontier = {i for e in found for i in e.ids} - seen
        seen |= frontier
        if len(seen) > cap:
            return Component((customer,), customer, refused=_refusal(cap))
    if not edges:
        return Component((customer,), customer)
    return Component(tuple(sorted(seen)), max(edges).customer_id)


def components(edges: Iterable[Alias], *, cap: int | None = None) -> dict[str, Component]:
    """Every id an edge names → its component (the batch side: all of a tenant's edges at once)."""
    cap = MAX_COMPONENT_IDS if cap is None else cap
    by_id: dict[str, list[Alias]] = {}
    for edge in edges:
        for i in edge.ids:
            by_id.setdefault(i, []).append(edge)
    out: dict[str, Component] = {}
    for start in sorted(by_id):
        if start in out:
            continue
        seen, stack, held = {start}, [start], set()
        while stack:
            for edge in by_id[stack.pop()]:
                held.add(edge)
                for i in edge.ids:
                    if i not in seen:
                        seen.add(i)
                        stack.append(i)
        if len(seen) > cap:
            out |= {i: Component((i,), i, refused=_refusal(cap)) for i in seen}
        else:
            comp = Component(tuple(sorted(seen)), max(held).customer_id)
            out |= dict.fromkeys(seen, comp)
    return out


def group_of(customer: str, by_id: Mapping[str, Component]) -> str:
    """The id a tenant-level analysis (cohorts, RFM) counts ``customer`` as: its component's canonical
    id, or itself when it has no alias or its component is refused."""
    comp = by_id.get(customer)
    return customer if comp is None else comp.canonical


def _refusal(cap: int) -> str:
    return f"identity component over the cap of {cap} ids: not merged, each id answers alone"
