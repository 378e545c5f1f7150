"""Contract fixtures parametrised over both speed stores (ibis ``backends/conftest.py`` style).

``store_kind`` runs a test once per store; ``store`` is that store over ``stream(1)`` (shared, read only);
``open_speed`` opens a fresh one over any records. A store's gap is declared on the test with
``@pytest.mark.notimpl(["pinot"], raises=..., reason=...)``: there the test becomes a strict xfail that
must fail with that exception, so a gap is visible in every run and a fixed one is noticed.
"""

from __future__ import annotations

import pytest

from .contract import OPENERS, STORES, loaded


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "notimpl(stores, *, raises, reason): a known gap of these speed stores (strict xfail there)",
    )


def pytest_collection_modifyitems(items):
    for item in items:
        kind = item.callspec.params.get("store_kind") if hasattr(item, "callspec") else None
        for marker in item.iter_markers("notimpl"):
            if "raises" not in marker.kwargs or "reason" not in marker.kwargs:
                raise pytest.UsageError(f"{item.nodeid}: notimpl needs raises= and reason=")
            if kind in marker.args[0]:
                item.add_marker(
                    pytest.mark.xfail(
                        raises=marker.kwargs["raises"],
                        reason=f"{kind}: {marker.kwargs['reason']}",
                        strict=True,
                    )
                )


@pytest.fixture(params=STORES, scope="session")
def store_kind(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def store(store_kind):
    return loaded(store_kind, 1)


@pytest.fixture(scope="session")
def open_speed(store_kind):
    return OPENERS[store_kind]
