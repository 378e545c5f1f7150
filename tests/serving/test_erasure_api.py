"""``DELETE /v1/customers/{id}`` and the receipt: the worker's speed store and answer cache forget the
customer at once, tenant-level answers equal a store that never saw them, every other worker applies the
pending erasure on its poll, the audit log records it without the customer id, and another tenant
cannot read the receipt. The durable purge (Spark) is ``tests/batch/test_erasure.py``; here it is not
started (``command``)."""

from __future__ import annotations

import pytest

from lambdalytics.infra.settings import Settings
from lambdalytics.serving.answer_cache import AnswerCache
from lambdalytics.serving.erasure import Erasures
from lambdalytics.serving.state import ServingState

from ..speed.contract import erased_customers, open_pinot
from ..speed.streams import stream
from .access_world import seeded_store
from .apps import bearer, serving_app

pytestmark = pytest.mark.unit


@pytest.fixture()
def app(tmp_path):
    client, keys, state = serving_app(tmp_path, seeded_store(), ("alpha", "beta"))
    state.erasures.command = ("true",)  # the durable purge is not started here
    yield client, keys, state
    state.close()


def test_the_receipt_says_the_pinot_store_excludes_rather_than_deletes(tmp_path):
    """Pinot keeps the rows until its retention: its receipt entry says the customer is left out of its
    answers, not that nothing was there to remove."""
    records = stream(1)
    tenant, customer = erased_customers(records)[0]
    store = open_pinot(records)
    erasures = Erasures(
        Settings(data_dir=tmp_path), store, (AnswerCache(8),), lambda t, c: [c], command=("true",)
    )
    erasure, created = erasures.request(tenant, customer)
    assert created and erasure.stores["speed_store"]["excluded_from_answers"] is True
    assert erasure.stores["speed_store"]["partials"] == 0
    assert store.customer(tenant, customer, {})["events_total"] == 0
    erasures.close()


def _stats(client, key):
    r = client.get(
        "/v1/campaigns/spring/stats?start=2025-12-01T00:00:00Z&end=2026-02-01T00:00:00Z", headers=bearer(key)
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_an_erasure_purges_this_worker_and_returns_a_receipt(app):
    client, keys, state = app
    alpha = bearer(keys["alpha"])
    assert client.get("/v1/customers/c1/profile", headers=alpha).status_code == 200  # cached now
    before = _stats(client, keys["alpha"])
    beta_before = _stats(client, keys["beta"])

    r = client.delete("/v1/customers/c1", headers=alpha)
    assert r.status_code == 202, r.text
    receipt = r.json()
    assert r.headers["Location"] == f"/v1/erasures/{receipt['erasure_id']}"
    assert receipt["state"] == "pending" and receipt["identities"] == 1
    assert receipt["stores"]["speed_store"]["partials"] > 0 and "at" in receipt["stores"]["speed_store"]
    assert receipt["stores"]["answer_cache"]["entries"] >= 1
    assert "retention" in receipt["remains"]
    assert "c1" not in r.text.replace(receipt["erasure_id"], "")  # a random hex id may hold "c1"

    # the customer is gone; the campaign counts exactly one customer fewer (c1 and c2 had one each)
    assert client.get("/v1/customers/c1/profile", headers=alpha).status_code == 404
    after = _stats(client, keys["alpha"])
    assert before["totals"]["impressions"] == 2 and after["totals"]["impressions"] == 1
    assert after["totals"]["conversions"] == before["totals"]["conversions"] - 1
    assert _stats(client, keys["beta"])["totals"] == beta_before["totals"]  # another tenant's c1 untouched
    assert client.get("/v1/customers/c1/profile", headers=bearer(keys["beta"])).status_code == 200

    # asking again: the same erasure, one audit entry, no customer id in it
    again = client.delete("/v1/customers/c1", headers=alpha)
    assert again.status_code == 202 and again.json()["erasure_id"] == receipt["erasure_id"]
    entries = [
        e for e in client.get("/v1/audit", headers=alpha).json()["entries"] if e["action"] == "erasure"
    ]
    assert len(entries) == 1 and entries[0]["target"] == receipt["erasure_id"] and "c1" not in str(entries).replace(receipt["erasure_id"], "")

    # the receipt: this tenant's only
    path = f"/v1/erasures/{receipt['erasure_id']}"
    got = client.get(path, headers=alpha)
    assert got.status_code == 200 and got.json()["erasure_id"] == receipt["erasure_id"], got.text
    assert client.get(path, headers=bearer(keys["beta"])).status_code == 404


def test_every_other_worker_applies_a_pending_erasure_on_its_poll(app):
    client, keys, state = app
    other = ServingState(state.settings, seeded_store())  # a second worker over the same data dir
    try:
        assert other.speed.customer("alpha", "c2", {})["events_total"] == 3
        client.delete("/v1/customers/c2", headers=bearer(keys["alpha"]))
        other.erasures.sync()  # what its loader's poll does
        assert other.speed.customer("alpha", "c2", {})["events_total"] == 0
        assert other.speed.customer("alpha", "c1", {})["events_total"] == 3
    finally:
        other.close()
