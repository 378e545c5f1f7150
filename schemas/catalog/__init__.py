"""The metric catalog: every metric defined once, as data.

Batch (Spark), the embedded speed store, Pinot SQL, the serving merge and the pages are all derived
from these entries; no other module writes a metric formula, unit or label. Four kinds, from a
closed set:

- :class:`BaseMetric` — a *mergeable* aggregate (count, sum, min, max, HLL distinct) of one column
  over the events that pass a filter, at a grain. Batch and speed each compute it over their side of
  the offset watermark; serving merges the two partials.
- :class:`DerivedMetric` — arithmetic over merged metrics of the same grain (AOV, CTR, ...). Never
  merged itself: merging ratios is the classic lambda-architecture bug, and the types prevent it.
- :class:`DurationMetric` — per-entity durations (ticket first response, order wait). The two
  milestones of one ticket may fall on different sides of the batch/speed boundary, so the
  mergeable state is the entity's :class:`Milestone` times (a min per milestone); the duration and its
  mean or quantile are computed only after the entity states are merged.
- :class:`EntityCountMetric` — entities in a state (orders placed but neither delivered nor cancelled),
  again from merged entity states.

Two *analyses* sit beside the catalog rather than in it, each written once in its own module over
catalog metrics: RFM scoring (``schemas/rfm.py``: quintile cuts over a tenant's customers, applied to
merged ``last_order_at``, ``orders``, ``net_revenue``) and monthly cohort retention
(``schemas/cohorts.py``: each customer's set of order months). Neither is a per-group mergeable
aggregate, so neither is a metric kind; the rule ``analysis-inputs`` checks the metrics they read.

Money is summed in integer micro-units (``amount_micros``), so sums are exact and associative;
:func:`finalize` turns a raw value into the unit the API shows.

Traits (``schemas/traits.py``, published here as :data:`TRAITS`) are declared by name and type beside
the metrics: what an ``identify`` may set, each shown as its latest value (``aggregates.latest``).

Modules: :mod:`.model` (the vocabulary), :mod:`.engines` (what each engine cannot compute),
:mod:`.rules` (named validation rules), :mod:`.registry` (:class:`Catalog`), :mod:`.definitions`
(the built-in :data:`CATALOG`).
"""

from ..traits import TRAITS, TRAITS_BY_NAME, Trait
from .definitions import CATALOG
from .engines import ENGINES, Engine
from .model import (
    GRAIN_KEYS,
    HOUR_MS,
    Aggregate,
    BaseMetric,
    CatalogError,
    DerivedMetric,
    DurationMetric,
    Entity,
    EntityCountMetric,
    EventFilter,
    Grain,
    Metric,
    Milestone,
    Unit,
    finalize,
    iso_utc,
    show_trait,
)
from .registry import Catalog

__all__ = [
    "CATALOG",
    "ENGINES",
    "TRAITS",
    "TRAITS_BY_NAME",
    "GRAIN_KEYS",
    "HOUR_MS",
    "Aggregate",
    "BaseMetric",
    "Catalog",
    "CatalogError",
    "DerivedMetric",
    "DurationMetric",
    "Engine",
    "Entity",
    "EntityCountMetric",
    "EventFilter",
    "Grain",
    "Metric",
    "Milestone",
    "Trait",
    "Unit",
    "finalize",
    "iso_utc",
    "show_trait",
]
