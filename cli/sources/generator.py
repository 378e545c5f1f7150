"""Synthetic event streams for the three user stories, deterministic by seed.

- ``demo-food``: a food-delivery merchant — app sessions, orders placed → paid → delivered (or
  cancelled), with a promised time; occasional refunds. Feeds the live wait-time metrics.
- ``demo-ads``: an ad network — campaigns with impressions and clicks carrying spend, and orders
  attributed to a campaign (conversions).
- ``demo-saas``: a SaaS product — sessions of app events, support tickets opened → first reply →
  resolved → CSAT.

The stream runs on a simulated clock: ``rate`` *stories* start per second of event time for
``duration`` seconds; each story schedules its events into the future (a delivery 20-60 min after the
order), and events are emitted in event-time order as the clock passes them. Two kinds of mess are
injected on purpose, because the merge invariant must hold through them:

- ``duplicates``: this fraction of emitted events is emitted a second time, identical (same event_id),
  a little later — what an at-least-once producer does;
- ``late``: this fraction of stories happened 1-48 h in the past (old ``event_time``) but is emitted
  now — a phone syncing after a flight.

The same arguments always give the same events (``random.Random(seed)``, no wall clock read).
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["GeneratorConfig", "TENANTS", "generate"]

TENANTS = ("demo-food", "demo-ads", "demo-saas")
_MIN = 60_000
_HOUR = 60 * _MIN


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    rate: float = 50.0  # stories started per second of event time
    duration_s: float = 60.0
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    customers_per_tenant: int = 1000
    campaigns: int = 8
    duplicates: float = 0.01
    late: float = 0.02
    tenants: tuple[str, ...] = TENANTS

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration_s <= 0:
            raise ValueError("rate and duration must be > 0")
        if not (0 <= self.duplicates < 1 and 0 <= self.late < 1):
            raise ValueError("duplicates and late are fractions in [0, 1)")
        unknown = set(self.tenants) - set(TENANTS)
        if unknown or not self.tenants:
            raise ValueError(f"tenants must be a non-empty subset of {TENANTS}, got {self.tenants}")


class _Stories:
    """Each method returns a story: a list of (event_time_ms, event dict without id/time)."""

    def __init__(self, rng: random.Random, cfg: GeneratorConfig):
        self.rng = rng
        self.cfg = cfg
        self.seq = 0

    def _id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq:08d}"

    def _customer(self, tenant: str) -> str:
        # a skewed pool: low numbers are heavy customers, the rest a long tail
        index = int(self.cfg.customers_per_tenant * self.rng.random() ** 2)
        return f"{tenant.split('-')[1]}-c{index:05d}"

    def _money(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 2)

    def _session(self, tenant: str, customer: str, t: int, kinds: tuple[str, ...]) -> list[tuple[int, dict]]:
        sid = self._id("s")
        base = {"tenant_id": tenant, "customer_id": customer, "session_id": sid}
        out = [(t, {**base, "event_type": "session_start"})]
        for _ in range(self.rng.randint(1, 6)):
            t += self.rng.randint(2_000, 90_000)
            kind = self.rng.choice(kinds)
            event: dict[str, Any] = {**base, "event_type": kind}
            if kind == "search":
                event["properties"] = {"query": self.rng.choice(["pizza", "sushi", "vegan", "burger"])}
            out.append((t, event))
        return out

    def food(self, t: int) -> list[tuple[int, dict]]:
        tenant, customer = "demo-food", self._customer("demo-food")
        if self.rng.random() < 0.5:
            return self._session(tenant, customer, t, ("page_view", "search", "add_to_cart", "app_event"))
        order = self._id("o")
        base = {"tenant_id": tenant, "customer_id": customer, "order_id": order}
        amount = self._money(8, 60)
        promised = t + self.rng.randint(30, 45) * _MIN
        out = [
            (t, {**base, "event_type": "order_placed", "promised_at": promised}),
            (
                t + self.rng.randint(1_000, 20_000),
                {**base, "event_type": "order_paid", "amount": amount, "currency": "EUR"},
            ),
        ]
        if self.rng.random() < 0.05:
            out.append((t + self.rng.randint(1, 10) * _MIN, {**base, "event_type": "order_cancelled"}))
            out.append(
                (
                    t + self.rng.randint(11, 30) * _MIN,
                    {**base, "event_type": "refund", "amount": amount, "currency": "EUR"},
                )
            )
        else:
            delivered = t + self.rng.randint(15 * 60, 70 * 60) * 1000
            out.append((delivered, {**base, "event_type": "order_delivered"}))
            if self.rng.random() < 0.03:
                out.append(
                    (
                        delivered + self.rng.randint(5, 120) * _MIN,
                        {**base, "event_type": "refund", "amount": self._money(2, amount), "currency": "EUR"},
                    )
                )
        return out

    def ads(self, t: int) -> list[tuple[int, dict]]:
        tenant, customer = "demo-ads", self._customer("demo-ads")
        campaign = f"cmp-{min(int(self.rng.expovariate(0.4)), self.cfg.campaigns - 1):02d}"
        base = {"tenant_id": tenant, "customer_id": customer, "campaign_id": campaign}
        out = []
        for _ in range(self.rng.randint(1, 5)):
            out.append(
                (t, {**base, "event_type": "ad_impression", "cost": round(self.rng.uniform(0.001, 0.01), 6)})
            )
            t += self.rng.randint(1_000, 60_000)
        if self.rng.random() < 0.2:
            t += self.rng.randint(500, 30_000)
            out.append((t, {**base, "event_type": "ad_click", "cost": self._money(0.1, 1.5)}))
            if self.rng.random() < 0.25:
                order = self._id("o")
                obase = {"tenant_id": tenant, "customer_id": customer, "order_id": order}
                t += self.rng.randint(1, 20) * _MIN
                out.append((t, {**obase, "event_type": "order_placed", "campaign_id": campaign}))
                out.append(
                    (
                        t + 5_000,
                        {
                            **obase,
                            "event_type": "order_paid",
                            "amount": self._money(10, 200),
                            "currency": "USD",
                        },
                    )
                )
        return out

    def saas(self, t: int) -> list[tuple[int, dict]]:
        tenant, customer = "demo-saas", self._customer("demo-saas")
        if self.rng.random() < 0.8:
            return self._session(tenant, customer, t, ("app_event", "app_event", "page_view", "search"))
        ticket = self._id("tk")
        base = {"tenant_id": tenant, "customer_id": customer, "ticket_id": ticket}
        channel = self.rng.choice(["email", "chat", "phone"])
        priority = self.rng.choice(["low", "normal", "high"])
        out = [(t, {**base, "event_type": "ticket_opened", "channel": channel, "priority": priority})]
        t += self.rng.randint(2, 120) * _MIN
        out.append((t, {**base, "event_type": "agent_replied"}))
        if self.rng.random() < 0.4:
            t += self.rng.randint(5, 60) * _MIN
            out.append((t, {**base, "event_type": "agent_replied"}))
        if self.rng.random() < 0.85:
            t += self.rng.randint(10, 48 * 60) * _MIN
            out.append((t, {**base, "event_type": "ticket_resolved"}))
            if self.rng.random() < 0.6:
                out.append(
                    (
                        t + self.rng.randint(1, 120) * _MIN,
                        {
                            **base,
                            "event_type": "csat_submitted",
                            "score": self.rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 6])[0],
                        },
                    )
                )
        return out


def generate(cfg: GeneratorConfig) -> Iterator[dict[str, Any]]:
    """Events in emission order (event_time as UTC epoch ms); see the module docstring."""
    rng = random.Random(cfg.seed)
    stories = _Stories(rng, cfg)
    makers = {"demo-food": stories.food, "demo-ads": stories.ads, "demo-saas": stories.saas}
    tenants = list(cfg.tenants)
    end = cfg.start_ms + int(cfg.duration_s * 1000)
    step = 1000 / cfg.rate
    # heap of (emit_at_ms, seq, event): seq keeps the order total and deterministic
    pending: list[tuple[int, int, dict[str, Any]]] = []
    seq = 0

    def schedule(emit_at: int, event: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(pending, (emit_at, seq, event))

    clock = float(cfg.start_ms)
    while clock < end:
        now = int(clock)
        late = rng.random() < cfg.late
        origin = now - rng.randint(1 * 60, 48 * 60) * _MIN if late else now
        for event_time, body in makers[rng.choice(tenants)](origin):
            event = {"event_id": str(uuid.UUID(int=rng.getrandbits(128))), **body, "event_time": event_time}
            # what a late story did in the past is emitted now; the rest when the clock reaches it
            schedule(max(now, event_time), event)
        clock += step
        while pending and pending[0][0] <= clock and pending[0][0] < end:
            emit_at, _, event = heapq.heappop(pending)
            yield event
            if rng.random() < cfg.duplicates:
                schedule(emit_at + rng.randint(100, 30_000), event)
