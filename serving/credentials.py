"""Who may ask, and how a tenant looks: the admin token, the tenant registry, the token signer and the
branding store. All of it lives in ``$DATA_DIR/run``, so every worker (and ``lambdalytics up``, which
prints the demo keys) opens the same credentials without a speed store or a batch view."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from lambdalytics.infra.settings import Settings

from .auth import TenantRegistry, TokenSigner
from .branding import BrandingStore

__all__ = ["Credentials"]


def _secret(settings: Settings, name: str, value: SecretStr | None) -> str:
    """A configured secret, or (dev only) one generated once and kept in the data dir."""
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if settings.env == "prod":
        raise RuntimeError(f"LAMBDALYTICS_{name.upper()} must be set when LAMBDALYTICS_ENV=prod")
    path = Path(settings.data_dir) / "run" / f"{name}.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True)
class Credentials:
    admin_token: str
    registry: TenantRegistry
    signer: TokenSigner
    branding: BrandingStore

    @classmethod
    def open(cls, settings: Settings) -> Credentials:
        run = Path(settings.data_dir) / "run"
        return cls(
            admin_token=_secret(settings, "admin_token", settings.admin_token),
            registry=TenantRegistry(run / "tenants.sqlite"),
            signer=TokenSigner(_secret(settings, "token_secret", settings.token_secret)),
            branding=BrandingStore(run / "branding.sqlite"),
        )

    def close(self) -> None:
        self.registry.close()
        self.branding.close()
