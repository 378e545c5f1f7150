"""Who may ask, and how a tenant looks: the admin token, the tenant registry, the token signer and the
branding store. All of it lives in ``$DATA_DIR/run``, so every worker (and ``lambdalytics up``, which
prints the demo keys) opens the same credentials without a speed store or a batch view.

Secrets pass one rule, :func:`~lambdalytics.infra.secret_keys.weakness` (``infra.secret_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lambdalytics.infra import private_files
from lambdalytics.infra.secret_keys import MIN_SECRET_CHARS, WeakSecret, weakness
from lambdalytics.infra.secret_keys import configured_secret as _secret
from lambdalytics.infra.settings import Settings

from .api_keys import ApiKeys
from .audit import AuditLog
from .auth import TenantRegistry, TokenSigner
from .branding import BrandingStore
from .host_keys import HostKeys
from .principal_cache import PrincipalCache
from .sessions import Sessions
from .users import Users

__all__ = ["MIN_SECRET_CHARS", "Credentials", "WeakSecret", "weakness"]


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
    principals: PrincipalCache = field(default_factory=PrincipalCache)  # resolved bearer tokens

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
