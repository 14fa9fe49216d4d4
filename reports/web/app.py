"""The web app: `create_app(dsn or pool, settings)` wires routes, middleware and error pages.

Starlette on uvicorn (README "Web app" says why). Every page but /login, /healthz and the static
files needs a logged-in user; report pages need a report role, the operations page admin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ingest.errors import CalltrailError
from reports.errors import ReportFilterError, ReportNotFoundError, ReportPermissionError
from reports.users import REPORT_ROLES
from reports.web import auth, db, i18n, ops, views
from reports.web.auth import ForbiddenError, LoginRequiredError
from reports.web.pages import WebState, lang, make_templates, render
from reports.web.ratelimit import LoginRateLimiter
from reports.web.reportcss import report_css
from reports.web.security import SecurityHeadersMiddleware
from reports.web.session import SessionMiddleware
from reports.web.settings import WebSettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
FONTS_DIR = Path(__file__).resolve().parent.parent / "render" / "fonts"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _login_required(request: Request, exc: Exception) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": "login required"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="/")


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ForbiddenError)
    language = lang(request)
    names = i18n.role_names(language, exc.roles)
    message = i18n.translate(language, "error.403.roles", roles=names)
    if _wants_json(request):
        return JSONResponse({"error": message, "roles": list(exc.roles)}, status_code=403)
    heading = i18n.translate(language, "error.403.title")
    return render(request, "error.html", {"heading": heading, "message": message}, status_code=403)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    language = lang(request)
    if exc.status_code == 403 and exc.detail == "csrf":
        message = i18n.translate(language, "error.403.csrf")
    elif exc.status_code in (400, 404, 405):
        message = i18n.translate(language, f"error.{exc.status_code}")
    else:
        message = i18n.translate(language, "error.500")
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=exc.status_code)
    heading = i18n.translate(language, "error.title")
    return render(request, "error.html", {"heading": heading, "message": message}, status_code=exc.status_code)


async def _calltrail_error(request: Request, exc: Exception) -> Response:
    # The report layer's own refusals keep their meaning; anything else is the database failing.
    if isinstance(exc, ReportPermissionError):
        return await _forbidden(request, ForbiddenError(REPORT_ROLES))
    if isinstance(exc, ReportNotFoundError):
        return await _http_error(request, HTTPException(404))
    if isinstance(exc, ReportFilterError):
        return await _http_error(request, HTTPException(400))
    return await _unavailable(request, exc)


async def _unavailable(request: Request, exc: Exception) -> Response:
    # The database went away (or refused): a clear page, the details in the log, never a traceback.
    log.error("request %s %s failed: %s", request.method, request.url.path, exc)
    language = lang(request)
    message = i18n.translate(language, "error.db")
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=503)
    heading = i18n.translate(language, "error.title")
    return render(request, "error.html", {"heading": heading, "message": message}, status_code=503)


async def healthz(request: Request) -> Response:
    """GET /healthz: the web app answers (for the proxy and systemd); says nothing else."""
    return PlainTextResponse("ok")


async def report_stylesheet(request: Request) -> Response:
    """GET /static/report.css: the report renderer's stylesheet, scoped to the shown report."""
    css: str = request.app.state.report_css
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


async def home(request: Request) -> Response:
    """GET /: the report form."""
    return RedirectResponse("/report", status_code=303)


def create_app(database: str | asyncpg.Pool, settings: WebSettings | None = None) -> Starlette:
    """The ASGI app over a DSN (the app opens and closes its pool) or an existing pool."""
    settings = settings or WebSettings()
    web = WebState(
        settings=settings,
        templates=make_templates(),
        limiter=LoginRateLimiter(settings.login_max_failures, settings.login_window_seconds),
        # A pool given by the caller is usable at once, even where no lifespan runs (ASGI test transports).
        pool=None if isinstance(database, str) else database,
        downloads=asyncio.Semaphore(settings.download_concurrency),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if isinstance(database, str):
            web.pool = await db.create_pool(database, max_size=settings.pool_max_size)
            try:
                yield
            finally:
                await web.pool.close()
        else:
            yield

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/login", auth.login_page, methods=["GET"]),
        Route("/login", auth.login, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/lang", auth.switch_language, methods=["POST"]),
        Route("/report", views.details, methods=["GET", "POST"]),
        Route("/totals/{kind}", views.totals, methods=["GET", "POST"]),
        Route("/calls/{call_id}", views.call_chain, methods=["GET"]),
        Route("/api/users", views.api_users, methods=["GET"]),
        Route("/api/systems", views.api_systems, methods=["GET"]),
        Route("/admin/ops", ops.ops_page, methods=["GET"]),
        Route("/static/report.css", report_stylesheet, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Mount("/fonts", app=StaticFiles(directory=FONTS_DIR), name="fonts"),
    ]
    middleware = [
        Middleware(SecurityHeadersMiddleware, close_connections=settings.close_connections),
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            max_age=settings.session_max_age,
            secure=settings.secure_cookies,
        ),
    ]
    handlers = {
        LoginRequiredError: _login_required,
        ForbiddenError: _forbidden,
        HTTPException: _http_error,
        CalltrailError: _calltrail_error,
        asyncpg.PostgresError: _unavailable,
        asyncpg.InterfaceError: _unavailable,
        OSError: _unavailable,
    }
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    app.state.web = web
    app.state.report_css = report_css()
    return app
