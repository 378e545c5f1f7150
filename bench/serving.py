"""Serving benchmark: requests/s and p50/p99 of the hot read routes under wrk, next to two references
measured in the same run on the same box — a bare Starlette route answering a constant body of the same
size (same server, same worker count) and nginx serving a static file of that size.

    python bench/serving.py --customers 100000 --customers 1000000 [--duration 10]

Each size gets its own data dir under data/bench/serving-<customers> (kept between runs: preparing 1 M
customers lands 10 M events and runs the Spark batch once). Requests pick a random customer (or campaign)
of a random tenant, with that tenant's key, from 10 k sampled ids. Appends a section to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from importlib.metadata import version
from pathlib import Path

import orjson
from report import write_section
from serving_apps import TAIL_FILE

from batch import PARTITIONS, Stream
from lambdalytics.batch.job import run_batch
from lambdalytics.batch.writer import read_manifest
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.broker import free_port
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.api.params import iso
from lambdalytics.serving.auth import TenantRegistry

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKERS = 2
SAMPLE = 10_000
CACHE_DEFAULT = Settings.model_fields["profile_cache_entries"].default
EVENTS_PER_CUSTOMER = 10
WRK_SCRIPT = """
local lines = {}
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  for line in io.lines(args[1]) do
    local key, path = line:match("^(%S+) (%S+)$")
    lines[#lines + 1] = {key, path}
  end
end
function request()
  local l = lines[math.random(#lines)]
  return wrk.format("GET", l[2], {["Authorization"] = "Bearer " .. l[1]})
end
function done(summary, latency, requests)
  io.write(string.format(
    '\\nRESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"timeouts":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        admin_token="bench-admin-token-0123456789abcdefgh",
        token_secret="bench-token-secret-0123456789abcdefgh",
    )


def prepare(customers: int) -> Path:
    """Master → Spark batch → views for ``customers`` customers, plus a speed tail above W (cached)."""
    data_dir = REPO / "data" / "bench" / f"serving-{customers}"
    if (data_dir / "ready").exists():
        return data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    n_events = customers * EVENTS_PER_CUSTOMER
    print(f"preparing {customers:,} customers ({n_events:,} events)", flush=True)
    Stream(data_dir, n_events).land(n_events)
    manifest = run_batch(_settings(data_dir), show_progress=True)
    assert manifest is not None
    # the speed tail: 1 event in 100 again, above W, for customers the batch already knows
    next_offset = dict(manifest.watermark)
    tail = GeneratorConfig(
        seed=2,
        rate=200,
        duration_s=n_events / 100 / 700,
        customers_per_tenant=max(1000, n_events // 30),
        start_ms=1_767_225_600_000 + int(n_events / 700 * 1000),
    )
    with (data_dir / TAIL_FILE).open("wb") as fh:
        for i, obj in enumerate(generate(tail)):
            if i == n_events // 100:
                break
            event = validate_event(obj)
            tp = (event.topic, zlib.crc32(event.key) % PARTITIONS)
            offset = next_offset.get(tp, 0)
            next_offset[tp] = offset + 1
            fh.write(orjson.dumps([to_row(event), tp[0], tp[1], offset]) + b"\n")
    (data_dir / "ready").touch()
    return data_dir


def request_lines(data_dir: Path) -> dict[str, list[str]]:
    """``key path`` lines per route, for wrk; tenant keys are rotated on every run."""
    registry = TenantRegistry(data_dir / "run" / "tenants.sqlite")
    manifest = read_manifest(data_dir)
    profiles = manifest.table(data_dir, "customer_profile").to_pyarrow_table(
        columns=["tenant_id", "customer_id", "first_seen", "last_seen"]
    )
    tenants = sorted(set(profiles.column("tenant_id").to_pylist()))
    keys = {t: registry.create(t, t) or registry.rotate(t) for t in tenants}
    rng = random.Random(5)
    rows = profiles.to_pylist()
    start = iso(min(r["first_seen"] for r in rows) // 3_600_000 * 3_600_000)
    end = iso(max(r["last_seen"] for r in rows) + 7 * 24 * 3_600_000)
    sample = rng.sample(rows, min(SAMPLE, len(rows)))
    campaigns = manifest.table(data_dir, "campaign_stats").to_pyarrow_table(
        columns=["tenant_id", "campaign_id"]
    )
    pairs = sorted({(r["tenant_id"], r["campaign_id"]) for r in campaigns.to_pylist()})
    return {
        "profile": [f"{keys[r['tenant_id']]} /v1/customers/{r['customer_id']}/profile" for r in sample],
        "timeseries": [
            f"{keys[r['tenant_id']]} /v1/customers/{r['customer_id']}/timeseries?metric=orders"
            f"&granularity=hour&start={start}&end={end}"
            for r in sample
        ],
        "campaign": [
            f"{keys[t]} /v1/campaigns/{c}/stats?granularity=hour&start={start}&end={end}" for t, c in pairs
        ],
        "live orders": [f"{keys[t]} /v1/live/orders?window=30m" for t in tenants],
        "cohorts": [f"{keys[t]} /v1/cohorts/retention" for t in tenants],
    }


def _wait(url: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def _rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (granian's workers)."""
    total, pids = 0, [pid]
    with contextlib.suppress(FileNotFoundError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


@contextlib.contextmanager
def granian(target: str, env: dict[str, str]):
    port = free_port()
    cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--workers", str(WORKERS)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-log", "--factory", target]
    proc = subprocess.Popen(
        cmd, cwd=BENCH, env={**os.environ, **env, "PYTHONPATH": str(BENCH)}, start_new_session=True
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def nginx(body: Path):
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            f"worker_processes {WORKERS}; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};"
            f" fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n"
            f"  server {{ listen 127.0.0.1:{port}; root {body.parent};"
            f" location / {{ default_type application/json; try_files /{body.name} =404; }} }} }}\n"
        )
        proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", tmp])
        try:
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(15)


def wrk(url: str, lines: list[str], connections: int, duration_s: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script, paths = Path(tmp) / "bench.lua", Path(tmp) / "paths.txt"
        script.write_text(WRK_SCRIPT)
        paths.write_text("\n".join(lines) + "\n")
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s", "-s", str(script), url]
            + ["--", str(paths)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result = json.loads(out.split("RESULT ", 1)[1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


async def _asgi_get(app, path: str, key: str) -> int:
    """One GET through an ASGI app in this process: no server, no sockets."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path.split("?")[0],
        "raw_path": path.split("?")[0].encode(),
        "query_string": path.partition("?")[2].encode(),
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {key}".encode()), (b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    status = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def _profile_cache(url: str) -> dict[str, float]:
    """Hits and misses of the profile cache, summed over the workers that answered this scrape
    (each worker has its own cache and its own /metrics)."""
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    out = {"hit": 0.0, "miss": 0.0}
    for line in text.splitlines():
        for result in out:
            if line.startswith(f'lambdalytics_profile_cache_lookups_total{{result="{result}"}}'):
                out[result] += float(line.split()[-1])
    return out


def breakdown(
    data_dir: Path, lines: list[str], body_file: Path, n: int = 5000, others: dict[str, list[str]] | None = None
) -> dict[str, float]:
    """Where a profile request's CPU goes, in this process (CPU µs per request): the merge alone, the
    whole API app, the bare Starlette app — no server or wrk in the way."""
    import asyncio

    from serving_apps import create_api, create_bare

    os.environ.update(
        LAMBDALYTICS_DATA_DIR=str(data_dir),
        LAMBDALYTICS_RATE_LIMIT_PER_S="1e12",
        LAMBDALYTICS_RATE_LIMIT_BURST="1000000000000",
        BENCH_BODY_FILE=str(body_file),
    )
    api, bare = create_api(), create_bare()
    merger = api.state.serving.merger
    requests = [line.split(" ", 1) for line in lines]
    registry = api.state.serving.credentials.registry
    who = {key: registry.tenant_of(key) for key, _ in requests}

    def per_request(fn) -> float:
        started = time.process_time()
        for i in range(n):
            fn(*requests[i % len(requests)])
        return (time.process_time() - started) / n * 1e6

    loop = asyncio.new_event_loop()

    def merge(key, path):
        return merger.profile(who[key], path.split("/")[3])

    def api_get(key, path):
        return loop.run_until_complete(_asgi_get(api, path, key))

    entries, merger.profiles.max_entries = merger.profiles.max_entries, 0  # cold: every answer computed
    out = {"merge_us": per_request(merge), "api_us": per_request(api_get)}
    merger.profiles.max_entries = entries
    per_request(merge)  # fill the profile cache, as polling widgets do
    out |= {"merge_cached_us": per_request(merge), "api_cached_us": per_request(api_get)}
    out["bare_us"] = per_request(lambda key, path: loop.run_until_complete(_asgi_get(bare, path, key)))
    for route, route_lines in (others or {}).items():  # tenant-level answers, from the answer cache
        requests = [line.split(" ", 1) for line in route_lines]
        out[f"api {route}_us"] = per_request(api_get)
    loop.close()
    return out


def measure(customers: int, duration_s: int) -> dict:
    data_dir = prepare(customers)
    lines = request_lines(data_dir)
    env = {
        "LAMBDALYTICS_DATA_DIR": str(data_dir),
        "LAMBDALYTICS_ADMIN_TOKEN": "bench-admin-token-0123456789abcdefgh",
        "LAMBDALYTICS_TOKEN_SECRET": "bench-token-secret-0123456789abcdefgh",
        "LAMBDALYTICS_RATE_LIMIT_PER_S": "100000000",
        "LAMBDALYTICS_RATE_LIMIT_BURST": "100000000",
    }
    results: dict = {"customers": customers, "runs": {}}
    started = time.perf_counter()
    with granian("serving_apps:create_api", env) as (proc, url):
        _wait(url + "/healthz")
        results["load_s"] = time.perf_counter() - started
        results["rss_mib"] = _rss_mib(proc.pid)
        key, path = lines["profile"][0].split(" ", 1)
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req) as response:
            body = response.read()
        results["body_bytes"] = len(body)
        for route in ("profile", "timeseries", "campaign", "live orders", "cohorts"):
            for conns in (64, 256):
                print(f"  api {route} @{conns}", flush=True)
                results["runs"][("api", route, conns)] = wrk(url, lines[route], conns, duration_s)
        results["cache"] = _profile_cache(url)
    # every profile computed per request: what a customer's first read (or a changed one) costs
    with granian("serving_apps:create_api", env | {"LAMBDALYTICS_PROFILE_CACHE_ENTRIES": "0"}) as (_, url):
        _wait(url + "/healthz")
        for conns in (64, 256):
            print(f"  api, profile cache off @{conns}", flush=True)
            results["runs"][("api, cache off", "profile", conns)] = wrk(
                url, lines["profile"], conns, duration_s
            )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # nginx workers run as nobody
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(b'{"pad":"' + b"x" * (len(body) - 10) + b'"}')
        body_file.chmod(0o644)
        with granian("serving_apps:create_bare", {"BENCH_BODY_FILE": str(body_file)}) as (_, url):
            _wait(url + "/")
            for conns in (64, 256):
                print(f"  bare starlette @{conns}", flush=True)
                results["runs"][("bare", "profile", conns)] = wrk(url, lines["profile"], conns, duration_s)
        with nginx(body_file) as (_, url):
            _wait(url + "/")
            for conns in (64, 256):
                print(f"  nginx @{conns}", flush=True)
                results["runs"][("nginx", "profile", conns)] = wrk(url, lines["profile"], conns, duration_s)
        results["in_process"] = breakdown(
            data_dir,
            lines["profile"],
            body_file,
            others={r: lines[r] for r in ("campaign", "live orders", "cohorts")},
        )
        results["load_1m"] = os.getloadavg()[0]
    return results


def report(all_results: list[dict], duration_s: int) -> None:
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        "## Serving: hot read routes under wrk vs a bare Starlette route and nginx",
        "",
        f"Run {today}; wrk 4.1 (2 threads, {duration_s} s per run) on loopback, granian {version('granian')} "
        f"({WORKERS} workers, asgi), fastapi {version('fastapi')}, starlette {version('starlette')}, nginx "
        f"({WORKERS} workers); 2 cores shared by server and wrk. Every request picks one of {SAMPLE:,} sampled "
        "customers (or the campaigns) of a random tenant with that tenant's key; the API merges the Spark batch "
        "views with a speed tail (1 event per 100 above W) in the embedded store. References answer a "
        "constant body of the profile's size. *vs bare* = API req/s ÷ bare-route req/s of the same run.",
        "",
    ]
    for r in all_results:
        lines += [
            f"**{r['customers']:,} customers** ({r['customers'] * EVENTS_PER_CUSTOMER:,} events): start-up with "
            f"the index loaded {r['load_s']:.1f} s, RSS {r['rss_mib']:,.0f} MiB ({WORKERS} workers), profile body "
            f"{r['body_bytes']} B.",
            "",
            f"In-process CPU per profile request (one thread, no server, no wrk): merge "
            f"{r['in_process']['merge_us']:.0f} µs computed, {r['in_process']['merge_cached_us']:.1f} µs from "
            f"the profile cache; whole API app {r['in_process']['api_us']:.0f} µs computed, "
            f"{r['in_process']['api_cached_us']:.0f} µs cached; bare Starlette app "
            f"{r['in_process']['bare_us']:.0f} µs. Whole API app, tenant-level routes (answer cache on, as "
            "polled): "
            + ", ".join(
                f"{k.removeprefix('api ').removesuffix('_us')} {v:.0f} µs"
                for k, v in r["in_process"].items()
                if k.startswith("api ")
            )
            + f". 1-min load average after the runs: {r.get('load_1m', float('nan')):.1f}.",
            "",
            f"The *api* rows run with the profile cache on (the default, {CACHE_DEFAULT:,} entries per worker): "
            f"the {SAMPLE:,} sampled customers are polled again and again, as widgets do; one worker's scrape "
            f"after the runs counted {r['cache']['hit']:,.0f} hits and {r['cache']['miss']:,.0f} misses. "
            "*api, cache off* computes every profile per request (a first read, or one after the customer's "
            "events changed).",
            "",
            "| server | route | conns | req/s | p50 ms | p99 ms | max ms | non-2xx | vs bare req/s | vs bare p99 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (server, route, conns), run in r["runs"].items():
            bare = r["runs"][("bare", "profile", conns)]
            lines.append(
                f"| {server} | {route} | {conns} | {run['rps']:,.0f} | {run['p50_us'] / 1000:.1f} | "
                f"{run['p99_us'] / 1000:.1f} | {run['max_us'] / 1000:.0f} | {run['non2xx'] + run['socket_errors']} | "
                f"{run['rps'] / bare['rps']:.2f} | {run['p99_us'] / bare['p99_us']:.2f} |"
            )
        lines.append("")
    if len(all_results) >= 2:
        small, large = all_results[0], all_results[-1]
        per_customer = (large["rss_mib"] - small["rss_mib"]) / (large["customers"] - small["customers"])
        target = large["customers"] * 10
        need_gib = (large["rss_mib"] + per_customer * (target - large["customers"])) / 1024
        lines += [
            f"Scaling: RSS grows by {per_customer * 1024:.1f} KiB per customer ({WORKERS} workers, each holding "
            f"the whole index); start-up with the index grows from {small['load_s']:.0f} s to "
            f"{large['load_s']:.0f} s. {target:,} customers would need about {need_gib:,.0f} GiB at that slope "
            f"(projected, not run: this box has {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} "
            "GiB) — the next size belongs on Pinot or a compact index, see docs/serving.md.",
            "",
        ]
    write_section(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, action="append", help="customers loaded (repeatable)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("nginx"):
        sys.exit("wrk and nginx are needed (make bench installs them: apt-get install wrk nginx-light)")
    results = []
    for customers in args.customers or [1_000_000]:
        print(f"serving bench with {customers:,} customers", flush=True)
        results.append(measure(customers, args.duration))
    report(results, args.duration)


if __name__ == "__main__":
    main()
