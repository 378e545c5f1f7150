"""Per-tenant branding and embed policy: colours, logo, font, number defaults, allowed frame ancestors.

Every value ends up in CSS custom properties or in a Content-Security-Policy header, so each one is
validated strictly on the way in (and again on the way out of SQLite): hex colours only, a font from an
allowlist that maps to a fixed CSS stack, https logo URLs (http only for localhost), origins made of
``scheme://host[:port]`` and nothing else. No free-form string reaches CSS or a header.

Stored next to the tenant registry, in ``<data_dir>/run/branding.sqlite``; read on every page render (an
indexed SQLite read), so a change made through one worker applies to all of them at once.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from lambdalytics.schemas.events import iso_currency

from .request_model import RequestModel

__all__ = [
    "DEFAULT_COLOR",
    "FONTS",
    "Branding",
    "BrandingStore",
    "content_security_policy",
    "css_variables",
]

DEFAULT_COLOR = "#3b5bdb"

FONTS: dict[str, str] = {
    # name → the CSS font-family stack it stands for. Only fonts already on the viewer's machine are used:
    # nothing is fetched at run time, so each stack ends in the system stack.
    "system": 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif',
    "humanist": '"Seravek", "Gill Sans Nova", Ubuntu, Calibri, "DejaVu Sans", source-sans-pro, sans-serif',
    "geometric": 'Avenir, Montserrat, Corbel, "URW Gothic", source-sans-pro, system-ui, sans-serif',
    "rounded": 'ui-rounded, "Hiragino Maru Gothic ProN", Quicksand, Comfortaa, Manjari, "Arial Rounded MT", '
    "system-ui, sans-serif",
    "serif": 'Charter, "Bitstream Charter", "Sitka Text", Cambria, Georgia, serif',
    "mono": 'ui-monospace, "Cascadia Code", "Source Code Pro", Menlo, Consolas, "DejaVu Sans Mono", monospace',
    "inter": 'Inter, "Inter Variable", system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    "roboto": 'Roboto, "Helvetica Neue", Arial, system-ui, sans-serif',
    "open-sans": '"Open Sans", "Helvetica Neue", Arial, system-ui, sans-serif',
    "ibm-plex-sans": '"IBM Plex Sans", "Helvetica Neue", Arial, system-ui, sans-serif',
}

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_HOST = re.compile(
    r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_LOCALE = re.compile(r"^[a-zA-Z]{2,3}(?:-[a-zA-Z0-9]{2,8}){0,3}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f<>]{1,80}$")


def _color(value: str) -> str:
    if not _HEX.match(value):
        raise ValueError("a hex colour like #3b5bdb")
    value = value.lower()
    return "#" + "".join(c * 2 for c in value[1:]) if len(value) == 4 else value


def _origin(value: str, *, allow_wildcard: bool = True) -> str:
    """``scheme://host[:port]`` exactly: https, or http for localhost only. Returned normalised."""
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    if parts.netloc.startswith("[") and parts.hostname:
        host = f"[{parts.hostname}]"
    local = host in _LOCAL_HOSTS
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local):
        raise ValueError("an https origin (http only for localhost)")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError("an origin is scheme://host[:port], nothing more")
    if not (local or _HOST.match(host)) or (host.startswith("*.") and not allow_wildcard):
        raise ValueError("not a valid host name")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("not a valid port") from None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _logo(value: str) -> str:
    """An absolute image URL whose origin is checked like a frame ancestor; quoting characters refused."""
    if len(value) > 2048 or any(c in value for c in " \"'()<>\\`{}|^\n\r\t"):
        raise ValueError("a plain https URL without spaces, quotes or brackets")
    parts = urlsplit(value)
    _origin(f"{parts.scheme}://{parts.netloc}", allow_wildcard=False)
    if parts.username or parts.password:
        raise ValueError("no credentials in the logo URL")
    return value


def _font(value: str) -> str:
    if value not in FONTS:
        raise ValueError(f"one of {', '.join(FONTS)}")
    return value


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError("a BCP 47 language tag like en-GB")
    return value


def _name(value: str) -> str:
    if not _NAME.match(value) or not value.strip():
        raise ValueError("1-80 printable characters without angle brackets")
    return value.strip()


Color = Annotated[str, Field(max_length=7, examples=["#3b5bdb"]), AfterValidator(_color)]
Origin = Annotated[str, Field(max_length=300, examples=["https://shop.example.com"]), AfterValidator(_origin)]


class Branding(RequestModel):
    """How a tenant's dashboard and widgets look, and which sites may frame its widgets."""

    display_name: Annotated[str, Field(max_length=80), AfterValidator(_name)] | None = Field(
        None, description="Shown to end users, e.g. 'ask Acme for a new link'. Default: the tenant id."
    )
    primary_color: Color = Field(DEFAULT_COLOR, description="Hex colour of accents, charts and buttons.")
    logo_url: Annotated[str, Field(max_length=2048), AfterValidator(_logo)] | None = Field(
        None, description="https URL of the logo (its origin is added to img-src of the pages' CSP)."
    )
    font: Annotated[str, AfterValidator(_font)] = Field(
        "system", description=f"One of: {', '.join(FONTS)} (fonts installed on the viewer's device)."
    )
    locale: Annotated[str, Field(max_length=35), AfterValidator(_locale)] | None = Field(
        None, description="Default number/date locale (BCP 47); else the viewer's browser language."
    )
    currency: Annotated[str, Field(max_length=3), AfterValidator(iso_currency)] | None = Field(
        None, description="ISO 4217 code money metrics are shown in; unset: plain numbers."
    )
    frame_ancestors: list[Origin] = Field(
        default_factory=list,
        max_length=20,
        description="Origins allowed to frame the widgets (CSP frame-ancestors); empty: none may.",
    )

    def public(self, tenant_id: str) -> dict:
        """What pages may show: everything but the embed policy."""
        return {
            "tenant_id": tenant_id,
            "display_name": self.display_name or tenant_id,
            "primary_color": self.primary_color,
            "logo_url": self.logo_url,
            "font": self.font,
            "locale": self.locale,
            "currency": self.currency,
        }


# ------------------------------------------------------------------------ colours (WCAG 2.x formulas)


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def luminance(color: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _mix(a: str, b: str, t: float) -> str:
    """``t`` of ``b`` over ``a``."""
    return _hex(tuple(x + (y - x) * t for x, y in zip(_rgb(a), _rgb(b), strict=True)))


INK_DARK, INK_LIGHT, SURFACE = "#111827", "#ffffff", "#ffffff"


def css_variables(branding: Branding) -> dict[str, str]:
    """The theme as CSS custom properties; every value is a validated colour or a fixed font stack.

    WCAG AA (4.5:1) for every text the theme colours: ``--ll-brand-text`` is the brand colour darkened
    until it reads on the white surface; ``--ll-brand-fill`` is the brand colour (darkened only when
    neither ink reaches 4.5:1 on it) for backgrounds under text, ``--ll-brand-ink`` the text on it.
    ``--ll-brand`` itself is used where nothing is written on it (bars, meters).
    """
    brand = branding.primary_color
    text = _darken_until(brand, SURFACE)
    ink = INK_LIGHT if contrast(brand, INK_LIGHT) >= contrast(brand, INK_DARK) else INK_DARK
    fill = brand
    if contrast(fill, ink) < 4.5:
        fill, ink = _darken_until(brand, INK_LIGHT), INK_LIGHT
    return {
        "--ll-brand": brand,
        "--ll-brand-fill": fill,
        "--ll-brand-ink": ink,
        "--ll-brand-text": text,
        "--ll-brand-soft": _mix(SURFACE, brand, 0.1),
        "--ll-brand-line": _mix(SURFACE, brand, 0.35),
        "--ll-font": FONTS[branding.font],
    }


def _darken_until(color: str, against: str, ratio: float = 4.5) -> str:
    out, step = color, 0
    while contrast(out, against) < ratio and step < 20:
        step += 1
        out = _mix(color, "#000000", step * 0.05)
    return out


def style_block(branding: Branding) -> str:
    return ":root{" + ";".join(f"{k}:{v}" for k, v in css_variables(branding).items()) + "}"


# ------------------------------------------------------------------------ Content-Security-Policy


def content_security_policy(branding: Branding | None, *, nonce: str, frameable: bool) -> str:
    """The page CSP: only this origin's scripts, styles (plus one nonce'd theme block) and connections;
    images also from the logo's origin; framing only by the tenant's listed origins (else nobody)."""
    img = ["'self'", "data:"]
    if branding and branding.logo_url:
        parts = urlsplit(branding.logo_url)
        img.append(_origin(f"{parts.scheme}://{parts.netloc}", allow_wildcard=False))
    ancestors = branding.frame_ancestors if (frameable and branding and branding.frame_ancestors) else []
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src " + " ".join(img),
            "connect-src 'self'",
            "font-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors " + (" ".join(ancestors) if ancestors else "'none'"),
        ]
    )


# ------------------------------------------------------------------------ storage


class BrandingStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS branding (tenant_id TEXT PRIMARY KEY, doc TEXT NOT NULL, "
                "updated_at REAL NOT NULL)"
            )

    def get(self, tenant_id: str) -> Branding:
        """The tenant's branding, or the defaults. Stored documents are validated again when read."""
        with self._lock:
            row = self._db.execute("SELECT doc FROM branding WHERE tenant_id = ?", (tenant_id,)).fetchone()
        return Branding.model_validate_json(row[0]) if row else Branding()

    def put(self, tenant_id: str, branding: Branding) -> None:
        doc = json.dumps(branding.model_dump(mode="json"))
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO branding VALUES (?, ?, ?) ON CONFLICT(tenant_id) DO UPDATE SET "
                "doc = excluded.doc, updated_at = excluded.updated_at",
                (tenant_id, doc, time.time()),
            )

    def close(self) -> None:
        self._db.close()
