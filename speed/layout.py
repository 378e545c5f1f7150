"""The embedded speed store's compact state: the bases of one grain as the slots of a flat row.

A row is a list with one slot per base metric, in catalog order (array-of-struct: one small list per key
and cell instead of a dict of metric names, which cost several times more). An empty slot holds ``0``
for a count and ``None`` otherwise; a distinct slot holds its single raw value bare and becomes a set
only at the second distinct value (an exact set, promoted — most cells see one session). String values
of distinct slots are interned, so a session id repeated in many cells is stored once.

Which slots an event updates depends first on its type, so the update plan is resolved once per event
type from the catalog's filters (``compile.python_required``) and each slot's ``aggregates.updater``: per
row only the ``non_null`` checks and the updates of matching bases remain. Reads turn rows back into the
raw states of ``schemas.aggregates`` (:meth:`RowLayout.fold`), merged with ``aggregates.merge``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from lambdalytics.schemas import aggregates
from lambdalytics.schemas.catalog import Aggregate, BaseMetric
from lambdalytics.schemas.compile import python_required

from .store import Partial

__all__ = ["Row", "RowLayout"]

Row = list  # one slot per base of the layout
# (slot, column or None, columns that must be set, update)
Step = tuple[int, str | None, tuple[str, ...], Any]


def _add_distinct(state: Any, value: Any) -> Any:
    """A distinct slot's update: bare for one value, an exact set from the second."""
    if type(value) is str:
        value = sys.intern(value)
    if state is None:
        return value
    if type(state) is set:
        state.add(value)
        return state
    return state if state == value else {state, value}


class RowLayout:
    """The slots of ``bases``; ``view(subset)`` folds only some of them (a series from profile rows)."""

    def __init__(self, bases: Sequence[BaseMetric]):
        self.bases = tuple(bases)
        self.slot = {m.name: i for i, m in enumerate(self.bases)}
        self._distinct = frozenset(
            i for i, m in enumerate(self.bases) if m.aggregate is Aggregate.hll_distinct
        )
        self._empty = [None if i in self._distinct else aggregates.empty(m) for i, m in enumerate(self.bases)]
        self._plans: dict[str, tuple[Step, ...]] = {}

    def new_row(self) -> Row:
        return self._empty.copy()

    def plan(self, event_type: str) -> tuple[Step, ...]:
        """The steps of the bases whose filter admits ``event_type`` (cached: types are few)."""
        steps = self._plans.get(event_type)
        if steps is None:
            steps = self._plans[event_type] = tuple(
                (i, m.column, required, _add_distinct if i in self._distinct else aggregates.updater(m))
                for i, m in enumerate(self.bases)
                if (required := python_required(m.filter, event_type)) is not None
            )
        return steps

    @staticmethod
    def update(row: Row, steps: tuple[Step, ...], event: dict[str, Any]) -> None:
        """Fold one event into ``row`` in place along its type's ``steps``."""
        for i, column, required, add in steps:
            for c in required:
                if event[c] is None:
                    break
            else:
                row[i] = add(row[i], event[column] if column else None)

    def raw(self, slot: int, value: Any) -> Any:
        """A slot's value as its raw state (``schemas.aggregates``): a distinct slot as a fresh set."""
        if slot in self._distinct:
            if value is None:
                return set()
            return set(value) if type(value) is set else {value}
        return value

    def merged(self, a: Row | None, b: Row) -> Row:
        """A new row holding ``a`` ⊕ ``b`` (``a`` None: a copy of ``b``)."""
        out = self.new_row()
        for row in (a, b):
            if row is None:
                continue
            for i, m in enumerate(self.bases):
                value = row[i]
                if value is None:
                    continue
                if i in self._distinct:
                    out[i] = self.raw(i, out[i]) | self.raw(i, value)
                else:
                    out[i] = aggregates.merge(m, out[i], value)
        return out

    def view(self, names: Iterable[str]) -> list[tuple[int, BaseMetric]]:
        """The slots of these bases, for :meth:`fold`."""
        return [(self.slot[n], self.bases[self.slot[n]]) for n in names]

    def fold(self, rows: Iterable[Row], view: list[tuple[int, BaseMetric]] | None = None) -> Partial:
        """The raw states of the merged rows, for the bases of ``view`` (default: every base)."""
        slots = view if view is not None else list(enumerate(self.bases))
        out = {m.name: aggregates.empty(m) for _, m in slots}
        for row in rows:
            for i, m in slots:
                value = row[i]
                if value is None:
                    continue
                if i in self._distinct:
                    states = out[m.name]
                    if type(value) is set:
                        states.update(value)
                    else:
                        states.add(value)
                else:
                    out[m.name] = aggregates.merge(m, out[m.name], value)
        return out
