"""Secrets, wherever they come from (configured, or a generated file read back), pass one rule,
:func:`weakness`: an empty admin token would match an empty bearer token (``compare_digest(b"", b"")``
is true) and a short HMAC key can be brute-forced offline from what it signs. ``prod`` also refuses to
generate one. In the floor, because the archiver and the speed consumer hold a secret too (the erasure
list's HMAC key), not only serving.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr

from . import private_files
from .settings import Settings

__all__ = ["MIN_SECRET_CHARS", "WeakSecret", "configured_secret", "weakness"]

MIN_SECRET_CHARS = 32
"""HS256 wants a key at least as long as its hash (RFC 7518 §3.2): 32 bytes; PyJWT warns below it."""
MIN_DISTINCT_CHARS = 8
"""A floor against placeholders such as ``"s" * 32``; a generated secret has about 30."""


class WeakSecret(RuntimeError):
    """A secret the server refuses to start with; the message says which and how to fix it."""


def weakness(secret: str) -> str | None:
    """Why ``secret`` is too weak to guard anything, or None. The one rule for every secret."""
    if not secret:
        return "is empty"
    if len(secret) < MIN_SECRET_CHARS:
        return f"is shorter than {MIN_SECRET_CHARS} characters"
    if len(set(secret)) < MIN_DISTINCT_CHARS:
        return f"has fewer than {MIN_DISTINCT_CHARS} distinct characters"
    return None


def configured_secret(settings: Settings, name: str, value: SecretStr | None) -> str:
    """A configured secret, or (dev only) one generated once, atomically, into the data dir."""
    variable = f"LAMBDALYTICS_{name.upper()}"
    if value is not None:
        secret = value.get_secret_value()
        if problem := weakness(secret):
            raise WeakSecret(
                f"{variable} {problem}; use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                + ("" if settings.env == "prod" else ", or unset it to have one generated (dev)")
            )
        return secret
    if settings.env == "prod":
        raise WeakSecret(f"{variable} must be set when LAMBDALYTICS_ENV=prod")
    path = Path(settings.data_dir) / "run" / f"{name}.secret"
    secret = private_files.create_once(path, secrets.token_urlsafe(32)).strip()
    if problem := weakness(secret):
        raise WeakSecret(f"{path} {problem}; delete it to have a new one generated, or set {variable}")
    return secret
