"""Catalog files: metrics an operator declares in TOML, checked by the catalog's own rules.

A file is a list of ``[[metric]]`` tables with exactly the fields of a catalog entry
(:class:`~.model.BaseMetric` or :class:`~.model.DerivedMetric`; ``kind`` may be left out and is then
read from ``aggregate`` or ``op``). The entries are added to a catalog (the built-in one plus what is
registered already) and the result is built as a :class:`~.registry.Catalog`, so the same named rules
run (``unique-names``, ``known-columns``, ``engine-support``, ``unit-algebra`` …) and every engine
compiles the new metric through the same renderers: a file holds data, never a second formula.

One more rule applies to files only, ``file-scope``: a file metric is a customer-grain base or derived
metric, the grain whose registered views the batch layer builds (``schemas.registered``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .model import BaseMetric, CatalogError, DerivedMetric, Grain, Metric
from .registry import Catalog

__all__ = ["CatalogFileError", "extend", "parse_entries", "read_catalog_file"]

_METRIC = TypeAdapter(Metric)


class CatalogFileError(CatalogError):
    """A catalog file that cannot be registered; each problem names the file and the entry."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: catalog file is invalid:\n- " + "\n- ".join(self.problems))


def _entry_name(entry: Any, position: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"metric #{position} {name!r}" if isinstance(name, str) else f"metric #{position}"


def _with_kind(entry: dict[str, Any]) -> dict[str, Any]:
    if "kind" in entry:
        return entry
    if "aggregate" in entry:
        return {**entry, "kind": "base"}
    if "op" in entry:
        return {**entry, "kind": "derived"}
    return entry  # the discriminator error names the missing kind


def parse_entries(entries: Iterable[Any], source: str) -> tuple[Metric, ...]:
    """Raw entries (dicts) → metrics; every malformed entry is reported, not only the first."""
    metrics, problems = [], []
    for position, entry in enumerate(entries, 1):
        where = _entry_name(entry, position)
        if not isinstance(entry, dict):
            problems.append(
                f"{where}: entry-is-table: expected a [[metric]] table, got {type(entry).__name__}"
            )
            continue
        try:
            metric = _METRIC.validate_python(_with_kind(entry))
        except ValidationError as exc:
            problems += [
                f"{where}: entry-fields: {'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}"
                for e in exc.errors()
            ]
            continue
        if not isinstance(metric, BaseMetric | DerivedMetric) or metric.grain is not Grain.customer:
            problems.append(
                f"{where}: file-scope: a file metric is a customer-grain base or derived metric, "
                f"not {metric.grain} {metric.kind}"
            )
            continue
        metrics.append(metric)
    if problems:
        raise CatalogFileError(source, problems)
    return tuple(metrics)


def extend(base: Catalog, metrics: Sequence[Metric], source: str) -> Catalog:
    """``base`` plus ``metrics``, built by the catalog's rules; a broken result names the file."""
    try:
        return Catalog(entities=base.entities, metrics=(*base.metrics, *metrics))
    except CatalogError as exc:
        problems = str(exc).split("\n- ")[1:] or [str(exc)]
        raise CatalogFileError(source, problems) from None


def read_catalog_file(path: Path, base: Catalog) -> tuple[tuple[Metric, ...], Catalog]:
    """The metrics a TOML file declares and ``base`` extended by them (:class:`CatalogFileError` if not)."""
    source = str(path)
    try:
        document = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFileError(source, [f"file-readable: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogFileError(source, [f"file-is-toml: {exc}"]) from None
    unknown = sorted(set(document) - {"metric"})
    if unknown:
        raise CatalogFileError(source, [f"file-tables: only [[metric]] tables are read, found {unknown}"])
    entries = document.get("metric", [])
    if not isinstance(entries, list) or not entries:
        raise CatalogFileError(source, ["file-has-metrics: no [[metric]] table"])
    metrics = parse_entries(entries, source)
    return metrics, extend(base, metrics, source)
