"""Who is asking: log-in, log-out, the session's user, and the role rule on every page.

The session cookie carries only the user name and the log-in time; the user (roles, active) is
read from the database on every request, so removing a role or disabling a user takes effect at
once. Failed log-ins say the same thing whether the user exists or not, and are throttled per user
name and per address (ratelimit.py, in the database, so the limit holds across worker processes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from reports import users
from reports.data import Connection
from reports.users import User
from reports.web import csrf
from reports.web.pages import lang, pool, render, safe_next, state

log = logging.getLogger(__name__)

MAX_USERNAME = 150
MAX_PASSWORD = 1024


class LoginRequiredError(Exception):
    """The page needs a logged-in user; the handler redirects to the login page."""


class ForbiddenError(Exception):
    """The user lacks every role that may see the page; carries those roles for the 403 page."""

    def __init__(self, roles: Iterable[str]) -> None:
        super().__init__("forbidden")
        allowed = set(roles)
        self.roles = tuple(r for r in users.ROLES if r in allowed)


async def current_user(request: Request, conn: Connection | None = None) -> User | None:
    """The logged-in, still active user, or None (cached on the request).

    `conn`: a connection the request already holds (saves taking and resetting another one).
    """
    if hasattr(request.state, "user"):
        cached: User | None = request.state.user
        return cached
    user: User | None = None
    username = request.session.get("user")
    login_at = request.session.get("login_at")
    if isinstance(username, str) and isinstance(login_at, (int, float)):
        if time.time() - login_at <= state(request).settings.session_max_age:
            if conn is not None:
                user = await users.get_user(conn, username)
            else:
                async with pool(request).acquire() as acquired:
                    user = await users.get_user(acquired, username)
            if user is not None and not user.active:
                user = None
        if user is None:
            _end_session(request)
    request.state.user = user
    return user


def _end_session(request: Request) -> None:
    # Keep the language choice: it is not tied to the user.
    chosen = request.session.get("lang")
    request.session.clear()
    if chosen:
        request.session["lang"] = chosen


async def require(request: Request, roles: Iterable[str], conn: Connection | None = None) -> User:
    """The current user when they hold one of `roles`; else LoginRequiredError or ForbiddenError."""
    allowed = tuple(roles)
    user = await current_user(request, conn)
    if user is None:
        raise LoginRequiredError()
    if not set(allowed).intersection(user.roles):
        raise ForbiddenError(allowed)
    return user


def check_csrf(request: Request, submitted: object) -> None:
    """Refuse the form with 403 unless its CSRF token is the session's."""
    if not csrf.valid(request, submitted):
        log.warning("CSRF check failed for %s %s", request.method, request.url.path)
        raise HTTPException(403, "csrf")


def client_address(request: Request) -> str:
    """The client's address (uvicorn puts the proxy's X-Forwarded-For here when it trusts the proxy)."""
    return request.client.host if request.client else "unknown"


async def login_page(request: Request) -> Response:
    """GET /login: the form (already logged-in users go on to the report)."""
    if await current_user(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    notice = "logout.done" if request.query_params.get("bye") else None
    return render(request, "login.html", {"error": None, "notice": notice, "username": "", "next": _next(request)})


def _next(request: Request) -> str:
    return safe_next(request.query_params.get("next"))


async def login(request: Request) -> Response:
    """POST /login: check the CSRF token, the throttle, then the password."""
    form = await request.form()
    check_csrf(request, form.get(csrf.FIELD))
    username = str(form.get("username") or "").strip()[:MAX_USERNAME]
    password = str(form.get("password") or "")[:MAX_PASSWORD]
    target = safe_next(form.get("next"))
    context: dict[str, object] = {"username": username, "next": target, "notice": None}
    if not username or not password:
        return render(request, "login.html", {**context, "error": "login.missing"}, status_code=400)
    limiter = state(request).limiter
    address = client_address(request)
    async with pool(request).acquire() as conn:
        wait = await limiter.retry_after(conn, username, address)
        if wait is not None:
            minutes = max(1, -(-wait // 60))
            log.warning("login throttled for user %r from %s (%d s left)", username, address, wait)
            return render(
                request,
                "login.html",
                {**context, "error": "login.throttled", "minutes": minutes},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        # verify_password runs argon2 in a worker thread: other requests go on meanwhile.
        user = await users.verify_password(conn, username, password)
        if user is None:
            await limiter.record_failure(conn, username, address)
            log.info("failed login for user %r from %s", username, address)
            return render(request, "login.html", {**context, "error": "login.failed"}, status_code=401)
        await limiter.record_success(conn, username)
    # A new session on log-in (no fixation): only the language survives.
    _end_session(request)
    request.session["user"] = user.username
    request.session["login_at"] = time.time()
    csrf.rotate(request)
    log.info("user %s logged in from %s", user.username, address)
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    """POST /logout: end the session."""
    form = await request.form()
    user = request.session.get("user")
    if user:
        # Without a session there is nothing to end, and no token to check either.
        check_csrf(request, form.get(csrf.FIELD))
    _end_session(request)
    if user:
        log.info("user %s logged out", user)
    return RedirectResponse("/login?bye=1", status_code=303)


async def switch_language(request: Request) -> Response:
    """POST /lang: remember the chosen language for this browser."""
    form = await request.form()
    check_csrf(request, form.get(csrf.FIELD))
    chosen = str(form.get("lang") or "")
    request.session["lang"] = chosen if chosen in ("fa", "en") else lang(request)
    return RedirectResponse(safe_next(form.get("next")), status_code=303)
