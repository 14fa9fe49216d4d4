"""Settings of the web app: loaded once (environment, then command line) and passed to create_app."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest.errors import ConfigError

# Roles that may produce the call reports (PRODUCT.md "Access"); admin may do everything.
REPORT_ROLES: tuple[str, ...] = ("admin", "sales_manager", "crm_manager", "support_manager")
ADMIN_ROLES: tuple[str, ...] = ("admin",)


@dataclass(frozen=True)
class WebSettings:
    """Everything the web app needs besides the database."""

    # Signs the session cookie; random per process when unset (sessions then end at restart).
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    # None: Secure cookie only when the request came over TLS (scheme https, also via the proxy).
    secure_cookies: bool | None = None
    session_max_age: int = 8 * 60 * 60
    default_language: str = "fa"
    company_name: str = ""
    # The ingest daemon's health endpoint (e.g. http://127.0.0.1:9108/healthz), for the operations page.
    healthz_url: str | None = None
    login_max_failures: int = 5
    login_window_seconds: float = 300.0
    detail_page_size: int = 100
    pool_max_size: int = 10
    # Report files rendered at once; a big PDF takes a core and over a GiB, so the rest wait their turn.
    download_concurrency: int = 2
    # Close the connection after every response, so the next request goes to a free worker
    # (`serve` turns it on when it runs several worker processes).
    close_connections: bool = False

    def __post_init__(self) -> None:
        if len(self.secret_key) < 16:
            raise ConfigError("the web secret key must be at least 16 characters long")
        if self.default_language not in ("fa", "en"):
            raise ConfigError(f"web default language must be fa or en, not {self.default_language!r}")
        if min(self.session_max_age, self.login_max_failures, self.detail_page_size, self.download_concurrency) <= 0:
            raise ConfigError(
                "web session age, login failure limit, page size and download concurrency must be positive"
            )


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def settings_from_env(
    overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
) -> WebSettings:
    """Settings from CALLTRAIL_WEB_* variables (the secret may come from a file), then overrides."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    secret_file = env.get("CALLTRAIL_WEB_SECRET_FILE")
    if secret_file:
        try:
            with open(secret_file, encoding="utf-8") as handle:
                values["secret_key"] = handle.read().strip()
        except OSError as exc:
            raise ConfigError(f"CALLTRAIL_WEB_SECRET_FILE: cannot read {secret_file}: {exc.strerror}") from exc
    elif env.get("CALLTRAIL_WEB_SECRET"):
        values["secret_key"] = env["CALLTRAIL_WEB_SECRET"]
    if env.get("CALLTRAIL_WEB_SECURE_COOKIES"):
        values["secure_cookies"] = _bool("CALLTRAIL_WEB_SECURE_COOKIES", env["CALLTRAIL_WEB_SECURE_COOKIES"])
    if env.get("CALLTRAIL_WEB_LANGUAGE"):
        values["default_language"] = env["CALLTRAIL_WEB_LANGUAGE"]
    if env.get("CALLTRAIL_COMPANY"):
        values["company_name"] = env["CALLTRAIL_COMPANY"]
    if env.get("CALLTRAIL_HEALTHZ_URL"):
        values["healthz_url"] = env["CALLTRAIL_HEALTHZ_URL"]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return WebSettings(**values)  # type: ignore[arg-type]
