"""Ask the running API about every customer, campaign and cohort table and compare with the truth."""

from __future__ import annotations

import time

import httpx

from .oracle import Truth, iso_ms


def recent_range() -> dict[str, str]:
    """An explicit range around now that covers every test event (the API allows at most 400 days)."""
    now = int(time.time() * 1000)
    return {"start": iso_ms(now - 200 * 86_400_000), "end": iso_ms(now + 86_400_000)}


def _get(http: httpx.Client, url: str, key: str, **params) -> httpx.Response:
    return http.get(url, params=params, headers={"Authorization": f"Bearer {key}"})


def all_differences(url: str, truth: Truth, keys: dict[str, str], limit: int = 20) -> list[str]:
    """Every difference between the API's answers and the truth (empty = all equal).

    Checks each customer's profile, each campaign's totals and each tenant's cohort table.
    """
    out: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for (tenant, customer), _ in sorted(truth.profiles.items()):
            r = _get(http, f"/v1/customers/{customer}/profile", keys[tenant])
            if r.status_code != 200:
                out.append(f"{tenant}/{customer}: HTTP {r.status_code} {r.text[:200]}")
            elif diff := truth.profile_diff((tenant, customer), r.json()["metrics"]):
                out.append(f"{tenant}/{customer}: {'; '.join(diff)}")
            if len(out) >= limit:
                return out
        for (tenant, campaign), _ in sorted(truth.campaigns.items()):
            r = _get(
                http, f"/v1/campaigns/{campaign}/stats", keys[tenant], **recent_range(), granularity="day"
            )
            if r.status_code != 200:
                out.append(f"{tenant}/campaign {campaign}: HTTP {r.status_code} {r.text[:200]}")
            elif diff := truth.campaign_diff((tenant, campaign), r.json()["totals"]):
                out.append(f"{tenant}/campaign {campaign}: {'; '.join(diff)}")
        for tenant in keys:
            r = _get(http, "/v1/cohorts/retention", keys[tenant])
            if r.status_code != 200:
                out.append(f"{tenant}/cohorts: HTTP {r.status_code} {r.text[:200]}")
            elif (got := r.json()["cohorts"]) != truth.cohorts(tenant):
                out.append(f"{tenant}/cohorts: {got} != {truth.cohorts(tenant)}")
    return out[:limit]


def wait_until_equal(url: str, truth: Truth, keys: dict[str, str], timeout_s: float = 90.0) -> float:
    """Seconds until every answer equals the truth; fails with the differences after ``timeout_s``."""
    started = time.monotonic()
    while True:
        diff = all_differences(url, truth, keys)
        if not diff:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"answers differ from the truth after {timeout_s}s:\n" + "\n".join(diff))
        time.sleep(1.0)


def batch_version(url: str) -> int:
    return httpx.get(url + "/readyz", timeout=10).json()["batch_version"]


def wait_for_version(url: str, version: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := batch_version(url)) < version:
        assert time.monotonic() < deadline, f"the API still serves batch version {seen} < {version}"
        time.sleep(0.2)


def wait_archived(data_dir, positions, timeout_s: float = 90.0) -> float:
    """Seconds until the master dataset's committed offsets pass every acknowledged position."""
    from lambdalytics.batch.master import master_path, read_progress

    need: dict[tuple[str, int], int] = {}
    for m in positions:
        need[(m.topic, m.partition)] = max(need.get((m.topic, m.partition), 0), m.offset + 1)
    started = time.monotonic()
    while True:
        offsets = read_progress(master_path(data_dir)).offsets
        behind = {tp: o for tp, o in need.items() if offsets.get(tp, 0) < o}
        if not behind:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"archiver still behind after {timeout_s}s: {behind}"
        time.sleep(0.3)


def master_rows(data_dir) -> list[dict]:
    """(tenant_id, event_id, topic, partition, offset) of every row of the master dataset; none before
    the archiver's first commit creates the table (a fresh system may be asked before that)."""
    from lambdalytics.batch.master import NoMasterDataset, master_path, snapshot

    try:
        _, _, table = snapshot(master_path(data_dir))
    except NoMasterDataset:
        return []
    columns = ["tenant_id", "event_id", "topic", "partition", "offset"]
    return table.to_pyarrow_table(columns=columns).to_pylist()


def wait_master_holds(data_dir, ids: set[tuple[str, str]], timeout_s: float = 90.0) -> list[dict]:
    """Master rows once every (tenant_id, event_id) in ``ids`` has landed."""
    started = time.monotonic()
    while True:
        rows = master_rows(data_dir)
        missing = ids - {(r["tenant_id"], r["event_id"]) for r in rows}
        if not missing:
            return rows
        assert time.monotonic() - started < timeout_s, (
            f"{len(missing)} acknowledged events not archived after {timeout_s}s, e.g. {sorted(missing)[:5]}"
        )
        time.sleep(0.5)
