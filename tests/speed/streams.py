"""Generated event streams as a consumer sees them, and block-aligned watermarks over them."""

from __future__ import annotations

import functools
import random
import zlib

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.schemas.events import to_row, validate_event

PARTITIONS = 3
Record = tuple[dict, str, int, int, int]  # (to_row dict, topic, partition, offset, broker_ms)


@functools.cache
def stream(seed: int) -> list[Record]:
    """Records in consumption order, with duplicates and late events (cached: treat as read-only)."""
    cfg = GeneratorConfig(
        seed=seed, rate=0.01, duration_s=2 * 86_400, duplicates=0.08, late=0.1, customers_per_tenant=15
    )
    offsets: dict[tuple[str, int], int] = {}
    out, clock = [], cfg.start_ms
    for obj in with_aliases(generate(cfg), seed):
        event = validate_event(obj)
        tp = (event.topic, zlib.crc32(event.key) % PARTITIONS)
        offset = offsets.get(tp, 0)
        offsets[tp] = offset + 1
        clock = max(clock + 1, event.event_time)
        out.append((to_row(event), tp[0], tp[1], offset, clock))
    return out


def with_aliases(events, seed: int, every: int = 40):
    """The events with an ``alias`` now and then: a customer seen earlier merged into the current one or
    an anonymous id, some of them re-sent (same event id) a little later."""
    rng = random.Random(seed + 3000)  # a salt under which copies still straddle the half cut (checked)
    seen: dict[str, list[str]] = {}
    resend: list[dict] = []
    for i, obj in enumerate(events):
        yield obj
        tenant, customer = obj["tenant_id"], obj["customer_id"]
        ids = seen.setdefault(tenant, [])
        if customer not in ids:
            ids.append(customer)
        if resend and rng.random() < 0.2:
            yield resend.pop()
        if i % every == every - 1 and len(ids) > 1:
            previous = rng.choice([c for c in ids if c != customer] + [f"anon-{i}"])
            alias = {
                "event_id": f"alias-{seed}-{i}",
                "tenant_id": tenant,
                "customer_id": customer,
                "event_type": "alias",
                "event_time": obj["event_time"],
                "previous_id": previous,
            }
            yield alias
            if rng.random() < 0.3:
                resend.append(alias)


def end_offsets(records: list[Record]) -> dict[tuple[str, int], int]:
    """The next offset to consume per partition once every record is consumed."""
    end: dict[tuple[str, int], int] = {}
    for _, topic, partition, offset, _ in records:
        end[(topic, partition)] = offset + 1
    return end


CUTS = ("zero", "half", "mixed", "end", "random")


def watermark(records: list[Record], cut: str, block: int) -> dict[tuple[str, int], int]:
    """A named block-aligned cut per partition, as the batch layer chooses them."""
    end = end_offsets(records)
    rng = random.Random(cut)
    pick = {
        "zero": lambda tp, o: 0,
        "half": lambda tp, o: o // 2 // block * block,
        "end": lambda tp, o: o // block * block,
        "mixed": lambda tp, o: (0, o // 3 // block * block, o // block * block)[tp[1] % 3],
        "random": lambda tp, o: rng.randint(0, o // block) * block,
    }[cut]
    return {tp: pick(tp, o) for tp, o in sorted(end.items())}
