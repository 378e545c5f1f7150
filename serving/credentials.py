"""Who may ask, and how a tenant looks: the admin token, the tenant registry, the token signer and the
branding store. All of it lives in ``$DATA_DIR/run``, so every worker (and ``lambdalytics up``, which
prints the demo keys) opens the same credentials without a speed store or a batch view.

Secrets pass one rule, :func:`weakness`, wherever they come from (configured, or a generated file read
back): an empty admin token would match an empty bearer token (``compare_digest(b"", b"")`` is true)
and a short HS256 key can be brute-forced offline from one token. ``prod`` also refuses to generate one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from lambdalytics.infra.settings import Settings

from . import private_files
from .api_keys import ApiKeys
from .audit import AuditLog
from .auth import TenantRegistry, TokenSigner
from .branding import BrandingStore
from .host_keys import HostKeys
from .sessions import Sessions
from .users import Users

__all__ = ["MIN_SECRET_CHARS", "Credentials", "WeakSecret", "weakness"]

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


def _secret(settings: Settings, name: str, value: SecretStr | None) -> str:
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


@dataclass(frozen=True)
class Credentials:
    """Each store is a SQLite file of its own under ``$DATA_DIR/run`` (mode 0600, created before SQLite
    opens it): one writer's transaction is atomic, every worker process reads the same truth, and a
    revocation needs no message between workers (docs/serving.md, "Access management")."""

    admin_token: str
    registry: TenantRegistry
    signer: TokenSigner
    branding: BrandingStore
    keys: ApiKeys
    host_keys: HostKeys
    users: Users
    sessions: Sessions
    audit: AuditLog

    @classmethod
    def open(cls, settings: Settings) -> Credentials:
        run = Path(settings.data_dir) / "run"
        run.mkdir(parents=True, exist_ok=True)
        return cls(
            admin_token=_secret(settings, "admin_token", settings.admin_token),
            registry=TenantRegistry(private_files.ensure(run / "tenants.sqlite")),
            signer=TokenSigner(_secret(settings, "token_secret", settings.token_secret)),
            branding=BrandingStore(private_files.ensure(run / "branding.sqlite")),
            keys=ApiKeys(run / "api_keys.sqlite"),
            host_keys=HostKeys(run / "host_keys.sqlite"),
            users=Users(run / "accounts.sqlite"),
            sessions=Sessions(
                run / "accounts.sqlite",
                idle_seconds=settings.session_idle_seconds,
                absolute_seconds=settings.session_absolute_seconds,
            ),
            audit=AuditLog(run / "audit.sqlite"),
        )

    def close(self) -> None:
        for store in (
            self.registry,
            self.branding,
            self.keys,
            self.host_keys,
            self.users,
            self.sessions,
            self.audit,
        ):
            store.close()
