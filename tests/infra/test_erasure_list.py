"""The erasure list answers from the log itself: per tenant, pending or complete, in a process started
after the erasure (the Pinot store's exclusion rests on this), without the plain ids the log drops."""

from __future__ import annotations

import pytest

from lambdalytics.infra.erasures import ErasureList, ErasureLog
from lambdalytics.infra.settings import Settings

pytestmark = pytest.mark.unit


def test_an_erasure_list_opened_later_knows_complete_erasures_per_tenant(tmp_path):
    settings = Settings(data_dir=tmp_path)
    before = ErasureList(settings, component="pinot", refresh_s=0)
    assert not before.erased("t1", "gone") and not before.has_erasures("t1")  # no log yet, no secret made
    log = ErasureLog.open(settings)
    pending, _ = log.request("t1", "gone", ["gone", "anon-1"])
    assert before.erased("t1", "anon-1")  # pending: the list sees it at its next refresh
    log.complete(pending.erasure_id)
    assert log.get(pending.erasure_id).customer_ids == ()

    restarted = ErasureList(settings, component="pinot")  # a new process: only the log's hashes
    assert restarted.has_erasures("t1") and not restarted.has_erasures("t2")
    assert restarted.erased("t1", "gone") and restarted.erased("t1", "anon-1")
    assert not restarted.erased("t1", "stays") and not restarted.erased("t2", "gone")  # tenant-scoped
    assert restarted.skipped == 0  # asking is not skipping: only ``skips`` counts
    assert restarted.skips({"tenant_id": "t1", "customer_id": "gone"}) and restarted.skipped == 1
    log.close()
