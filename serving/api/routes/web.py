"""The browser side: the tenant dashboard, the embeddable widgets, their script-tag loader and assets.

Pages are small HTML shells around one bundled script (``serving/web``, built by esbuild); the data
comes from the v1 API. No page or asset ever carries a key: the dashboard signs a tenant's user in with
email and password into a server-side session (an HttpOnly cookie, ``api.sign_in``) and reads the API
with that cookie and the session's CSRF token; widgets take an embed token.

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

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.schemas.events import TENANT_ID_PATTERN
from lambdalytics.schemas.segments import SEGMENT_METRICS, SEGMENTATIONS

from ...auth import KEY_PREFIX, AuthError, Principal, verify_token
from ...branding import Branding, content_security_policy, style_block
from ..deps import SESSION_COOKIE
from ..sign_in import accept_invite, login_csrf, set_login_csrf, sign_in, sign_out
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
    check = partial(
        verify_token,
        token,
        registry=credentials.registry,
        signer=credentials.signer,
        keys=credentials.keys,
        host_keys=credentials.host_keys,
    )
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
<p class="ll-muted">Sign in with the email and password of your account. Ask an owner of your team
for an invite if you do not have one.</p>
{notice}
<form method="post" action="/dashboard/login" class="ll-form">
<input type="hidden" name="csrf" value="{csrf}">
<label for="ll-email" class="ll-label">Email</label>
<input id="ll-email" name="email" type="email" required autocomplete="username" spellcheck="false"
 autocapitalize="off" class="ll-input"{described}>
<label for="ll-password" class="ll-label">Password</label>
<input id="ll-password" name="password" type="password" required autocomplete="current-password"
 class="ll-input"{described}>
<button type="submit" class="ll-button">Sign in</button>
</form>
</div>
</section>"""

_SIGN_OUT = """<form id="ll-signout" method="post" action="/dashboard/logout" hidden>
<input type="hidden" name="csrf" value="{csrf}">
</form>"""

_NOTICES = {
    "failed": ("ll-error", "alert", "That email and password were not accepted. Check them and try again."),
    "expired": ("ll-note", "status", "Your session has ended. Sign in again."),
    "signed-out": ("ll-note", "status", "You are signed out."),
    "invited": ("ll-note", "status", "Your password is set. Sign in with your email and it."),
}

_INVITE = """<section id="ll-invite" class="ll-login" aria-labelledby="ll-invite-title">
<div class="ll-card ll-login-card">
<h1 id="ll-invite-title" class="ll-login-title">Accept your invite</h1>
<p class="ll-muted">Paste the invite you were given and choose a password (at least 12 characters).</p>
{notice}
<form method="post" action="/dashboard/invite" class="ll-form">
<input type="hidden" name="csrf" value="{csrf}">
<label for="ll-invite-code" class="ll-label">Invite</label>
<input id="ll-invite-code" name="invite" type="password" required autocomplete="off" spellcheck="false"
 class="ll-input">
<label for="ll-new-password" class="ll-label">New password</label>
<input id="ll-new-password" name="password" type="password" required minlength="12" maxlength="256"
 autocomplete="new-password" class="ll-input">
<button type="submit" class="ll-button">Set password</button>
</form>
</div>
</section>"""
_INVITE_NOTICES = {
    "unknown": "That invite is unknown, used or expired. Ask an owner of your team for a new one.",
    "weak": "Choose a password of 12 to 256 characters.",
}


def _session_of(request: Request) -> dict | None:
    """The signed-in user of the browser's session cookie (what the page's script reads), or None."""
    credentials = request.app.state.serving.credentials
    session = credentials.sessions.lookup(request.cookies.get(SESSION_COOKIE, ""))
    user = credentials.users.get(session.user_id, session.tenant_id) if session else None
    if session is None or user is None:
        return None
    return {
        "tenant_id": user.tenant_id,
        "email": user.email,
        "role": user.role,
        "csrf_token": session.csrf,
        "expires_at": session.expires_at,
    }


@router.get("/dashboard")
def dashboard(request: Request, tenant: str | None = None, login: str | None = None) -> Response:
    """The tenant dashboard. Signed in (a live session cookie): the user's tenant's dashboard, with the
    session's CSRF token in the page config. Otherwise the sign-in form; ``tenant`` is then a hint for
    the theme and the logo's CSP origin only."""
    session = _session_of(request)
    hint = session["tenant_id"] if session else (tenant if tenant and _TENANT.match(tenant) else None)
    branding, look = _tenant_look(request, hint)
    notice = _NOTICES.get(login or "")
    notice_html = (
        f'<p id="ll-login-{login}" class="{notice[0]}" role="{notice[1]}">{html.escape(notice[2])}</p>'
        if notice and not session
        else ""
    )
    csrf = login_csrf(request)
    name = html.escape(look["display_name"]) if look else "your analytics"
    form = (
        _SIGN_OUT.format(csrf=html.escape(session["csrf_token"]))
        if session
        else _LOGIN.format(
            name=name,
            notice=notice_html,
            csrf=html.escape(csrf),
            described=f' aria-describedby="ll-login-{login}"' if notice_html else "",
        )
    )
    body = (
        form
        + '\n<div id="ll-root" class="ll-root ll-dash-root" aria-busy="true"></div>'
        + '\n<noscript><p class="ll-noscript">The dashboard needs JavaScript.</p></noscript>'
    )
    config = {
        "page": "dashboard",
        "widget": None,
        "token_state": "session" if session else "missing",
        "scope": None,
        "tenant": look,
        "session": session,
        "catalog": CATALOG.describe(),  # the GET /v1/metrics dictionary: labels, units, hints
        "segments": {"by": list(SEGMENTATIONS), "metrics": list(SEGMENT_METRICS)},  # what /v1/segments takes
    }
    response = _page(
        title="Analytics dashboard",
        body=body,
        config=config,
        branding=branding,
        frameable=False,
        body_class="ll ll-dashboard",
    )
    if not session:
        set_login_csrf(response, request, csrf)
    return response


@router.get("/dashboard/invite")
def invite_page(request: Request, invite: str | None = None) -> Response:
    """The invited user's form: the invite token and a new password (no script needed)."""
    text = _INVITE_NOTICES.get(invite or "")
    notice = (
        f'<p id="ll-invite-{invite}" class="ll-error" role="alert">{html.escape(text)}</p>' if text else ""
    )
    csrf = login_csrf(request)
    config = {"page": "invite", "widget": None, "token_state": "missing", "scope": None, "tenant": None}
    response = _page(
        title="Accept your invite",
        body=_INVITE.format(notice=notice, csrf=html.escape(csrf)),
        config=config,
        branding=None,
        frameable=False,
        body_class="ll ll-dashboard",
    )
    set_login_csrf(response, request, csrf)
    return response


@router.post("/dashboard/invite")
async def invite(request: Request) -> Response:
    return await accept_invite(request)


@router.get("/dashboard/login")
def login_page() -> Response:
    return RedirectResponse("/dashboard", 303)


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    """Sign in with the form's ``email`` and ``password`` (and its ``csrf`` field): a new session cookie
    and a redirect to the dashboard. A tenant API key is not accepted here."""
    return await sign_in(request)


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    """Sign out (the form's ``csrf`` field is the session's CSRF token): the session ends at once."""
    return await sign_out(request)


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
