"""Page rendering: the Jinja environment, the shared template context and the app's state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from reports.web import csrf, i18n
from reports.web.ratelimit import LoginRateLimiter
from reports.web.settings import WebSettings


@dataclass
class WebState:
    """What every request handler needs: settings, the pool (once started), templates, the limiter."""

    settings: WebSettings
    templates: Jinja2Templates
    limiter: LoginRateLimiter
    pool: asyncpg.Pool | None = None
    downloads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    # (read at, branches, systems) for the form's pickers.
    pickers: tuple[float, list[dict[str, Any]], list[dict[str, Any]]] | None = None


def make_templates() -> Jinja2Templates:
    """Templates from the package, HTML-escaped everywhere, failing loudly on unknown variables."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        # The templates ship with the package: no stat() of every template file on every page.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


def state(request: Request) -> WebState:
    """The app's WebState."""
    web: WebState = request.app.state.web
    return web


def pool(request: Request) -> asyncpg.Pool:
    """The connection pool (the app's lifespan opens it)."""
    current = state(request).pool
    assert current is not None, "the web app's lifespan has not opened the database pool"
    return current


def lang(request: Request) -> str:
    """The page language: the session's choice, else the configured default (Persian)."""
    default = state(request).settings.default_language
    return i18n.language(request.session.get("lang"), default)


def safe_next(target: object, default: str = "/report") -> str:
    """A local path to go to after a form, never another site (open redirects)."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render `template` with the shared context (language, direction, user, CSRF token, t())."""
    language = lang(request)
    user = getattr(request.state, "user", None)
    values: dict[str, Any] = {
        "lang": language,
        "dir": i18n.DIRECTION[language],
        "t": lambda key, **kw: i18n.translate(language, key, **kw),
        "digits": lambda value: i18n.digits(language, value),
        "user": user,
        "csrf_token": csrf.csrf_token(request),
        "current_path": request.url.path,
        "is_admin": user is not None and "admin" in user.roles,
        "may_report": user is not None and user.may_report,
    }
    values.update(context or {})
    response: HTMLResponse = state(request).templates.TemplateResponse(
        request, template, values, status_code=status_code, headers=headers
    )
    return response
