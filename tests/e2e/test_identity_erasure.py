"""Identity merges and an erasure end to end: the real broker, archiver, Spark batch, speed consumer and API.

One tenant's stream, produced in two halves around a batch cut: an anonymous id aliased to a signed-up
customer before the cut, that customer aliased to a second account after it (a chain), late events of
the previous ids after their alias, and re-sent copies of events and of an alias on both sides of the
cut. Every answer about every id of the chain — profile, RFM, cohorts, the campaign's attributed
conversions — equals an oracle that merges the component's deduplicated events, before and after the
next batch run; a previous id answers the survivor's profile with ``merged_into``. Then the component is
erased through ``DELETE /v1/customers/{id}``: the receipt completes, and no route, no readable Delta
version, no serving-store file and no speed-store state holds any of its ids; a copy re-sent afterwards
is not counted again, and the bystander's answers are unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.erasure import purge
from lambdalytics.batch.job import run_batch
from lambdalytics.batch.master import master_path
from lambdalytics.infra import serving_store
from lambdalytics.infra.erasures import ErasureList
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from ..batch import oracle
from ..batch.test_erasure import _holds
from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.e2e

DAY = 86_400_000
JAN = 1_767_225_600_000  # 2026-01-01
CAMPAIGN = "spring"
CHAIN = ["anon-1", "user-1", "user-2"]  # anon-1 → user-1 before the cut, user-1 → user-2 after it
BYSTANDER = "other-1"
STATS = f"/v1/campaigns/{CAMPAIGN}/stats?start=2025-12-01T00:00:00Z&end=2026-04-01T00:00:00Z"


def _stream(tenant: str) -> tuple[list[dict], list[dict]]:
    """(before the cut, after it): hand-made so every case of the issue occurs."""

    def ev(n: str, kind: str, who: str, day: float, **fields) -> dict:
        return {
            "event_id": n,
            "tenant_id": tenant,
            "event_type": kind,
            "customer_id": who,
            "event_time": JAN + int(day * DAY),
            **fields,
        }

    def order(n: str, who: str, day: float, amount: float, **placed) -> list[dict]:
        return [
            ev(f"{n}-placed", "order_placed", who, day, order_id=n, **placed),
            ev(f"{n}-paid", "order_paid", who, day + 0.01, order_id=n, amount=amount, currency="EUR"),
        ]

    click = ev("a1-click", "ad_click", "anon-1", 1, campaign_id=CAMPAIGN, cost=0.5)
    first_alias = ev("alias-1", "alias", "user-1", 2, previous_id="anon-1")
    before = [
        ev("a1-view", "page_view", "anon-1", 1, session_id="s1"),
        click,
        first_alias,
        *order("o1", "user-1", 2, 20.0, campaign_id=CAMPAIGN),
        *order("o2", "user-2", 35, 30.0),  # user-2's own first order is in February
        ev("b-click", "ad_click", BYSTANDER, 9, campaign_id=CAMPAIGN, cost=0.25),
        *order("o3", BYSTANDER, 9, 15.0, campaign_id=CAMPAIGN),
        *order("o4", BYSTANDER, 60, 5.0),
    ]
    before.append(dict(before[4]))  # a re-sent order_paid of o1, before the cut
    after = [
        ev("alias-2", "alias", "user-2", 36, previous_id="user-1"),  # the chain
        ev("a1-late", "page_view", "anon-1", 0.5, session_id="s0"),  # late, for a previous id
        *order("o5", "user-1", 19, 10.0, campaign_id=CAMPAIGN),  # late order of a previous id
        ev("u2-view", "page_view", "user-2", 37, session_id="s2"),
        dict(click),  # copies across the cut: an event and an alias
        dict(first_alias),
    ]
    return before, after


def _rows(events: list[dict]) -> list[dict]:
    """Master-like rows in produce order (a key's copies share a partition, the first copy lowest)."""
    out = []
    for n, obj in enumerate(events):
        event = validate_event(obj)
        out.append({**to_row(event), "topic": event.topic, "partition": 0, "offset": n})
    return out


def _oracle(events: list[dict]) -> dict:
    """Profiles, cohorts and campaign totals of the merged customers of the deduplicated events."""
    rows = _rows(events)
    truth = oracle.dedup(rows, {(r["topic"], 0): 10**9 for r in rows})
    merged = oracle.relabel(truth, oracle.identity_groups(truth, 64))
    profile = oracle.profile(merged).set_index("customer_id")
    campaign = oracle.campaign_stats(merged)
    campaign = campaign[campaign.campaign_id == CAMPAIGN]
    return {
        "profile": {
            c: {
                "events_total": int(p.events_total),
                "orders": int(p.orders),
                "paid_orders": int(p.paid_orders),
                "revenue": (0 if pd.isna(p.revenue) else int(p.revenue)) / 1e6,
                "sessions": int(p.sessions),
            }
            for c, p in profile.iterrows()
        },
        "cohorts": {cohort: v for (_, cohort), v in oracle.cohorts(merged).items()},
        "campaign": {
            "clicks": int(campaign.clicks.sum()),
            "conversions": int(campaign.conversions.sum()),
            "spend": int(campaign.spend.sum()) / 1e6,
        },
    }


def test_a_merged_customer_end_to_end_then_its_erasure(kafka_bootstrap, tmp_path, unique, spark):
    ensure_topics(kafka_bootstrap, 6)
    tenant = f"ident-{unique}"
    before, after = _stream(tenant)
    settings = Settings(
        data_dir=tmp_path,
        block_size=1,  # W = everything archived: the first half is the batch view's
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
        batch_poll_seconds=0.2,
    )
    store = EmbeddedSpeedStore(block_size=1)
    state = ServingState(settings, store, bootstrap=kafka_bootstrap)
    state.erasures.command = ("true",)  # the durable purge runs below, in this process, on its Spark
    state.loader.refresh()
    consumer = SpeedConsumer(store, kafka_bootstrap, erasures=ErasureList(settings, component="speed")).start()
    client = TestClient(create_app(state))
    auth = {"Authorization": f"Bearer {state.credentials.registry.create(tenant, 'identity e2e')}"}

    def answers() -> dict:
        """What the API says about every id, the cohorts and the campaign."""
        out: dict = {"profile": {}}
        for customer in [*CHAIN, BYSTANDER]:
            r = client.get(f"/v1/customers/{customer}/profile", headers=auth)
            out["profile"][customer] = r.json() if r.status_code == 200 else r.status_code
        cohorts = client.get("/v1/cohorts/retention", headers=auth).json()["cohorts"]
        out["cohorts"] = {row["cohort"]: (row["size"], row["retention"]) for row in cohorts}
        stats = client.get(STATS, headers=auth)
        out["campaign"] = (
            {k: stats.json()["totals"][k] for k in ("clicks", "conversions", "spend")}
            if stats.status_code == 200
            else stats.status_code
        )
        return out

    def matches(got: dict, want: dict, merged: list[str]) -> bool:
        survivor = merged[-1]
        for customer in [*merged, BYSTANDER]:
            body = got["profile"][customer]
            canonical = survivor if customer in merged else customer
            expected = want["profile"][canonical]
            if not isinstance(body, dict) or body["customer_id"] != canonical:
                return False
            if {k: body["metrics"][k] for k in expected} != expected:
                return False
            if body["rfm"]["frequency"] != expected["orders"] or body["rfm"]["monetary"] != expected["revenue"]:
                return False
            if customer in merged and body["merged_ids"] != sorted(merged):
                return False
            if (body.get("merged_into") is not None) != (customer != canonical):
                return False
        return got["cohorts"] == want["cohorts"] and got["campaign"] == want["campaign"]

    def settles(want: dict, merged: list[str], timeout_s: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            got = answers()
            if matches(got, want, merged) or time.monotonic() > deadline:
                return got
            time.sleep(0.2)

    def cohort_members() -> list[str]:
        r = client.get("/v1/segments/customers?by=cohort&value=2026-01&limit=100", headers=auth)
        assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text
        return r.json()["customers"]

    def archive() -> None:
        Archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5).run(idle_exit_seconds=2)

    try:
        with EventProducer(kafka_bootstrap) as producer:
            for e in before:
                producer.send_obj(e)
        archive()
        first = run_batch(settings, spark=spark, show_progress=False)
        assert first is not None and state.loader.refresh()
        half = _oracle(before)
        assert half["profile"]["user-1"]["orders"] == 1 and "user-2" in half["profile"]
        got = settles(half, ["anon-1", "user-1"])
        assert matches(got, half, ["anon-1", "user-1"]), got
        assert got["profile"]["user-2"]["merged_ids"] == ["user-2"]  # not merged yet

        # the chain, late events of previous ids and copies across the cut: all on the speed side
        with EventProducer(kafka_bootstrap) as producer:
            for e in after:
                producer.send_obj(e)
        whole = _oracle(before + after)
        assert list(whole["cohorts"]) == ["2026-01"]  # the merged customer's first order is January's
        assert whole["profile"]["user-2"]["orders"] == 3 and whole["campaign"]["conversions"] == 3
        got = settles(whole, CHAIN)
        assert matches(got, whole, CHAIN), got
        assert got["profile"]["anon-1"]["merged_into"] == "user-2" == got["profile"]["user-1"]["merged_into"]

        # the same answers once a batch run covers everything (the aliases now batch-side)
        archive()
        second = run_batch(settings, spark=spark, show_progress=False)
        assert second is not None and second.batch_version == 2 and state.loader.refresh()
        got = answers()
        assert matches(got, whole, CHAIN), got

        # erase the component through the API (asked by a previous id: the whole chain goes)
        r = client.delete("/v1/customers/user-1", headers=auth)
        assert r.status_code == 202, r.text
        receipt = r.json()
        assert receipt["state"] == "pending" and receipt["identities"] == len(CHAIN)
        done = purge(settings, receipt["erasure_id"], spark=spark, show_progress=False)
        assert done.state == "complete" and state.loader.refresh()
        r = client.get(f"/v1/erasures/{receipt['erasure_id']}", headers=auth)
        assert r.status_code == 200, r.text
        final = r.json()
        assert final["state"] == "complete" and final["completed_at"] is not None
        mine = [r for r in _rows(before + after) if r["customer_id"] in CHAIN]
        assert final["stores"]["master"]["rows"] == len(mine)  # every copy of every event of the chain
        assert final["stores"]["views"]["batch_version"] == 3
        assert 2 in final["stores"]["serving_store"]["versions_removed"]  # the version serving till now
        assert {"speed_store", "answer_cache", "event_index", "master_second_pass"} <= set(final["stores"])
        assert "retention" in final["remains"] and not any(c in r.text for c in CHAIN)

        # a copy re-sent after the erasure is not counted again (skipped by archiver and consumer)
        with EventProducer(kafka_bootstrap) as producer:
            producer.send_obj(before[4])
            producer.send_obj({**after[3], "event_id": "u2-view-again"})
        archive()
        rest = _oracle([e for e in before + after if e["customer_id"] not in CHAIN])
        deadline = time.monotonic() + 60
        while consumer.erasures.skipped < 2 and time.monotonic() < deadline:
            time.sleep(0.2)

        # no route answers for any id of the component; the bystander's answers are exact
        got = answers()
        for customer in CHAIN:
            assert got["profile"][customer] == 404, customer
            series = client.get(f"/v1/customers/{customer}/timeseries?metric=events_total", headers=auth)
            assert series.status_code == 404, customer
            assert state.merger.component_ids(tenant, customer) == [customer]
        assert matches(got, rest, [BYSTANDER]), got
        assert cohort_members() == [BYSTANDER]  # the segment drill-down lists no id of the component

        # no readable Delta version of the master or of any view table holds an id of the component
        tables = [master_path(tmp_path), *sorted(p for p in (Path(tmp_path) / "views").iterdir() if p.is_dir())]
        for path in tables:
            if not DeltaTable.is_deltatable(str(path)):
                continue
            for version in range(DeltaTable(str(path)).version() + 1):
                for customer in CHAIN:
                    assert not _holds(path, version, tenant, customer), (path.name, version, customer)

        # no serving-store file holds a byte of any id; the speed store holds no state of them
        kept = sorted(p.name for p in serving_store.store_dir(tmp_path).glob("*"))
        assert kept == [serving_store.store_path(tmp_path, 3).name]  # the erasure's version only
        files = [p for p in serving_store.store_dir(tmp_path).rglob("*") if p.is_file()]
        assert files and all(c.encode() not in p.read_bytes() for p in files for c in CHAIN)
        served = state.loader.current().watermark
        for customer in CHAIN:
            assert store.customer(tenant, customer, served)["events_total"] == 0, customer
    finally:
        consumer.stop()
        state.close()
