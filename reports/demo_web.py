"""`calltrail-report demo --serve`: the web app on loopback, with a link that logs the demo manager in.

The web app is the ordinary one (`reports.web.create_app`). In front of it sits one extra route,
`/demo-login/<token>`, with a random token printed only to the terminal: it logs in through the
app's own login form (GET /login for the CSRF token, POST /login with the demo manager's
password), then hands the session cookie the app issued to the browser and sends it to the
report form. Nothing in the app itself changes, and every other request goes straight to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import sys
import threading
import webbrowser
from typing import Any
from urllib.parse import urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_CSRF_INPUT = re.compile(rb'name="csrf_token" value="([^"]+)"')


class DemoLogin:
    """ASGI wrapper: `/demo-login/<token>` logs `username` in; everything else goes to `app`."""

    def __init__(self, app: ASGIApp, token: str, username: str, password: str) -> None:
        self.app = app
        self.path = f"/demo-login/{token}"
        self.username = username
        self.password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the login link, or pass the request (and lifespan) on to the app."""
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        cookies = await self._log_in(scope)
        headers = [(b"location", b"/report"), (b"cache-control", b"no-store")]
        headers += [(b"set-cookie", cookie) for cookie in cookies]
        await send({"type": "http.response.start", "status": 303 if cookies else 502, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if cookies else b"demo log-in failed"})

    async def _log_in(self, scope: Scope) -> list[bytes]:
        status, headers, body = await self._call(scope, "GET", "/login", [], b"")
        match = _CSRF_INPUT.search(body)
        cookie = _cookie_pair(headers)
        if status != 200 or match is None or cookie is None:
            log.error("demo log-in: the login page answered %d without a form", status)
            return []
        form = urlencode({"username": self.username, "password": self.password, "next": "/report",
                          "csrf_token": match.group(1).decode()}).encode()
        status, headers, _ = await self._call(
            scope, "POST", "/login",
            [(b"cookie", cookie), (b"content-type", b"application/x-www-form-urlencoded")], form,
        )
        if status != 303:
            log.error("demo log-in: the app refused the demo manager's log-in (HTTP %d)", status)
            return []
        return [value for name, value in headers if name == b"set-cookie"]

    async def _call(self, scope: Scope, method: str, path: str, headers: list[tuple[bytes, bytes]],
                    body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request to the app in this process; returns status, headers and body."""
        host = [(k, v) for k, v in scope["headers"] if k == b"host"]
        inner = {**scope, "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": host + headers + [(b"content-length", str(len(body)).encode())]}
        delivered = False
        response: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                response["body"] += message.get("body", b"")

        await self.app(inner, receive, send)
        return response["status"], response["headers"], response["body"]


def _cookie_pair(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The `name=value` part of the response's (last) session cookie."""
    values = [v for k, v in headers if k == b"set-cookie"]
    return values[-1].split(b";", 1)[0] if values else None


def listen_socket(listen: str) -> socket.socket:
    """A bound socket for `HOST:PORT` (port 0: a free one); ValueError says what is wrong."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT (e.g. 127.0.0.1:8080, or port 0 for a free one)")
    host = host.strip("[]") or "127.0.0.1"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port_text)))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {listen}: {exc.strerror}") from exc
    return sock


def demo_app(dsn: str, token: str, username: str, password: str) -> ASGIApp:
    """The web app over `dsn`, with the demo log-in link in front."""
    from reports.demo import COMPANY
    from reports.web import create_app
    from reports.web.settings import WebSettings

    return DemoLogin(create_app(dsn, WebSettings(company_name=COMPANY)), token, username, password)


def _has_browser() -> bool:
    # On a server without a display, webbrowser would start a text browser in this terminal.
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def serve_demo(dsn: str, sock: socket.socket, username: str, password: str, echo: Any = print) -> None:
    """Serve the web app on `sock` until Ctrl-C, printing the log-in link and the credentials."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    token = secrets.token_urlsafe(18)
    link = f"http://{shown}:{port}/demo-login/{token}"
    echo(f"web app: http://{shown}:{port}/  (user {username}, password {password})")
    echo(f"logged-in link: {link}")
    echo("Ctrl-C stops the web app")
    config = uvicorn.Config(demo_app(dsn, token, username, password), log_config=None, access_log=False,
                            server_header=False, lifespan="on")
    server = uvicorn.Server(config)
    if _has_browser():
        def open_when_up() -> None:
            # Open the page only once the server accepts connections, so the first load works.
            while not server.started and not server.should_exit:
                threading.Event().wait(0.05)
            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(link)

        threading.Thread(target=open_when_up, daemon=True).start()
    server.run(sockets=[sock])
