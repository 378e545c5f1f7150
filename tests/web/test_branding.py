"""Branding values end up in CSS and CSP headers: every field is validated strictly, colours keep AA
contrast, the CSP is built from validated parts only."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from lambdalytics.serving.branding import (
    Branding,
    BrandingStore,
    content_security_policy,
    contrast,
    css_variables,
    style_block,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "field, value",
    [
        ("primary_color", "red"),
        ("primary_color", "#12345g"),
        ("primary_color", "#123;}body{x:y"),
        ("primary_color", "#1234567"),
        ("logo_url", "http://cdn.example.com/logo.png"),  # http only for localhost
        ("logo_url", "javascript:alert(1)"),
        ("logo_url", "https://example.com/a.png') ; x"),
        ("logo_url", "https://user:pw@example.com/a.png"),
        ("logo_url", "https://exa mple.com/a.png"),
        ("font", "Comic Sans; } body { display:none"),
        ("font", "Roboto"),  # names from the allowlist only
        ("locale", "en_US; script-src *"),
        ("currency", "EURO"),
        ("currency", "XYZ"),
        ("display_name", "<script>"),
        ("display_name", "a\nb"),
        ("frame_ancestors", ["https://shop.example.com; script-src *"]),
        ("frame_ancestors", ["https://shop.example.com/path"]),
        ("frame_ancestors", ["http://shop.example.com"]),
        ("frame_ancestors", ["*"]),
        ("frame_ancestors", ["https://'self'"]),
        ("frame_ancestors", ["https://a.com:99999"]),
        ("frame_ancestors", ["https://x.com"] * 21),
    ],
)
def test_unsafe_values_are_refused(field, value):
    with pytest.raises(ValidationError):
        Branding(**{field: value})


def test_values_are_normalised():
    b = Branding(
        primary_color="#ABC",
        frame_ancestors=["https://Shop.Example.com/", "http://localhost:3000", "https://*.example.org"],
        logo_url="https://cdn.example.com/logo.svg?v=2",
        locale="de-CH",
        currency="CHF",
        display_name="  O'Reilly & Co  ",
    )
    assert b.primary_color == "#aabbcc"
    assert b.frame_ancestors == ["https://shop.example.com", "http://localhost:3000", "https://*.example.org"]
    assert b.display_name == "O'Reilly & Co"


def test_theme_colours_keep_aa_contrast_for_every_brand_colour():
    for r, g, b in itertools.product(range(0, 256, 17), repeat=3):
        color = f"#{r:02x}{g:02x}{b:02x}"
        theme = css_variables(Branding(primary_color=color))
        assert contrast(theme["--ll-brand-text"], "#ffffff") >= 4.5, color  # brand text on the white card
        assert contrast(theme["--ll-brand-fill"], theme["--ll-brand-ink"]) >= 4.5, color  # text on brand


def test_style_block_holds_only_the_theme():
    css = style_block(Branding(primary_color="#e8590c", font="serif"))
    assert css.startswith(":root{--ll-brand:#e8590c;") and "</" not in css and "<" not in css


def test_csp():
    b = Branding(logo_url="https://cdn.example.com/l.png", frame_ancestors=["https://shop.example.com"])
    framed = content_security_policy(b, nonce="abc", frameable=True)
    assert "frame-ancestors https://shop.example.com" in framed
    assert "img-src 'self' data: https://cdn.example.com" in framed
    assert "style-src 'self' 'nonce-abc'" in framed and "script-src 'self';" in framed
    assert "frame-ancestors 'none'" in content_security_policy(b, nonce="abc", frameable=False)
    assert "frame-ancestors 'none'" in content_security_policy(Branding(), nonce="abc", frameable=True)
    assert "frame-ancestors 'none'" in content_security_policy(None, nonce="abc", frameable=True)


def test_store_round_trip(tmp_path):
    store = BrandingStore(tmp_path / "branding.sqlite")
    assert store.get("t1") == Branding()
    store.put("t1", Branding(primary_color="#112233", currency="EUR"))
    again = BrandingStore(tmp_path / "branding.sqlite")  # another worker process
    assert again.get("t1").primary_color == "#112233" and again.get("t1").currency == "EUR"
    assert again.get("t2") == Branding()
