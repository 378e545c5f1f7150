"""Per-phase timing of a batch run: each step is shown as progress and its wall time kept.

A run is a sequence of named phases (read the master, dedup, each view, the derived views, each Delta
write, the serving store, the manifest). :class:`Phases` is the one place that starts and ends them:
``done = phases.step("view customer_profile"); …; done()`` shows the step (``rich`` progress, when
shown) and records its seconds, so ``bench/batch.py`` reports where an incremental run's time goes
beside its total (``lambdalytics batch run`` shows each step's elapsed time as it runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["Phases"]


class Phases:
    """The phases of runs in order, as ``(name, seconds)``; while :meth:`shown`, also as progress."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []
        self._progress: Progress | None = None

    @contextmanager
    def shown(self, show: bool) -> Iterator[Callable[[str], Callable[[], None]]]:
        """:meth:`step`, with progress displayed inside this block when ``show``."""
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            disable=not show,
            transient=False,
        ) as progress:
            self._progress = progress
            try:
                yield self.step
            finally:
                self._progress = None

    def step(self, name: str) -> Callable[[], None]:
        """Start phase ``name``; the returned function ends it (called once)."""
        task = self._progress.add_task(name, total=1) if self._progress is not None else None
        started = time.perf_counter()

        def done() -> None:
            self.timings.append((name, time.perf_counter() - started))
            if task is not None and self._progress is not None:
                self._progress.update(task, completed=1)

        return done

    def by_kind(self) -> dict[str, float]:
        """Seconds per kind of phase: the name before any parenthesis (every ``write …`` apart)."""
        out: dict[str, float] = {}
        for name, seconds in self.timings:
            kind = name.split(" (")[0]
            out[kind] = out.get(kind, 0.0) + seconds
        return out
