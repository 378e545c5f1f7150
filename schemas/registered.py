"""The views that hold registered (catalog-file) metrics, beside the built-in views of ``schemas.views``.

A registered base metric gets its columns in two views of its own, never in the built-in ones, so a
backfill of one metric adds columns here and leaves every built-in view at the Delta version it had:

- :data:`REGISTERED_PROFILE`: per customer, one column per registered base metric;
- :data:`REGISTERED_TIMESERIES`: per customer and event-time hour, one column per registered base
  metric with ``timeseries`` set.

Their value columns are not fixed in code: they are the registered metrics a version was backfilled
with, read from the table itself (:func:`registered_view`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .catalog import CATALOG, BaseMetric, Catalog, Grain
from .views import CUSTOMER_KEYS, HOUR, View

__all__ = ["REGISTERED_PROFILE", "REGISTERED_TIMESERIES", "file_bases", "registered_view"]

REGISTERED_PROFILE = "registered_profile"
REGISTERED_TIMESERIES = "registered_timeseries"
_KEYS = {REGISTERED_PROFILE: CUSTOMER_KEYS, REGISTERED_TIMESERIES: (*CUSTOMER_KEYS, HOUR)}


def file_bases(catalog: Catalog) -> tuple[BaseMetric, ...]:
    """The customer-grain base metrics of ``catalog`` that the built-in catalog does not define."""
    return tuple(m for m in catalog.bases(Grain.customer) if m.name not in CATALOG.by_name)


def registered_view(name: str, values: Iterable[str]) -> View:
    """One registered view with these value columns (those of its table, or of a backfill's result)."""
    return View(name, _KEYS[name], tuple(values), recompute_by=CUSTOMER_KEYS)
