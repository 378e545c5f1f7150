"""The browser side: the tenant dashboard, the embeddable widgets, their script-tag loader and assets.

Pages are small HTML shells around one bundled script (``serving/web``, built by esbuild); the data
comes from the v1 API with a token the page holds. No page or asset ever carries a tenant key: the
dashboard's login form trades the key for a read-only dashboard token on the server and redirects to
``/dashboard#token=...`` (a fragment never reaches a server log), widgets take an embed token.

Every page gets a strict CSP: this origin's script only (with a Subresource Integrity hash), one
nonce'd ``<style>`` holding the tenant's validated theme variables, images from this origin and the
logo's, connections to this origin, and ``frame-ancestors`` from the tenant's branding (``'none'``
for the dashboard and for tenants that listed no origin).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.schemas.events import TENANT_ID_PATTERN

from ...auth import KEY_PREFIX, AuthError, Principal, verify_token
from ...branding import Branding, content_security_policy, style_block
from ..body import read_body
from ..deps import failed_authentication, refuse_if_failing
from .branding import branding_store

router = APIRouter(include_in_schema=False)

DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
WIDGETS = {
    "customer-card": "Customer overview",
    "metric-chart": "Metric over time",
    "campaign-chart": "Campaign performance",
    "live-badge": "Live wait time",
    "cohort-heatmap": "Cohort retention",
}
DASHBOARD_TTL_S = 8 * 3600
LOGIN_BODY_BYTES = 4096  # a key and a few form fields; more is refused (413) before it is read
_TENANT = re.compile(TENANT_ID_PATTERN)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
NOT_BUILT = (
    "The web front-end is not built: run `make web` "
    "(cd serving/web && npm ci --no-audit --no-fund && npm run build).\n"
)


# ------------------------------------------------------------------------ the built bundle


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # short content hash, for cache busting
    integrity: str  # Subresource Integrity


_cache: dict[str, tuple[int, Asset]] = {}


def asset(name: str) -> Asset | None:
    """A file of ``serving/web/dist`` (re-read when the build changes it), or None."""
    path = DIST / name
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    cached = _cache.get(name)
    if cached and cached[0] == mtime:
        return cached[1]
    body = path.read_bytes()
    found = Asset(
        body,
        _TYPES.get(path.suffix, "application/octet-stream"),
        hashlib.sha256(body).hexdigest()[:16],
        "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode(),
    )
    _cache[name] = (mtime, found)
    return found


def _not_built() -> Response:
    return PlainTextResponse(NOT_BUILT, 503, headers={"Retry-After": "30", "Cache-Control": "no-store"})


# ------------------------------------------------------------------------ pages


def _json_for_html(value: Any) -> str:
    """JSON safe inside a <script type="application/json"> element."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _headers(csp: str, *, frameable: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    }
    if not frameable:
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return headers


def _page(
    *,
    title: str,
    body: str,
    config: dict[str, Any],
    branding: Branding | None,
    frameable: bool,
    body_class: str,
    status: int = 200,
) -> Response:
    js, css = asset("app.js"), asset("app.css")
    if js is None or css is None:
        return _not_built()
    nonce = secrets.token_urlsafe(18)
    lang = ((branding.locale if branding else None) or "en").split("-")[0]
    doc = f"""<!doctype html>
<html lang="{html.escape(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/assets/app.css?v={css.version}" integrity="{css.integrity}">
<style nonce="{nonce}">{style_block(branding or Branding())}</style>
<script type="application/json" id="ll-config">{_json_for_html(config)}</script>
<script type="module" src="/assets/app.js?v={js.version}" integrity="{js.integrity}"></script>
</head>
<body class="{body_class}">
{body}
</body>
</html>
"""
    csp = content_security_policy(branding, nonce=nonce, frameable=frameable)
    return Response(
        doc, status, media_type="text/html; charset=utf-8", headers=_headers(csp, frameable=frameable)
    )


_SKELETON = (
    '<div class="ll-card ll-skeleton-card" aria-hidden="true"><div class="ll-skel ll-skel-title"></div>'
    '<div class="ll-skel-row"><div class="ll-skel ll-skel-tile"></div><div class="ll-skel ll-skel-tile"></div>'
    '<div class="ll-skel ll-skel-tile"></div></div></div>'
)


def _tenant_look(request: Request, tenant_id: str | None) -> tuple[Branding | None, dict | None]:
    if tenant_id is None:
        return None, None
    branding = branding_store(request).get(tenant_id)
    return branding, branding.public(tenant_id)


def _embed_token(request: Request, token: str | None) -> tuple[str, Principal | None]:
    """("ok" | "expired" | "invalid" | "missing", who). Only embed tokens: tenant keys and dashboard
    tokens do not belong in a URL, and a page never uses them."""
    if not token:
        return "missing", None
    if token.startswith(KEY_PREFIX) or len(token) > 4096:
        return "invalid", None
    credentials = request.app.state.serving.credentials
    check = partial(verify_token, token, registry=credentials.registry, signer=credentials.signer)
    try:
        who, state = check(), "ok"
    except AuthError as exc:
        if exc.message != "token expired":
            return "invalid", None  # a revoked token included: its key was rotated
        try:
            who, state = check(allow_expired=True), "expired"  # only to pick the headers
        except AuthError:
            return "invalid", None
    return (state, who) if who.kind == "embed" else ("invalid", None)


@router.get("/embed/widget.js")
def widget_loader() -> Response:
    """The script-tag loader: inserts the widget's iframe and sizes it from the widget's postMessage."""
    loader = asset("widget.js")
    if loader is None:
        return _not_built()
    return Response(
        loader.body,
        media_type=loader.media_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",  # host pages on other origins load it
            "Cache-Control": "public, max-age=300",
            "ETag": f'"{loader.version}"',
        },
    )


@router.get("/embed/{widget}")
def embed_page(widget: str, request: Request, token: str | None = None) -> Response:
    if widget not in WIDGETS:
        return PlainTextResponse("not found", 404, headers={"X-Content-Type-Options": "nosniff"})
    state, who = _embed_token(request, token)
    branding, tenant = _tenant_look(request, who.tenant_id if who else None)
    scope = None
    if state == "ok" and who is not None:
        scope = {"customer_id": who.customer_id, "campaigns": sorted(who.campaigns), "cohorts": who.cohorts}
    config = {
        "page": "embed",
        "widget": widget,
        "token_state": state,
        "scope": scope,
        "tenant": tenant,
        "catalog": CATALOG.describe(),  # the GET /v1/metrics dictionary: labels, units, hints
    }
    body = f'<main id="ll-root" class="ll-root" aria-busy="true">{_SKELETON}</main>'
    return _page(
        title=WIDGETS[widget],
        body=body,
        config=config,
        branding=branding,
        frameable=state in ("ok", "expired"),
        body_class="ll ll-embed",
    )


_LOGIN = """<section id="ll-login" class="ll-login" aria-labelledby="ll-login-title" hidden>
<div class="ll-card ll-login-card">
<div class="ll-login-brand" id="ll-login-brand"></div>
<h1 id="ll-login-title" class="ll-login-title">Sign in to {name}</h1>
<p class="ll-muted">Paste your tenant API key. The server exchanges it for a read-only session that
lasts {hours} hours; the key itself is never stored in this browser.</p>
<form method="post" action="/dashboard/login" autocomplete="off" class="ll-form">
<label for="ll-key" class="ll-label">Tenant API key</label>
<input id="ll-key" name="key" type="password" required autocomplete="off" spellcheck="false"
 autocapitalize="off" placeholder="llk_…" class="ll-input" aria-describedby="ll-login-help{error_id}">
<p id="ll-login-help" class="ll-help">Keys start with <code>llk_</code>. Ask your administrator if you
do not have one.</p>
{error}
<button type="submit" class="ll-button">Open dashboard</button>
</form>
</div>
</section>"""


@router.get("/dashboard")
def dashboard(request: Request, tenant: str | None = None, login: str | None = None) -> Response:
    """The tenant dashboard. ``tenant`` is a hint for the theme and the logo's CSP origin only; the data
    and the authoritative branding come with the token in the URL fragment."""
    hint = tenant if tenant and _TENANT.match(tenant) else None
    branding, look = _tenant_look(request, hint)
    failed = login == "failed"
    error = (
        '<p id="ll-login-error" class="ll-error" role="alert">That key was not accepted. Check it and try '
        "again.</p>"
        if failed
        else ""
    )
    name = html.escape(look["display_name"]) if look else "your analytics"
    body = (
        _LOGIN.format(
            name=name,
            hours=DASHBOARD_TTL_S // 3600,
            error=error,
            error_id=" ll-login-error" if failed else "",
        )
        + '\n<div id="ll-root" class="ll-root ll-dash-root" aria-busy="true"></div>'
        + '\n<noscript><p class="ll-noscript">The dashboard needs JavaScript.</p></noscript>'
    )
    config = {
        "page": "dashboard",
        "widget": None,
        "token_state": "missing",
        "scope": None,
        "tenant": look,
        "catalog": CATALOG.describe(),  # the GET /v1/metrics dictionary: labels, units, hints
    }
    return _page(
        title="Analytics dashboard",
        body=body,
        config=config,
        branding=branding,
        frameable=False,
        body_class="ll ll-dashboard",
    )


@router.get("/dashboard/login")
def login_page() -> Response:
    return RedirectResponse("/dashboard", 303)


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    """Trade a tenant key (form field ``key``) for a read-only dashboard token. The answer is a redirect
    to ``/dashboard#token=...``: the token travels in the fragment, the key is never echoed."""
    no_store = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        return PlainTextResponse("cross-site sign-in refused", 403, headers=no_store)
    try:
        refuse_if_failing(request)
        raw = await read_body(request, LOGIN_BODY_BYTES)
    except HTTPException as exc:
        return PlainTextResponse(exc.detail, exc.status_code, headers={**no_store, **(exc.headers or {})})
    fields = parse_qs(raw.decode("utf-8", "replace"))  # any other fields a form or extension adds: ignored
    key = (fields.get("key") or [""])[0].strip()
    state = request.app.state.serving
    found = state.credentials.registry.lookup(key) if key.startswith(KEY_PREFIX) and len(key) < 200 else None
    if found is None:
        failed_authentication(request)
        return RedirectResponse("/dashboard?login=failed", 303, headers=no_store)
    tenant, generation = found
    token, _ = state.credentials.signer.issue_dashboard(tenant, DASHBOARD_TTL_S, generation=generation)
    return RedirectResponse(f"/dashboard?tenant={quote(tenant)}#token={token}", 303, headers=no_store)


@router.get("/assets/{name}")
def static_asset(name: str, v: str | None = None) -> Response:
    if name not in ("app.js", "app.css", "widget.js"):
        return PlainTextResponse("not found", 404, headers={"X-Content-Type-Options": "nosniff"})
    found = asset(name)
    if found is None:
        return _not_built()
    cache = "public, max-age=31536000, immutable" if v == found.version else "no-cache"
    return Response(
        found.body,
        media_type=found.media_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": cache, "ETag": f'"{found.version}"'},
    )
