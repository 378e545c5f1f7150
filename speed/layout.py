"""The embedded speed store's compact state: the bases of one grain as the slots of a flat row.

A row is a short list (array-of-struct: one list per key and cell instead of a dict of metric names,
which costs several times more) holding only the slots its events touched: ``row[0]`` names its
*shape*, the interned tuple of base indices present, and ``row[1:]`` their values in that order. A
cell lies in one block of one topic, so its events are of a few types and its row of a few slots (a
behavioural cell: events, first/last seen, sessions, page views). An absent slot is empty; a present
one holds ``0`` for a count and ``None`` otherwise until a matching event. A distinct slot holds its
single raw value bare and becomes a set only at the second distinct value (an exact set, promoted —
most cells see one session); its string values are interned, so a session id repeated in many cells is
stored once.

Which slots an event updates depends first on its type, so the update plan is resolved once per (shape,
event type) from the catalog's filters (``compile.python_required``) and each slot's
``aggregates.updater``, and rendered as one small Python function (:func:`_render`: the plan's
``non_null`` checks written out, each update a call of the slot's updater — no loop over the plan, no
dispatch on kinds per event): per event only those checks and updates remain, plus a copy into a wider
shape the first time a type reaches a row. Reads turn rows back into the raw
states of ``schemas.aggregates`` (:meth:`RowLayout.fold`), merged with ``aggregates.merge``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lambdalytics.schemas import aggregates
from lambdalytics.schemas.catalog import Aggregate, BaseMetric
from lambdalytics.schemas.compile import python_required

from .store import Partial

__all__ = ["Row", "RowLayout"]

Row = list  # [shape id, value per slot of the shape]
# (position in the row, column or None, columns that must be set, update)
Step = tuple[int, str | None, tuple[str, ...], Any]
Moves = tuple[tuple[int, int], ...] | None  # (old position, new position) into a wider shape
Apply = Callable[[Row | None, dict[str, Any]], Row]  # a rendered plan: (row or None, event) -> row


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
    """The slots of ``bases``; :meth:`fold` can fold only some of them (a series from profile rows)."""

    def __init__(self, bases: Sequence[BaseMetric]):
        self.bases = tuple(bases)
        self.slot = {m.name: i for i, m in enumerate(self.bases)}
        self._distinct = frozenset(
            i for i, m in enumerate(self.bases) if m.aggregate is Aggregate.hll_distinct
        )
        self._shapes: list[tuple[int, ...]] = []  # shape id -> base indices present, ascending
        self._shape_ids: dict[tuple[int, ...], int] = {}
        self._blanks: list[Row] = []  # shape id -> a row of empty values
        self._positions: list[dict[int, int]] = []  # shape id -> base index -> position in the row
        # event type -> shape -> rendered plan, each rendered on first use: ``plans[event_type][shape]``
        self.plans: dict[str, dict[int, Apply]] = _Missing(
            lambda event_type: _Missing(lambda shape: self._plan(shape, event_type))
        )
        self._shape(())

    def _shape(self, slots: tuple[int, ...]) -> int:
        shape = self._shape_ids.get(slots)
        if shape is None:
            shape = self._shape_ids[slots] = len(self._shapes)
            self._shapes.append(slots)
            self._blanks.append(
                [shape, *(None if i in self._distinct else aggregates.empty(self.bases[i]) for i in slots)]
            )
            self._positions.append({i: pos for pos, i in enumerate(slots, 1)})
        return shape

    def _plan(self, shape: int, event_type: str) -> Apply:
        """The shape a row of ``shape`` takes with an event of ``event_type``, and the steps that apply it,
        rendered as one function."""
        matching = [
            (i, m, required)
            for i, m in enumerate(self.bases)
            if (required := python_required(m.filter, event_type)) is not None
        ]
        slots = self._shapes[shape]
        target = self._shape(tuple(sorted(set(slots) | {i for i, _, _ in matching})))
        positions = self._positions[target]
        moves = None if target == shape else tuple((pos, positions[i]) for pos, i in enumerate(slots, 1))
        steps = tuple(
            (
                positions[i],
                m.column,
                required,
                _add_distinct if i in self._distinct else aggregates.updater(m),
            )
            for i, m, required in matching
        )
        return _render(self._blanks[target], moves, steps)

    def apply(self, row: Row | None, event: dict[str, Any]) -> Row:
        """Fold one event into ``row`` (None: a new row); returns the row, a new list if it grew. A hot
        loop looks ``plans[event_type]`` up once per event instead, and calls it per row."""
        return self.plans[event["event_type"]][0 if row is None else row[0]](row, event)

    def value(self, row: Row, name: str) -> Any:
        """One base's raw state in ``row`` (``schemas.aggregates``; a distinct one as a fresh set)."""
        i = self.slot[name]
        pos = self._positions[row[0]].get(i)
        value = row[pos] if pos is not None else None
        if i in self._distinct:
            if value is None:
                return set()
            return set(value) if type(value) is set else {value}
        return value if pos is not None else aggregates.empty(self.bases[i])

    def fold(self, rows: Iterable[Row], names: frozenset[str] | None = None) -> Partial:
        """The raw states of the merged rows, for the bases named (default: every base)."""
        out = {m.name: aggregates.empty(m) for m in self.bases if names is None or m.name in names}
        bases, distinct, shapes = self.bases, self._distinct, self._shapes
        for row in rows:
            for pos, i in enumerate(shapes[row[0]], 1):
                value = row[pos]
                if value is None:
                    continue
                m = bases[i]
                if m.name not in out:
                    continue
                if i in distinct:
                    states = out[m.name]
                    if type(value) is set:
                        states.update(value)
                    else:
                        states.add(value)
                else:
                    out[m.name] = aggregates.merge(m, out[m.name], value)
        return out

    def merged(self, rows: Iterable[Row]) -> Row:
        """One row holding the fold of ``rows``, with every slot."""
        partial = self.fold(rows)
        full = self._shape(tuple(range(len(self.bases))))
        row = self._blanks[full].copy()
        for pos, m in enumerate(self.bases, 1):
            state = partial[m.name]
            if pos - 1 in self._distinct:
                row[pos] = state or None  # an exact set is a valid compact state; empty is None
            else:
                row[pos] = state
        return row


class _Missing(dict):
    """A dict that fills a missing key with ``make(key)`` (a plan rendered on first use); a hit costs
    one dict lookup."""

    def __init__(self, make: Callable[[Any], Any]):
        super().__init__()
        self._make = make

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self._make(key)
        return value


def _render(blank: Row, moves: Moves, steps: Sequence[Step]) -> Apply:
    """One plan as a Python function: a fresh row from ``blank`` (or the old row's values moved into it),
    then per step its ``non_null`` checks written out and a call of its updater. The source names only
    row positions, event columns (``repr``: catalog identifiers) and the updaters passed in."""
    env: dict[str, Any] = {"blank": blank}
    lines = ["def apply(row, event):"]
    if moves is None:
        lines += ["    if row is None:", "        row = blank.copy()"]
    else:
        lines += ["    grown = blank.copy()"]
        if moves:
            lines += [
                "    if row is not None:",
                *(f"        grown[{new}] = row[{old}]" for old, new in moves),
            ]
        lines += ["    row = grown"]
    for k, (pos, column, required, add) in enumerate(steps):
        env[f"add{k}"] = add
        value = f"event[{column!r}]" if column else "None"
        call = f"row[{pos}] = add{k}(row[{pos}], {value})"
        if required:
            lines += [
                f"    if {' and '.join(f'event[{c!r}] is not None' for c in required)}:",
                f"        {call}",
            ]
        else:
            lines += [f"    {call}"]
    lines += ["    return row"]
    exec(compile("\n".join(lines), "<speed.layout plan>", "exec"), env)  # noqa: S102 - source built above
    return env["apply"]
