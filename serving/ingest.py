"""``POST /v1/events``'s produce-and-wait, off the event loop and bounded in time.

kafka-python blocks: ``send`` waits for metadata (up to ``max_block_ms``) and a record's future blocks
until the broker acknowledges. Run on the loop, a Kafka outage froze every request of the worker. Here
the sends and waits run in the state's produce threads; the request awaits them for at most
``ack_timeout_s`` and then answers 503 with the reason. A send still queued at that moment is cancelled;
one already started may still land later, which is safe to retry over: ``event_id`` is the
idempotency key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from kafka.errors import KafkaError

from lambdalytics.schemas.events import Event

from .state import NoKafka, ServingState

__all__ = ["NotAcknowledged", "produce_acknowledged"]


class NotAcknowledged(RuntimeError):
    """Kafka did not take the events; the message says why (a 503's reason)."""


def _send_and_wait(state: ServingState, events: Sequence[Event], deadline: float) -> None:
    producer = state.producer
    futures = [producer.send(e) for e in events]
    for f in futures:
        f.get(timeout=max(0.0, deadline - time.monotonic()))  # acknowledged by the broker


async def produce_acknowledged(state: ServingState, events: Sequence[Event]) -> None:
    """Return once Kafka acknowledged every event; raise :class:`NotAcknowledged` otherwise."""
    timeout = state.ack_timeout_s
    work = state.produce_pool.submit(_send_and_wait, state, events, time.monotonic() + timeout)
    try:
        await asyncio.wait_for(asyncio.wrap_future(work), timeout)
    except TimeoutError:
        raise NotAcknowledged(
            f"Kafka did not acknowledge within {timeout:g} s; retry (event_id makes a retry safe)"
        ) from None
    except NoKafka as exc:
        raise NotAcknowledged(str(exc)) from None
    except KafkaError as exc:
        raise NotAcknowledged(
            f"Kafka did not acknowledge: {type(exc).__name__}: {str(exc)[:200]}; retry "
            "(event_id makes a retry safe)"
        ) from None
