"""The real service for the browser tests: the embedded broker, ``lambdalytics serve`` as a process,
three branded demo tenants with generated events, a host page on another origin, and Chromium."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lambdalytics.cli.screenshots import CHROMIUM, DemoService, HostPage, browser, demo_events
from lambdalytics.cli.sources.generator import TENANTS
from lambdalytics.serving.api.routes.web import DIST

BRANDS = {
    "demo-food": {"display_name": "Demo Food", "primary_color": "#e8590c", "currency": "EUR"},
    "demo-ads": {"display_name": "Demo Ads", "primary_color": "#5f3dc4", "currency": "USD"},
    "demo-saas": {"display_name": "Demo SaaS"},  # defaults: no currency, nobody may frame its widgets
}


@dataclass
class Demo:
    svc: DemoService
    host: HostPage
    keys: dict[str, str]
    logo: str
    owners: dict[str, tuple[str, str]]  # tenant -> (email, password) of its owner

    @property
    def url(self) -> str:
        return self.svc.url


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    if not (DIST / "app.js").exists():
        pytest.skip("the web front-end is not built: make web")


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Demo:
    _require_browser()
    with (
        DemoService(
            tmp_path_factory.mktemp("web"), bootstrap=os.environ.get("LAMBDALYTICS_KAFKA_BOOTSTRAP")
        ) as svc,
        HostPage() as host,
    ):
        keys = {t: svc.create_tenant(t, BRANDS[t]["display_name"]) for t in TENANTS}
        owners = {t: (f"owner@{t}.example", secrets.token_urlsafe(16)) for t in TENANTS}
        for tenant, (email, password) in owners.items():
            svc.create_user(tenant, email, password)
        logo = host.logo("/logo.svg", "Demo Food", BRANDS["demo-food"]["primary_color"])
        svc.brand("demo-food", **BRANDS["demo-food"], logo_url=logo, frame_ancestors=[host.origin])
        svc.brand("demo-ads", **BRANDS["demo-ads"], frame_ancestors=["https://ads.example.com"])
        svc.brand("demo-saas", **BRANDS["demo-saas"])
        produced = svc.produce(
            demo_events(int(time.time() * 1000), days=40, history_rate=0.001, recent_rate=0.2)
        )
        svc.wait_consumed(produced)
        yield Demo(svc, host, keys, logo, owners)


@pytest.fixture(scope="session")
def chromium(demo):
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1024, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
