"""The registered catalog: built-in metrics plus those added from catalog files, versioned on disk.

Every registration writes the whole registered set as a new file ``DATA_DIR/catalog/vNNNNNN.json``;
the highest number is the current set. Batch runs, the speed store and every API worker read the same
files, so they load the same catalog, and a running process picks a new version up by reading the
directory again (:func:`current`, cheap: one listing). A version file is written to a temporary name,
synced and hard-linked to its final name, which fails if another registration took the number first
(then it is retried on the new current set): a reader never sees half a file, and two registrations
never overwrite each other. A file that fails validation writes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from lambdalytics.schemas.catalog import CATALOG, Catalog, Metric
from lambdalytics.schemas.catalog.file import CatalogFileError, extend, parse_entries, read_catalog_file

__all__ = ["Registered", "add", "catalog_dir", "current"]


def catalog_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "catalog"


@dataclass(frozen=True)
class Registered:
    """One version of the registered set: 0 is the built-in catalog alone."""

    version: int
    metrics: tuple[Metric, ...]  # the file metrics, in registration order
    catalog: Catalog  # the built-in catalog plus ``metrics``

    def is_registered(self, name: str) -> bool:
        return any(m.name == name for m in self.metrics)


_BUILT_IN = Registered(0, (), CATALOG)
_loaded: dict[Path, Registered] = {}


def _versions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.stem[1:]) for p in folder.glob("v*.json") if p.stem[1:].isdigit())


def _path(folder: Path, version: int) -> Path:
    return folder / f"v{version:06d}.json"


def _load(path: Path, version: int) -> Registered:
    entries = orjson.loads(path.read_bytes())["metrics"]
    metrics = parse_entries(entries, str(path))
    return Registered(version, metrics, extend(CATALOG, metrics, str(path)))


def current(data_dir: Path) -> Registered:
    """The newest registered set (the built-in catalog before any registration); parsed once per file."""
    folder = catalog_dir(data_dir)
    versions = _versions(folder)
    if not versions:
        return _BUILT_IN
    path = _path(folder, versions[-1])
    found = _loaded.get(path)
    if found is None or found.version != versions[-1]:
        found = _loaded[path] = _load(path, versions[-1])
    return found


def add(data_dir: Path, file: Path) -> tuple[Registered, tuple[Metric, ...]]:
    """Validate a catalog file against the current set and register its metrics as the next version.

    Raises :class:`~lambdalytics.schemas.catalog.file.CatalogFileError` and writes nothing when the file
    breaks a rule; returns the new set and the metrics the file added.
    """
    folder = catalog_dir(data_dir)
    while True:
        now = current(data_dir)
        added, catalog = read_catalog_file(file, now.catalog)
        version = now.version + 1
        document = {
            "version": version,
            "registered_at": dt.datetime.now(dt.UTC).isoformat(),
            "source": str(file),
            "metrics": [m.model_dump(mode="json") for m in (*now.metrics, *added)],
        }
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".v", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, _path(folder, version))
            except FileExistsError:
                continue  # another registration took this number: validate again on top of it
        finally:
            os.unlink(tmp)
        registered = Registered(version, (*now.metrics, *added), catalog)
        _loaded[_path(folder, version)] = registered
        return registered, added


__all__ += ["CatalogFileError"]
