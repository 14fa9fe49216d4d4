"""The session cookie: signed (itsdangerous), HttpOnly, SameSite=Lax, Secure over TLS.

Starlette's own SessionMiddleware fixes the Secure flag at start-up; this one sets it per
request, so the same process serves plain HTTP on 127.0.0.1 (tests, a local look) and marks the
cookie Secure when the request came over TLS (nginx passes X-Forwarded-Proto and uvicorn's
proxy-headers support turns it into the request scheme), or always when configured.
The cookie holds only the user name, login time, CSRF token and language, never a password.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from binascii import Error as BinasciiError

import itsdangerous
from itsdangerous.exc import BadSignature
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import Session
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "calltrail_session"


class SessionMiddleware:
    """ASGI middleware putting a signed-cookie session in scope["session"]."""

    def __init__(self, app: ASGIApp, secret_key: str, max_age: int, secure: bool | None = None) -> None:
        self.app = app
        self.signer = itsdangerous.TimestampSigner(secret_key, salt="calltrail.session")
        self.max_age = max_age
        self.secure = secure

    def _load(self, connection: HTTPConnection) -> Session:
        raw = connection.cookies.get(COOKIE_NAME)
        if not raw:
            return Session()
        try:
            data = json.loads(b64decode(self.signer.unsign(raw.encode(), max_age=self.max_age)))
        except (BadSignature, BinasciiError, ValueError):
            return Session()
        return Session(data) if isinstance(data, dict) else Session()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Load the session, run the app, write the cookie back when the session changed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        had_cookie = COOKIE_NAME in connection.cookies
        session = self._load(connection)
        scope["session"] = session
        secure = self.secure if self.secure is not None else scope.get("scheme") == "https"
        flags = "; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if session.accessed:
                    headers.add_vary_header("Cookie")
                if session.modified and session:
                    value = self.signer.sign(b64encode(json.dumps(session).encode())).decode()
                    headers.append("Set-Cookie", f"{COOKIE_NAME}={value}; Path=/; Max-Age={self.max_age}{flags}")
                elif session.modified and had_cookie:
                    headers.append("Set-Cookie", f"{COOKIE_NAME}=; Path=/; Max-Age=0{flags}")
            await send(message)

        await self.app(scope, receive, send_wrapper)
