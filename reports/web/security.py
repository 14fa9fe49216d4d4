"""Security headers on every response: a strict CSP, no sniffing, no framing, no referrer leaks.

The CSP allows scripts and styles from our own origin only (no 'unsafe-inline', no eval), so
every script is a static file and an injected <script> or on* attribute never runs. Report pages
hold personal data, so dynamic responses are not stored by caches.
"""

from __future__ import annotations

import re
from base64 import b64encode
from collections.abc import Iterable
from hashlib import sha256
from html import unescape

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')


def policy(style_hashes: Iterable[str] = ()) -> str:
    """The CSP; `style_hashes` ('sha256-...') allow exactly those inline style attribute values.

    The report renderer may give a few elements a style attribute (column widths); a page that
    shows such a report allows those exact values by hash, never inline styles in general.
    """
    hashes = sorted(set(style_hashes))
    styles = " ".join(["'self'", *(["'unsafe-hashes'"] if hashes else []), *(f"'{h}'" for h in hashes)])
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            f"style-src {styles}",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def style_hashes(html: str) -> tuple[str, ...]:
    """CSP hashes of every inline style attribute value in `html`."""
    values = {unescape(value) for value in _STYLE_ATTRIBUTE.findall(html)}
    return tuple(sorted("sha256-" + b64encode(sha256(v.encode()).digest()).decode() for v in values))


def without_style_attributes(html: str) -> str:
    """`html` with its inline style attributes removed (for fragments inserted into another page)."""
    return _STYLE_ATTRIBUTE.sub("", html)


CONTENT_SECURITY_POLICY = policy()

HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class SecurityHeadersMiddleware:
    """Adds HEADERS to every HTTP response; no-store on everything but static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap `send` so the response start carries the headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        tls = scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                # A page may have tightened or extended the policy for itself (style hashes).
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                if tls:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_wrapper)
