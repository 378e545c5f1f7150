"""Send a stream of event objects through the validating producer, paced by event time, with progress."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lambdalytics.infra.kafka_io import EventProducer, SendSummary

__all__ = ["send_paced"]


def _event_ms(obj: Mapping[str, Any]) -> int | None:
    value = obj.get("event_time")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def send_paced(
    events: Iterable[Mapping[str, Any]],
    producer: EventProducer,
    *,
    speedup: float | None = None,
    total: int | None = None,
    description: str = "sending",
    show_progress: bool = True,
) -> SendSummary:
    """Validate and send each event in order; invalid ones are dead-lettered with their reason.

    ``speedup=None`` sends as fast as possible; ``speedup=N`` waits so that N seconds of event time
    pass per wall-clock second (events must carry epoch-ms ``event_time`` for pacing).
    """
    first_ms: int | None = None
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9} ev/s"),
        TimeElapsedColumn(),
        disable=not show_progress,
    ) as progress:
        task = progress.add_task(description, total=total, rate="-")
        for n, obj in enumerate(events, 1):
            if speedup and (ms := _event_ms(obj)) is not None:
                first_ms = ms if first_ms is None else first_ms
                wait = (ms - first_ms) / 1000 / speedup - (time.monotonic() - started)
                if wait > 0:
                    time.sleep(wait)
            producer.send_obj(dict(obj))
            if n % 1000 == 0:
                elapsed = max(time.monotonic() - started, 1e-9)
                progress.update(task, completed=n, rate=f"{n / elapsed:,.0f}")
        producer.flush()
        progress.update(task, completed=producer.summary.total_sent + producer.summary.total_rejected)
    return producer.summary
