"""The access-management world (two tenants, one credential of every kind) for the tests that ask it."""

from __future__ import annotations

import pytest

from .access_world import make_world


@pytest.fixture
def world(tmp_path):
    world = make_world(tmp_path)
    yield world
    world.state.close()
