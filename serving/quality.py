"""The answer of ``GET /v1/quality`` (and of the operator's ``GET /v1/admin/quality``): the quality ledger's
counters over a window of arrival hours, evaluated by the one definition (``schemas.catalog.quality``).

It reads the window's hours and the tenant's topics, nothing proportional to its history. The ledger is
written by the archiver; until it exists (no archiver has run on this data folder) the answer is 503,
never a row of zeros."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lambdalytics.infra.quality_ledger import QualityLedger, ledger_path
from lambdalytics.schemas.catalog import HOUR_MS
from lambdalytics.schemas.catalog.quality import describe_quality, evaluate

__all__ = ["LedgerMissing", "QualitySource", "quality_answer"]


class LedgerMissing(RuntimeError):
    """No quality ledger in the data folder yet."""


class QualitySource:
    """Opens the data folder's ledger on first use (the archiver creates it), once per process."""

    def __init__(self, data_dir: str | Path):
        self.path = ledger_path(data_dir)
        self._ledger: QualityLedger | None = None

    def ledger(self) -> QualityLedger:
        if self._ledger is None:
            self._ledger = QualityLedger.open(self.path, create=False)
            if self._ledger is None:
                raise LedgerMissing(f"no quality ledger at {self.path} yet: the archiver creates it")
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def quality_answer(ledger: QualityLedger, tenant_id: str, window_s: int, now_ms: int) -> dict[str, Any]:
    """The figures of one tenant (or of the unknown-tenant bucket) over [now - window, now], by hours."""
    since = now_ms - window_s * 1000
    coverage = ledger.coverage()
    return {
        "window_seconds": window_s,
        "hours_from_ms": since // HOUR_MS * HOUR_MS,
        "metrics": evaluate(ledger.window(tenant_id, since, now_ms), ledger.last_events(tenant_id), now_ms),
        "coverage": {
            "complete": coverage.complete,
            "counted_from": {f"{t}:{p}": o for (t, p), o in sorted(coverage.started.items()) if o},
        },
        "definitions": describe_quality(),
    }
