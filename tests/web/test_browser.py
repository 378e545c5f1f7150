"""The dashboard and the widgets in Debian's headless Chromium against the running service.

Each widget must show the numbers the API returns for the same token (raw values in ``data-value``,
and the visible text formatted independently here), expired and foreign tokens must show clear messages
and no data, live widgets must update without a reload, no page, script or storage may ever hold a
tenant key, and the dashboard signs a user in with email and password to a server-side session.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import quote

import httpx
import pytest

from lambdalytics.batch.archiver import run_archiver
from lambdalytics.infra.kafka_io import EventProducer
from lambdalytics.serving.auth import TokenSigner
from lambdalytics.serving.branding import Branding, css_variables

pytestmark = pytest.mark.browser

CUSTOMER, OTHER = "food-c00000", "food-c00001"
SYMBOL = {"EUR": "€", "USD": "$"}


# ---------------------------------------------------------------------- formatting, independently of the page


def _round(value: float, places: int) -> Decimal:
    """What Intl.NumberFormat does: the exact binary value, rounded half away from zero."""
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def money(value: float, currency: str) -> str:
    text = f"{SYMBOL[currency]}{_round(abs(value), 2):,.2f}"
    return "-" + text if value < 0 else text


def count(value: int) -> str:
    return f"{value:,}"


def percent(share: float, places: int = 1) -> str:
    text = f"{_round(share * 100, places):f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def same(dom: str | None, api) -> bool:
    if api is None:
        return dom == ""
    if isinstance(api, bool) or not isinstance(api, int | float):
        return dom == str(api)
    return dom != "" and float(dom) == float(api)


def embed(demo, widget: str, token: str, **params) -> str:
    query = "&".join(f"{k}={quote(str(v))}" for k, v in {"locale": "en-US", "refresh": 0, **params}.items())
    return f"{demo.url}/embed/{widget}?token={token}&{query}"


def ready(page, selector: str = ".ll-widget") -> None:
    page.wait_for_selector(f"{selector}[data-ready='true']")


# ---------------------------------------------------------------------- widgets show the API's numbers


def test_customer_card_shows_the_api_numbers(demo, page):
    token = demo.svc.embed_token(demo.keys["demo-food"], customer_id=CUSTOMER)
    page.goto(embed(demo, "customer-card", token))
    ready(page)
    api = demo.svc.get(f"/v1/customers/{CUSTOMER}/profile", token)
    metrics = api["metrics"]
    for name, value in metrics.items():  # every metric, in the "All metrics" table
        cell = page.locator(f".ll-kv [data-metric='{name}']")
        assert same(cell.get_attribute("data-value"), value), (name, cell.get_attribute("data-value"), value)
    tiles = page.locator(".ll-stat [data-metric]")
    assert tiles.count() >= 3
    for i in range(tiles.count()):
        tile = tiles.nth(i)
        name, unit = tile.get_attribute("data-metric"), tile.get_attribute("data-unit")
        assert same(tile.get_attribute("data-value"), metrics[name])
        if unit == "currency":
            assert tile.inner_text() == money(metrics[name], "EUR")
        elif unit == "count":
            assert tile.inner_text() == count(metrics[name])
    assert page.locator(".ll-who-id").inner_text() == CUSTOMER
    assert page.locator("[data-segment]").get_attribute("data-segment") == (api["rfm"]["segment"] or "")
    assert page.locator(".ll-fresh").get_attribute("data-batch-version") == str(
        api["freshness"]["batch_version"]
    )


def test_metric_chart_shows_the_api_points(demo, page):
    token = demo.svc.embed_token(demo.keys["demo-food"], customer_id=CUSTOMER)
    page.goto(embed(demo, "metric-chart", token, metric="revenue", granularity="day", days=30))
    ready(page)
    card = page.locator(".ll-metric-chart")
    api = demo.svc.get(
        f"/v1/customers/{CUSTOMER}/timeseries",
        token,
        metric="revenue",
        granularity="day",
        start=card.get_attribute("data-start"),
        end=card.get_attribute("data-end"),
    )
    assert api["points"], "the demo customer has revenue in the last 30 days"
    page.get_by_text("Data table").click()  # the chart's numbers, as a table
    rows = page.locator(".ll-table tbody tr")
    assert rows.count() == len(api["points"])
    for i, point in enumerate(api["points"]):
        row = rows.nth(i)
        assert row.get_attribute("data-ts") == point["ts"]
        assert same(row.locator("td").get_attribute("data-value"), point["value"])
        assert row.locator("td").inner_text() == money(point["value"], "EUR")
    total = sum(p["value"] for p in api["points"])
    headline = page.locator(".ll-big")
    assert float(headline.get_attribute("data-value")) == pytest.approx(total, abs=1e-6)
    assert headline.inner_text() == money(total, "EUR")
    assert page.locator(".ll-chart canvas").count() >= 1


def test_campaign_chart_shows_the_api_totals_and_points(demo, page):
    token = demo.svc.embed_token(demo.keys["demo-ads"], campaign_ids=["cmp-00"])
    page.goto(embed(demo, "campaign-chart", token, days=30))
    ready(page)
    card = page.locator(".ll-campaign")
    api = demo.svc.get(
        "/v1/campaigns/cmp-00/stats",
        token,
        granularity="day",
        start=card.get_attribute("data-start"),
        end=card.get_attribute("data-end"),
    )
    for name, value in api["totals"].items():
        tile = page.locator(f".ll-stat [data-metric='{name}']")
        assert same(tile.get_attribute("data-value"), value), name
    assert page.locator(".ll-stat [data-metric='impressions']").inner_text() == count(
        api["totals"]["impressions"]
    )
    assert page.locator(".ll-stat [data-metric='spend']").inner_text() == money(api["totals"]["spend"], "USD")
    if api["totals"]["ctr"] is not None:
        assert page.locator(".ll-stat [data-metric='ctr']").inner_text() == percent(api["totals"]["ctr"], 2)
    rows = page.locator(".ll-table tbody tr")
    assert rows.count() == len(api["points"]) > 0
    for i, point in enumerate(api["points"]):
        for name in ("impressions", "clicks", "spend", "conversions"):
            assert same(
                rows.nth(i).locator(f"[data-metric='{name}']").get_attribute("data-value"), point[name]
            )
    page.get_by_role("tab", name="Spend").click()  # the chart switches series, keyboard-reachable tabs
    assert page.get_by_role("tab", name="Spend").get_attribute("aria-selected") == "true"


def test_cohort_heatmap_shows_the_api_table(demo, page):
    token = demo.svc.embed_token(demo.keys["demo-food"], cohorts=True)
    page.goto(embed(demo, "cohort-heatmap", token, months=36))
    ready(page)
    api = demo.svc.get("/v1/cohorts/retention", token)["cohorts"]
    rows = page.locator(".ll-heat tbody tr")
    assert rows.count() == len(api) > 1
    for i, cohort in enumerate(api):
        row = rows.nth(i)
        assert row.get_attribute("data-cohort") == cohort["cohort"]
        assert row.get_attribute("data-size") == str(cohort["size"])
        cells = row.locator("td[data-value]")
        assert cells.count() == len(cohort["retention"])
        for k, share in enumerate(cohort["retention"]):
            assert same(cells.nth(k).get_attribute("data-value"), share)
            assert cells.nth(k).inner_text() == percent(share), (cohort["cohort"], k)
    # not colour alone: real table headers for every row and column
    assert page.locator(".ll-heat th[scope=row]").count() == len(api)
    assert page.locator(".ll-heat th[scope=col]").count() >= 3


def _live(demo, page, token: str, window: str) -> tuple[dict, dict]:
    def dom():
        return {
            n: page.locator(f"[data-metric='{n}']").get_attribute("data-value")
            for n in ("avg_wait_seconds", "p90_wait_seconds", "orders_in_progress")
        }

    return dom(), demo.svc.get("/v1/live/orders", token, window=window)


def test_live_badge_matches_the_api_and_refreshes_without_a_reload(demo, page):
    food = demo.keys["demo-food"]
    token = demo.svc.embed_token(food, customer_id=CUSTOMER)
    before = demo.svc.get("/v1/live/orders", token, window="7d")
    page.goto(embed(demo, "live-badge", token, window="7d", refresh=2))
    ready(page)
    dom, after = _live(demo, page, token, "7d")
    # windows slide with the clock: the page's answer is the API's at some moment between the two reads
    assert any(all(same(dom[k], api[k]) for k in dom) for api in (before, after)), (dom, before, after)
    shown = page.locator("[data-metric='avg_wait_seconds']").inner_text()
    assert "min" in shown or " s" in shown  # a humanised duration, not raw seconds
    page.evaluate("window.__noReload = 'still here'")

    start = after["orders_in_progress"]
    now = int(time.time() * 1000)
    demo.svc.produce(
        {
            "event_id": f"live-{now}-{i}",
            "tenant_id": "demo-food",
            "customer_id": CUSTOMER,
            "event_type": "order_placed",
            "order_id": f"live-{now}-{i}",
            "event_time": now,
        }
        for i in range(3)
    )
    demo.svc.wait_for("/v1/live/orders", token, lambda a: a["orders_in_progress"] == start + 3, window="7d")
    cell = page.locator("[data-metric='orders_in_progress']")
    page.wait_for_function(
        "n => document.querySelector(\"[data-metric='orders_in_progress']\").dataset.value === String(n)",
        arg=start + 3,
        timeout=20_000,
    )
    assert cell.inner_text() == count(start + 3)
    assert page.evaluate("window.__noReload") == "still here"
    assert page.locator(".ll-fresh").get_attribute("data-state") in ("live", "stale")


def test_live_widgets_change_without_polling_when_the_server_pushes(demo, page):
    """refresh=3600: a poll would come an hour later; the numbers change within seconds, so they came
    over GET /v1/live/stream, and the page made no polled read at all."""
    food = demo.keys["demo-food"]
    token = demo.svc.embed_token(food, customer_id=CUSTOMER)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(embed(demo, "live-badge", token, window="7d", refresh=3600))
    ready(page)
    start = int(page.locator("[data-metric='orders_in_progress']").get_attribute("data-value"))
    now = int(time.time() * 1000)
    demo.svc.produce(
        {
            "event_id": f"push-{now}-{i}",
            "tenant_id": "demo-food",
            "customer_id": CUSTOMER,
            "event_type": "order_placed",
            "order_id": f"push-{now}-{i}",
            "event_time": now,
        }
        for i in range(2)
    )
    page.wait_for_function(
        "n => Number(document.querySelector(\"[data-metric='orders_in_progress']\").dataset.value) >= n",
        arg=start + 2,
        timeout=20_000,
    )
    assert [u for u in requests if "/v1/live/stream" in u]
    assert not [u for u in requests if "/v1/live/orders" in u]  # nothing polled


# ---------------------------------------------------------------------- tokens: expired, foreign, invalid


def test_an_expired_link_says_so(demo, page):
    signer = TokenSigner(demo.svc.token_secret)
    expired, _ = signer.issue("demo-food", CUSTOMER, 60, now=time.time() - 3600)
    page.goto(embed(demo, "customer-card", expired))
    page.wait_for_selector("[data-ready='error']")
    message = page.get_by_role("alert").inner_text()
    assert "This link has expired — ask Demo Food for a new one" in message
    assert page.locator("[data-metric]").count() == 0


def test_a_link_expiring_while_open_stops_refreshing_and_says_so(demo, page):
    signer = TokenSigner(demo.svc.token_secret)
    token, _ = signer.issue("demo-food", CUSTOMER, 10)  # long enough to load on a busy box
    page.goto(embed(demo, "live-badge", token, window="30m", refresh=2))
    ready(page)
    page.wait_for_selector(".ll-state-expired", timeout=40_000)
    assert "This link has expired" in page.locator(".ll-state-expired").inner_text()
    assert page.locator("[data-metric]").count() == 0


def test_a_customer_token_cannot_show_another_customer(demo, page):
    food = demo.keys["demo-food"]
    token = demo.svc.embed_token(food, customer_id=CUSTOMER)
    other = demo.svc.get(f"/v1/customers/{OTHER}/profile", food)["metrics"]
    for widget in ("customer-card", "metric-chart"):
        page.goto(embed(demo, widget, token, customer=OTHER))
        page.wait_for_selector("[data-ready='error']")
        assert "Not available" in page.get_by_role("alert").inner_text()
        assert page.locator("[data-metric]").count() == 0
        html = page.content()
        assert OTHER not in page.locator(".ll-body").inner_text()
        for name in ("net_revenue", "revenue"):
            assert money(other[name], "EUR") not in html
    # the campaign of another tenant's token, and a campaign the token does not name
    ads = demo.svc.embed_token(demo.keys["demo-ads"], campaign_ids=["cmp-00"])
    page.goto(embed(demo, "campaign-chart", ads, campaign="cmp-01"))
    page.wait_for_selector("[data-ready='error']")
    assert "Not available" in page.get_by_role("alert").inner_text()


def test_a_tenant_key_in_an_embed_url_is_never_used(demo, page):
    key = demo.keys["demo-food"]
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url + " " + str(r.headers)))
    page.goto(embed(demo, "customer-card", key))
    page.wait_for_selector("[data-ready='error']")
    assert "This link is not valid" in page.get_by_role("alert").inner_text()
    assert not [r for r in requests if "/v1/" in r], "the page must not call the API with a tenant key"
    assert key not in page.content()


# ---------------------------------------------------------------------- the dashboard


def sign_in_on_page(demo, page, email: str, password: str) -> None:
    page.wait_for_selector("#ll-login:not([hidden])")
    page.fill("#ll-email", email)
    page.fill("#ll-password", password)
    with page.expect_navigation():  # the POST, its 303 and the page it leads to
        page.click("#ll-login button[type=submit]")


def test_dashboard_signs_a_user_in_to_a_server_side_session(demo, page):
    key = demo.keys["demo-food"]
    email, password = demo.owners["demo-food"]
    seen: list[str] = []

    def record(response):
        seen.append(response.url)
        seen.append(str(response.headers))
        with contextlib.suppress(Exception):  # redirects have no body
            seen.append(response.text())

    page.on("response", record)
    page.goto(f"{demo.url}/dashboard")
    sign_in_on_page(demo, page, email, "not the password at all")
    page.wait_for_selector("#ll-login-failed")
    assert "not accepted" in page.locator("#ll-login-failed").inner_text()
    sign_in_on_page(demo, page, email, key)  # the tenant API key is no password
    page.wait_for_selector("#ll-login-failed")

    sign_in_on_page(demo, page, email, password)
    ready(page, ".ll-live")
    assert page.locator(".ll-brand").get_by_role("img").get_attribute("src") == demo.logo
    assert page.locator("#ll-account-email").inner_text() == email
    assert page.locator("#ll-account-role").inner_text() == "Owner"
    page.fill("#ll-customer", CUSTOMER)
    page.press("#ll-customer", "Enter")
    ready(page, ".ll-customer")
    ready(page, ".ll-cohorts")
    profile = demo.svc.get(f"/v1/customers/{CUSTOMER}/profile", key)["metrics"]
    cell = page.locator(".ll-customer .ll-kv [data-metric='orders']")
    assert same(cell.get_attribute("data-value"), profile["orders"])

    cookies = {c["name"]: c for c in page.context.cookies()}
    assert set(cookies) == {"ll_session"}  # the sign-in form's CSRF cookie is gone
    session = cookies["ll_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/"
    assert not session["secure"]  # plain http on loopback; over TLS it is Secure
    assert page.evaluate("document.cookie") == "", "the script never sees the session"
    storage = page.evaluate("JSON.stringify([sessionStorage, localStorage])")
    assert key not in storage and session["value"] not in storage
    assert key not in page.url and "#token" not in page.url and key not in page.content()
    assert not [s for s in seen if key in s], "no response (page, redirect, script, API) may carry the key"
    forged = page.evaluate(
        "fetch('/v1/embed-tokens', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        " body: '{}'}).then(r => r.status)"
    )
    assert forged == 403, "the cookie alone cannot change anything: writes need the session's CSRF token"

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#ll-login:not([hidden])")
    assert "signed out" in page.locator("#ll-login-signed-out").inner_text()
    copied = httpx.get(f"{demo.url}/v1/session", cookies={"ll_session": session["value"]})
    assert copied.status_code == 401, "sign-out revokes the session at once, copies of the cookie too"


def test_an_owner_invites_a_viewer_who_sets_a_password_and_signs_in(demo, page, chromium):
    email, password = demo.owners["demo-ads"]
    page.goto(f"{demo.url}/dashboard")
    sign_in_on_page(demo, page, email, password)
    page.wait_for_selector("#ll-team tbody tr")
    page.fill("#ll-invite-email", "sam@demo-ads.example")
    page.select_option("#ll-invite-role", "viewer")
    page.click("#ll-invite-form button[type=submit]")
    invite = page.locator("#ll-invite-token code").first.inner_text()
    assert invite.startswith("lli_")
    row = page.locator("#ll-team tr[data-email='sam@demo-ads.example']")
    row.wait_for()
    assert "invited" in row.inner_text()

    other = chromium.new_context()  # the colleague's own browser
    colleague = other.new_page()
    colleague.goto(f"{demo.url}/dashboard/invite")
    colleague.fill("#ll-invite-code", invite)
    colleague.fill("#ll-new-password", "a colleague's long passphrase")
    with colleague.expect_navigation():
        colleague.click("#ll-invite button[type=submit]")
    assert "password is set" in colleague.locator("#ll-login-invited").inner_text()
    sign_in_on_page(demo, colleague, "sam@demo-ads.example", "a colleague's long passphrase")
    colleague.wait_for_selector(".ll-live[data-ready='true']")
    assert colleague.locator("#ll-account-role").inner_text() == "Viewer"
    assert colleague.locator("#ll-team").count() == 0, "only owners see the Team panel"
    other.close()

    page.reload()
    page.wait_for_selector("#ll-team tr[data-email='sam@demo-ads.example']")
    assert "active" in page.locator("#ll-team tr[data-email='sam@demo-ads.example']").inner_text()
    page.locator("#ll-team tr[data-email='sam@demo-ads.example'] button").click()
    page.wait_for_selector("#ll-team tr[data-email='sam@demo-ads.example']", state="detached")
    assert "removed" in page.locator("#ll-team-status").inner_text()


def test_no_page_or_asset_contains_a_tenant_key(demo):
    client = httpx.Client(base_url=demo.url, timeout=30)  # its own cookie jar: a browser of its own
    token = demo.svc.embed_token(demo.keys["demo-food"], customer_id=CUSTOMER)
    bodies = [
        client.get(p).text for p in ("/dashboard", "/embed/widget.js", "/assets/app.js", "/assets/app.css")
    ]
    bodies += [client.get(f"/embed/{w}?token={token}").text for w in ("customer-card", "live-badge")]
    page = client.get("/dashboard")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    email, password = demo.owners["demo-food"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with_key = client.post(
        "/dashboard/login",
        content=f"csrf={csrf}&email={quote(email)}&key={demo.keys['demo-food']}",
        headers=form,
    )
    assert with_key.status_code == 303 and with_key.headers["location"] == "/dashboard?login=failed"
    login = client.post(
        "/dashboard/login",
        content=f"csrf={csrf}&email={quote(email)}&password={quote(password)}",
        headers=form,
    )
    assert login.status_code == 303 and "ll_session=" in login.headers["set-cookie"]
    bodies += [
        with_key.text,
        str(with_key.headers),
        login.text,
        str(login.headers),
        client.get("/dashboard").text,
    ]
    for key in demo.keys.values():
        assert not [b for b in bodies if key in b]
    assert not [b for b in bodies if "llk_" in b]
    client.close()


# ---------------------------------------------------------------------- headers, branding, framing


def test_csp_and_frame_ancestors_follow_the_tenant_branding(demo):
    client = demo.svc.http
    food = demo.svc.embed_token(demo.keys["demo-food"], customer_id=CUSTOMER)
    ads = demo.svc.embed_token(demo.keys["demo-ads"], campaign_ids=["cmp-00"])
    saas = demo.svc.embed_token(demo.keys["demo-saas"])
    expired, _ = TokenSigner(demo.svc.token_secret).issue("demo-food", CUSTOMER, 60, now=time.time() - 3600)

    def csp(path: str) -> dict[str, str]:
        r = client.get(path)
        assert r.status_code == 200
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        return dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))

    page = csp(f"/embed/customer-card?token={food}")
    assert page["frame-ancestors"] == demo.host.origin
    assert page["img-src"] == f"'self' data: {demo.host.origin}"  # the logo's origin
    assert page["script-src"] == "'self'" and page["default-src"] == "'none'"
    assert page["connect-src"] == "'self'"
    assert csp(f"/embed/campaign-chart?token={ads}")["frame-ancestors"] == "https://ads.example.com"
    assert csp(f"/embed/live-badge?token={saas}")["frame-ancestors"] == "'none'"
    assert csp(f"/embed/live-badge?token={expired}")["frame-ancestors"] == demo.host.origin
    assert csp("/embed/live-badge?token=garbage")["frame-ancestors"] == "'none'"
    assert csp("/dashboard")["frame-ancestors"] == "'none'"
    assert client.get("/dashboard").headers["x-frame-options"] == "DENY"


def test_the_tenant_colour_is_applied(demo, page):
    admin_color = "#087f5b"
    token = demo.svc.embed_token(demo.keys["demo-food"], customer_id=CUSTOMER)

    def rgb(hex_color: str) -> str:
        return "rgb({}, {}, {})".format(*(int(hex_color[i : i + 2], 16) for i in (1, 3, 5)))

    def brand_text() -> str:
        return page.locator(".ll-details > summary").first.evaluate("e => getComputedStyle(e).color")

    page.goto(embed(demo, "customer-card", token))
    ready(page)
    food = Branding(primary_color="#e8590c")
    assert brand_text() == rgb(css_variables(food)["--ll-brand-text"])
    before = demo.svc.admin("GET", "/v1/admin/tenants/demo-food/branding").json()
    before.pop("tenant_id")
    try:
        demo.svc.brand("demo-food", **{**before, "primary_color": admin_color})
        page.reload()
        ready(page)
        assert brand_text() == rgb(css_variables(Branding(primary_color=admin_color))["--ll-brand-text"])
    finally:
        demo.svc.brand("demo-food", **before)


def test_the_script_tag_embeds_an_iframe_on_an_allowed_origin_only(demo, page):
    food = demo.keys["demo-food"]
    token = demo.svc.embed_token(food, customer_id=CUSTOMER)
    snippet = (
        f'<script src="{demo.url}/embed/widget.js" data-widget="live-badge" data-token="{token}" '
        'data-window="7d" data-locale="en-US" data-refresh="0"></script>'
    )
    host = "<!doctype html><title>Host</title><h1>A shop</h1>"
    allowed = demo.host.add("/shop.html", host + snippet)
    page.goto(allowed)
    frame = page.frame_locator("iframe[data-lambdalytics='live-badge']")
    frame.locator(".ll-live[data-ready='true']").wait_for()
    dom = frame.locator("[data-metric='orders_in_progress']").get_attribute("data-value")
    api = demo.svc.get("/v1/live/orders", token, window="7d")
    assert same(dom, api["orders_in_progress"])
    page.wait_for_function(
        "() => parseInt(document.querySelector('iframe').style.height) > 170", timeout=10_000
    )  # resized by the widget's postMessage

    # the same page from an origin the tenant did not list: the browser refuses to frame the widget
    other = allowed.replace("http://localhost:", "http://127.0.0.1:")
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text))
    page.goto(other)
    page.wait_for_selector("iframe[data-lambdalytics]")
    page.wait_for_timeout(1500)
    child = page.frames[1]
    assert child.url.startswith("chrome-error://") or child.locator(".ll-root").count() == 0
    assert any("frame-ancestors" in text for text in refused)


@pytest.mark.parametrize(
    "widget", ["customer-card", "metric-chart", "campaign-chart", "live-badge", "cohort-heatmap"]
)
def test_widgets_fit_a_360_px_phone(demo, page, widget):
    tokens = {
        "campaign-chart": demo.svc.embed_token(demo.keys["demo-ads"], campaign_ids=["cmp-00"]),
    }
    token = tokens.get(widget) or demo.svc.embed_token(
        demo.keys["demo-food"], customer_id=CUSTOMER, cohorts=True
    )
    page.set_viewport_size({"width": 360, "height": 800})
    page.goto(embed(demo, widget, token))
    ready(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_the_dashboard_quality_panel_shows_the_api_figures(demo, page):
    """Runs the archiver over the demo's broker (the quality ledger is the archiver's), with one record
    that breaks the contract, then compares the panel with ``GET /v1/quality`` for the same tenant."""
    key = demo.keys["demo-food"]
    with EventProducer(demo.svc.bootstrap) as producer:
        producer.send_raw("events.behavioral", b'{"event_id": "broken"', key=b"demo-food:c1")
    run_archiver(demo.svc.bootstrap, demo.svc.data_dir, max_batch_seconds=0.5, idle_exit_seconds=2.0)
    answer = demo.svc.get("/v1/quality", key, window="24h")
    assert answer["metrics"]["dead_letters"]["by_reason"].get("invalid_json", 0) >= 1

    email, password = demo.owners["demo-food"]
    page.goto(f"{demo.url}/dashboard")
    sign_in_on_page(demo, page, email, password)
    ready(page, ".ll-quality")
    panel = page.locator(".ll-quality")
    for name in ("duplicate_rate", "late_event_rate", "attributed_order_share", "identified_event_share"):
        value = answer["metrics"][name]["value"]
        shown = panel.locator(f"[data-metric='{name}'] .ll-live-value").inner_text()
        assert shown == ("—" if value is None else percent(value)), name
    dead = answer["metrics"]["dead_letters"]
    assert panel.locator("[data-metric='dead_letters'] h3").inner_text().endswith(count(dead["total"]))
    for reason, n in dead["by_reason"].items():
        assert panel.locator(f"[data-reason='{reason}']").inner_text() == f"{reason}: {count(n)}"
    topics = sorted(answer["metrics"]["seconds_since_last_event"])
    shown = panel.locator("[data-topic]").evaluate_all("els => els.map(e => e.dataset.topic)")
    assert topics and sorted(shown) == topics


def test_the_dashboard_segments_panel_drills_down_to_a_customer_card(demo, page):
    """The segments table shows ``GET /v1/segments`` for the chosen grouping and metric; a segment lists
    the customers ``GET /v1/segments/customers`` pages through, and a customer opens its card."""
    key = demo.keys["demo-food"]
    email, password = demo.owners["demo-food"]
    page.goto(f"{demo.url}/dashboard?by=rfm_segment&segment_metric=revenue")
    sign_in_on_page(demo, page, email, password)
    ready(page, ".ll-segments")

    def shown() -> dict[str, tuple[str | None, str | None]]:
        rows = page.locator(".ll-segments tbody tr")
        return {
            rows.nth(i).get_attribute("data-key"): (
                rows.nth(i).locator("[data-customers]").get_attribute("data-customers"),
                rows.nth(i).locator("[data-value]").get_attribute("data-value"),
            )
            for i in range(rows.count())
        }

    answer = demo.svc.get("/v1/segments", key, by="rfm_segment", metric="revenue")["segments"]
    assert answer, "the demo's batch run gives its customers RFM segments"
    got = shown()
    assert set(got) == {r["key"] for r in answer}
    for r in answer:
        assert got[r["key"]][0] == str(r["customers"]) and same(got[r["key"]][1], r["value"]), r

    biggest = max(answer, key=lambda r: r["customers"])
    first = demo.svc.get("/v1/segments/customers", key, by="rfm_segment", value=biggest["key"], limit=20)
    page.locator(f".ll-segments tr[data-key='{biggest['key']}'] th button").click()
    page.wait_for_selector(f".ll-segment-members[data-segment='{biggest['key']}'][data-ready='true']")
    listed = page.locator(".ll-segment-list [data-customer]")
    assert listed.evaluate_all("els => els.map(e => e.dataset.customer)") == first["customers"]
    if first["next_cursor"]:
        second = demo.svc.get(
            "/v1/segments/customers",
            key,
            by="rfm_segment",
            value=biggest["key"],
            limit=20,
            cursor=first["next_cursor"],
        )
        page.get_by_role("button", name="More customers").click()
        listed.nth(len(first["customers"]) + len(second["customers"]) - 1).wait_for()
        assert (
            listed.evaluate_all("els => els.map(e => e.dataset.customer)")
            == first["customers"] + second["customers"]
        )

    customer = first["customers"][0]
    page.locator(f".ll-segment-list [data-customer='{customer}']").click()
    ready(page, ".ll-customer")
    assert page.locator(".ll-customer [data-customer-id]").inner_text() == customer
    profile = demo.svc.get(f"/v1/customers/{customer}/profile", key)
    assert page.locator(".ll-customer [data-segment]").first.get_attribute("data-segment") == (
        profile["rfm"]["segment"] or ""
    )
    assert profile["rfm"]["segment"] == biggest["segment"], "the card is of a customer of that segment"

    page.select_option("#ll-segment-metric", "orders")  # another metric: the table follows the API
    page.locator(".ll-segments .ll-title", has_text="Orders by").wait_for()
    ready(page, ".ll-segments")
    answer = demo.svc.get("/v1/segments", key, by="rfm_segment", metric="orders")["segments"]
    got = shown()
    for r in answer:
        assert got[r["key"]][0] == str(r["customers"]) and same(got[r["key"]][1], r["value"]), r

    page.select_option("#ll-segment-range", "7")  # the metric over the last 7 days, the same segments
    page.locator(".ll-segments .ll-subtitle", has_text="Last 7 days").wait_for()
    page.locator(".ll-segments[data-start$='T00:00:00.000Z']").wait_for()
    start = page.locator(".ll-segments").get_attribute("data-start")
    ranged = demo.svc.get("/v1/segments", key, by="rfm_segment", metric="orders", start=start)["segments"]
    assert [r["customers"] for r in ranged] == [r["customers"] for r in answer]
    got = shown()
    for r in ranged:
        assert got[r["key"]][0] == str(r["customers"]) and same(got[r["key"]][1], r["value"]), r
    assert "segment_days=7" in page.url


# ---------------------------------------------------------------------- identity and erasure


def test_an_owner_erases_a_merged_customer_after_confirming_and_sees_the_receipt(demo, page, chromium):
    tenant, key = "demo-saas", demo.keys["demo-saas"]
    email, password = demo.owners[tenant]
    survivor, previous = "erase-me", "erase-me-anon"
    now = int(time.time() * 1000)
    base = {"tenant_id": tenant, "event_time": now - 60_000}
    demo.svc.produce(
        [
            {
                **base,
                "event_id": "erase-e1",
                "event_type": "page_view",
                "customer_id": previous,
                "session_id": "s",
            },
            {
                **base,
                "event_id": "erase-e2",
                "event_type": "alias",
                "customer_id": survivor,
                "previous_id": previous,
            },
            {
                **base,
                "event_id": "erase-e3",
                "event_type": "page_view",
                "customer_id": survivor,
                "session_id": "s",
            },
        ]
    )
    demo.svc.wait_for(f"/v1/customers/{previous}/profile", key, lambda a: a["metrics"]["events_total"] == 3)

    # a viewer sees the customer, never the erasure step; an embed of the card neither
    viewer = ("viewer@demo-saas.example", secrets.token_urlsafe(16))
    demo.svc.create_user(tenant, *viewer, role="viewer")
    other = chromium.new_context()
    colleague = other.new_page()
    colleague.goto(f"{demo.url}/dashboard")
    sign_in_on_page(demo, colleague, *viewer)
    colleague.fill("#ll-customer", previous)
    colleague.press("#ll-customer", "Enter")
    colleague.wait_for_selector(".ll-customer[data-ready='true']")
    assert colleague.locator("#ll-erase").count() == 0, "only owners may request an erasure"
    other.close()
    token = demo.svc.embed_token(key, customer_id=previous)
    page.goto(embed(demo, "customer-card", token))
    ready(page)
    assert page.locator("#ll-erase, #ll-erase-request").count() == 0
    refused = httpx.delete(f"{demo.url}/v1/customers/{previous}", headers=demo.svc.auth(token))
    assert refused.status_code in (401, 403, 404), "an embed token never erases"

    # the owner: the card shows the merged ids; the erasure needs the id typed again
    page.goto(f"{demo.url}/dashboard")
    sign_in_on_page(demo, page, email, password)
    page.fill("#ll-customer", previous)
    page.press("#ll-customer", "Enter")
    ready(page, ".ll-customer")
    assert page.locator(".ll-who-id").inner_text() == survivor
    assert page.locator(".ll-merged").get_attribute("data-merged-ids") == previous
    page.click("#ll-erase-request")
    assert page.locator("#ll-erase-submit").is_disabled()
    page.fill("#ll-erase-confirm", survivor[:-1])
    assert page.locator("#ll-erase-submit").is_disabled(), "a wrong id does not confirm"
    page.click("#ll-erase-cancel")
    assert page.locator("#ll-erase-form").count() == 0
    assert demo.svc.get(f"/v1/customers/{survivor}/profile", key)["metrics"]["events_total"] == 3
    page.click("#ll-erase-request")
    page.fill("#ll-erase-confirm", previous)
    page.click("#ll-erase-submit")

    receipt = page.locator("#ll-erasure-receipt")
    receipt.wait_for()
    erasure_id = receipt.get_attribute("data-erasure-id")
    api = demo.svc.get(f"/v1/erasures/{erasure_id}", key)
    assert page.locator(".ll-receipt-identities").inner_text() == str(api["identities"]) == "2"
    stores = page.locator(".ll-receipt-stores tr[data-store]")
    shown = {stores.nth(i).get_attribute("data-store") for i in range(stores.count())}
    assert {"speed_store", "answer_cache"} <= shown  # this worker purged them before answering
    assert "retention" in page.locator(".ll-receipt-remains").inner_text()
    for customer in (survivor, previous):
        r = httpx.get(f"{demo.url}/v1/customers/{customer}/profile", headers=demo.svc.auth(key))
        assert r.status_code == 404, customer

    # the page polls the receipt until the durable purge (its own process, on Spark) completes
    page.wait_for_selector("#ll-erasure-receipt[data-state='complete']", timeout=300_000)
    api = demo.svc.get(f"/v1/erasures/{erasure_id}", key)
    assert api["state"] == "complete"
    shown = {stores.nth(i).get_attribute("data-store") for i in range(stores.count())}
    assert shown == set(api["stores"]) >= {"master", "views", "serving_store", "master_second_pass"}
    assert page.locator(".ll-receipt-completed time").get_attribute("datetime") == api["completed_at"]
    assert survivor not in page.locator("#ll-erasure-receipt").inner_text().replace(erasure_id, "")
