"""CSRF protection: a per-session synchronizer token in every form, checked on every POST.

The token lives in the signed session cookie and is echoed in a hidden `csrf_token` field.
A POST whose token is missing or different, or whose Origin names another site, is refused
with 403. GET requests change nothing, so they need no token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

SESSION_KEY = "csrf"
FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """The session's token, created on first use."""
    session: dict[str, Any] = request.session
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def rotate(request: Request) -> str:
    """A fresh token (after login), so a token seen before authentication is useless after it."""
    request.session[SESSION_KEY] = secrets.token_urlsafe(32)
    return str(request.session[SESSION_KEY])


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        # Old browsers and some privacy settings send no Origin (or "null"); the token still decides.
        return origin != "null"
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def valid(request: Request, submitted: object) -> bool:
    """True when the submitted token matches the session's and the origin is ours."""
    expected = request.session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not isinstance(submitted, str):
        return False
    return same_origin(request) and hmac.compare_digest(expected.encode(), submitted.encode())
