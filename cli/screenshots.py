"""``python -m lambdalytics.cli.screenshots --out docs/img``: pictures of every widget and the dashboard.

Starts what a user runs — the embedded broker, ``lambdalytics serve`` as a process, demo tenants with
branding, months of generated events (plus a busy last two hours for live wait times), optionally one
archive + ``lambdalytics batch run`` so customers carry RFM segments — then drives Debian's headless
Chromium through Playwright and writes PNGs (desktop and phone widths).

:class:`DemoService` is shared with the browser tests (``tests/web``): the same service, the same data.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from lambdalytics.cli.sources.generator import TENANTS, GeneratorConfig, generate
from lambdalytics.infra.broker import EmbeddedBroker, free_port
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.settings import child_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAY_MS = 86_400_000

BRANDS: dict[str, dict[str, Any]] = {
    "demo-food": {
        "display_name": "Demo Food",
        "primary_color": "#e8590c",
        "currency": "EUR",
        "font": "system",
    },
    "demo-ads": {"display_name": "Demo Ads", "primary_color": "#3b5bdb", "currency": "USD", "font": "system"},
    "demo-saas": {"display_name": "Demo SaaS", "primary_color": "#0c8599", "font": "system"},
}


def demo_events(
    now_ms: int, *, days: int = 120, history_rate: float = 0.004, recent_rate: float = 0.6, seed: int = 7
) -> Iterator[dict]:
    """Months of history for all demo tenants, then two busy hours of food orders ending now.

    Ids of the second stream are prefixed so its orders and sessions never collide with the first."""
    yield from generate(
        GeneratorConfig(
            seed=seed, rate=history_rate, duration_s=days * 86_400, start_ms=now_ms - days * DAY_MS
        )
    )
    recent = GeneratorConfig(
        seed=seed + 1,
        rate=recent_rate,
        duration_s=2 * 3600,
        start_ms=now_ms - 2 * 3600_000,
        tenants=("demo-food",),
    )
    for event in generate(recent):
        for field in ("order_id", "session_id", "ticket_id"):
            if field in event:
                event[field] = "r" + event[field]
        yield event


class DemoService:
    """Broker + ``lambdalytics serve`` subprocess on loopback, with an admin API client.

    Use as a context manager. Every process it starts is stopped on exit, also on failure."""

    def __init__(self, data_dir: Path, *, bootstrap: str | None = None, rate_limit: int = 100_000):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = "adm-" + os.urandom(16).hex()
        self.token_secret = os.urandom(32).hex()
        self.rate_limit = rate_limit
        self._bootstrap = bootstrap
        self._broker: EmbeddedBroker | None = None
        self._api: subprocess.Popen | None = None
        self._log = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def bootstrap(self) -> str:
        assert self._bootstrap
        return self._bootstrap

    @property
    def env(self) -> dict[str, str]:
        return child_env(
            kafka_bootstrap=self.bootstrap,
            data_dir=self.data_dir,
            api_host="127.0.0.1",
            api_port=self.port,
            admin_token=self.admin_token,
            token_secret=self.token_secret,
            rate_limit_per_s=self.rate_limit,
            rate_limit_burst=self.rate_limit,
            batch_poll_seconds=1,
        )

    def __enter__(self) -> DemoService:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 120) -> None:
        (self.data_dir / "run").mkdir(parents=True, exist_ok=True)
        if self._bootstrap is None:
            self._broker = EmbeddedBroker(log_path=self.data_dir / "run" / "broker.log").start()
            self._bootstrap = self._broker.bootstrap
        ensure_topics(self.bootstrap, 3)
        self._log = open(self.data_dir / "run" / "api.log", "ab")  # noqa: SIM115 - closed in stop()
        self._api = subprocess.Popen(
            [sys.executable, "-m", "lambdalytics.cli", "serve", "--embedded"],
            env=self.env,
            stdout=self._log,
            stderr=self._log,
        )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._api is not None and self._api.poll() is not None:
                raise RuntimeError(f"the API exited; see {self.data_dir / 'run' / 'api.log'}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"the API was not ready in {timeout_s}s; see {self.data_dir / 'run' / 'api.log'}")

    def stop(self) -> None:
        if self._api is not None:
            self._api.terminate()
            try:
                self._api.wait(15)
            except subprocess.TimeoutExpired:
                self._api.kill()
                self._api.wait(5)
            self._api = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        self.http.close()

    # ------------------------------------------------------------------ data and credentials

    def produce(self, events: Iterable[dict]) -> int:
        n = 0
        with EventProducer(self.bootstrap, linger_ms=20) as producer:
            for event in events:
                producer.send_obj(event)
                n += 1
        return n

    def speed_seen(self) -> int:
        """Events the API's speed store has taken in (aggregated + skipped duplicates), from /metrics."""
        seen = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(("lambdalytics_speed_events ", "lambdalytics_speed_duplicates ")):
                seen += float(line.split()[1])
        return int(seen)

    def wait_consumed(self, produced: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.speed_seen() < produced:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the speed store saw {self.speed_seen()} of {produced} events")
            time.sleep(0.3)

    def admin(self, method: str, path: str, **kwargs) -> httpx.Response:
        r = self.http.request(method, path, headers={"Authorization": f"Bearer {self.admin_token}"}, **kwargs)
        r.raise_for_status()
        return r

    def create_tenant(self, tenant_id: str, name: str | None = None) -> str:
        return self.admin(
            "POST", "/v1/admin/tenants", json={"tenant_id": tenant_id, "name": name or tenant_id}
        ).json()["api_key"]

    def create_user(self, tenant_id: str, email: str, password: str, role: str = "owner") -> dict:
        """A user of the tenant, through the operator's admin API (what signs in to the dashboard)."""
        body = {"email": email, "role": role, "password": password}
        return self.admin("POST", f"/v1/admin/tenants/{tenant_id}/users", json=body).json()

    def brand(self, tenant_id: str, **branding: Any) -> dict:
        return self.admin("PUT", f"/v1/admin/tenants/{tenant_id}/branding", json=branding).json()

    def embed_token(self, key: str, **body: Any) -> str:
        r = self.http.post("/v1/embed-tokens", json={"ttl_seconds": 3600, **body}, headers=self.auth(key))
        r.raise_for_status()
        return r.json()["token"]

    def get(self, path: str, token: str, **params: Any) -> dict:
        r = self.http.get(path, params=params, headers=self.auth(token))
        r.raise_for_status()
        return r.json()

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def wait_for(self, path: str, token: str, check, timeout_s: float = 60, **params: Any) -> dict:
        """Poll an API answer until ``check(answer)`` holds (the speed store consumes asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while True:
            r = self.http.get(path, params=params, headers=self.auth(token))
            if r.status_code == 200 and check(r.json()):
                return r.json()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: {r.status_code} {r.text[:200]}")
            time.sleep(0.3)

    def batch(self) -> None:
        """Land everything in the master dataset, run one batch, wait until the API serves it."""
        from lambdalytics.batch.archiver import Archiver

        Archiver(self.bootstrap, self.data_dir, max_batch_seconds=1).run(idle_exit_seconds=3)
        log = self.data_dir / "run" / "batch.log"
        with log.open("ab") as out:
            subprocess.run(
                [sys.executable, "-m", "lambdalytics.cli", "batch", "run"],
                env={**self.env, "LAMBDALYTICS_SPARK_DRIVER_MEMORY": "2g"},
                stdout=out,
                stderr=out,
                check=True,
                timeout=900,
            )
        deadline = time.monotonic() + 60
        while self.http.get("/readyz").json().get("batch_version", 0) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the API did not load the batch version")
            time.sleep(0.5)


class HostPage:
    """A page on another origin (``http://localhost:<port>``) that embeds widgets, and serves a logo."""

    LOGO = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="150" height="32" viewBox="0 0 150 32">'
        '<rect width="32" height="32" rx="8" fill="{color}"/>'
        '<path d="M9 20c3-8 11-8 14 0" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round"/>'
        '<text x="40" y="22" font-family="Helvetica, Arial, sans-serif" font-size="16" font-weight="700" '
        'fill="#111827">{name}</text></svg>'
    )

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                found = pages.get(self.path.split("?")[0])
                if found is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", found[0])
                self.send_header("Content-Length", str(len(found[1])))
                self.end_headers()
                self.wfile.write(found[1])

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostPage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, path: str, body: str, content_type: str = "text/html; charset=utf-8") -> str:
        self.pages[path] = (content_type, body.encode())
        return self.origin + path

    def logo(self, path: str, name: str, color: str) -> str:
        return self.add(path, self.LOGO.format(name=name, color=color), "image/svg+xml")


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


# ---------------------------------------------------------------------- screenshots


def _shoot(page, url: str, path: Path, *, width: int, ready: str = "true") -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url)
    page.wait_for_selector(f"[data-ready='{ready}']", timeout=30_000)
    page.wait_for_timeout(400)  # fonts and the chart's first frame
    page.locator("body").screenshot(path=str(path), animations="disabled", scale="css")


def take_screenshots(out: Path, *, batch: bool = True) -> list[Path]:
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with (
        tempfile.TemporaryDirectory(prefix="ll-shots-") as tmp,
        DemoService(Path(tmp)) as svc,
        HostPage() as host,
    ):
        keys = {t: svc.create_tenant(t, BRANDS[t]["display_name"]) for t in TENANTS}
        logo = host.logo("/logo-food.svg", "Demo Food", BRANDS["demo-food"]["primary_color"])
        for tenant, look in BRANDS.items():
            extra = {"logo_url": logo} if tenant == "demo-food" else {}
            svc.brand(tenant, locale="en-US", frame_ancestors=[host.origin], **look, **extra)
        now_ms = int(time.time() * 1000)
        n = svc.produce(demo_events(now_ms, history_rate=0.006, recent_rate=0.15))
        print(f"produced {n:,} events")
        food, ads = keys["demo-food"], keys["demo-ads"]
        svc.wait_consumed(n)
        if batch:
            print("archive + batch run (Spark)…")
            svc.batch()
        customer = svc.embed_token(food, customer_id="food-c00000", cohorts=True)
        campaign = svc.embed_token(ads, campaign_ids=["cmp-00"])
        widgets = {
            "customer-card": f"/embed/customer-card?token={customer}",
            "metric-chart": f"/embed/metric-chart?token={customer}&metric=revenue&granularity=day&days=30",
            "campaign-chart": f"/embed/campaign-chart?token={campaign}&days=30",
            "live-badge": f"/embed/live-badge?token={customer}&window=30m",
            "cohort-heatmap": f"/embed/cohort-heatmap?token={customer}",
        }
        with browser() as b:
            page = b.new_page(device_scale_factor=1)
            for name, path in widgets.items():
                for width, suffix in ((720, ""), (375, "-phone")):
                    target = out / f"{name}{suffix}.png"
                    _shoot(page, svc.url + path + "&locale=en-US", target, width=width)
                    shots.append(target)
                if name == "customer-card":
                    page.set_viewport_size({"width": 720, "height": 900})
            expired = svc.embed_token(food, customer_id="food-c00000", ttl_seconds=1)
            time.sleep(2)
            target = out / "expired.png"
            _shoot(page, f"{svc.url}/embed/customer-card?token={expired}", target, width=520, ready="error")
            shots.append(target)
            shots += _dashboard(b, svc, out)
            page.close()
    return shots


def _dashboard(b, svc: DemoService, out: Path) -> list[Path]:
    email, password = "owner@demo-food.example", secrets.token_urlsafe(12)
    svc.create_user("demo-food", email, password)
    shots = []
    for width, suffix in ((1280, ""), (390, "-phone")):
        context = b.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
        page = context.new_page()
        page.goto(svc.url + "/dashboard?tenant=demo-food")
        page.wait_for_selector("#ll-login:not([hidden])")
        if not suffix:
            target = out / "login.png"
            page.screenshot(path=str(target), animations="disabled")
            shots.append(target)
        page.fill("#ll-email", email)
        page.fill("#ll-password", password)
        page.click("button[type=submit]")
        page.wait_for_selector(".ll-dash")
        page.fill("#ll-customer", "food-c00000")
        page.click("#ll-customer >> xpath=ancestor::form//button")
        page.wait_for_selector(".ll-customer[data-ready='true']")
        page.wait_for_selector(".ll-cohorts[data-ready='true']")
        page.wait_for_timeout(600)
        target = out / f"dashboard{suffix}.png"
        page.screenshot(path=str(target), full_page=True, animations="disabled")
        shots.append(target)
        context.close()
    return shots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--no-batch", action="store_true", help="speed layer only (no RFM segments)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    started = time.monotonic()
    shots = take_screenshots(args.out, batch=not args.no_batch)
    for path in shots:
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    print(f"{len(shots)} screenshots in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
