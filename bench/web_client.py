"""A minimal keep-alive HTTP/1.1 client on raw asyncio streams, for bench/web.py's load.

httpx costs a few ms of CPU per request in the client, and the clients share the 2 cores with the
server and PostgreSQL: a heavy client makes the server look slower than it is. This one does only
what the benchmark needs: one persistent connection per client, a cookie jar of one session cookie,
GET and form POST, Content-Length bodies (what uvicorn sends for the app's responses). Anything
else (chunked bodies, a closed connection) is an error, not handled silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from urllib.parse import urlencode

# Seconds a kept-alive connection may stay unused before the client opens a new one.
IDLE_LIMIT = 3.0


class HttpError(Exception):
    """The server's answer was not what the client can read."""


@dataclass
class Response:
    """Status, headers (lower-case names; Set-Cookie values joined by newlines) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8."""
        return self.body.decode("utf-8")


class Client:
    """One keep-alive connection to host:port with its cookies."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.cookies: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_used = time.monotonic()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # uvicorn closes a keep-alive connection idle for 5 s (clients wait while the others log in):
        # open a new one then, rather than send on a connection the server is closing.
        idle = time.monotonic() - self._last_used
        if self._reader is not None and (self._reader.at_eof() or idle > IDLE_LIMIT):
            await self.close()
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        return self._reader, self._writer

    async def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Response:
        """Send one request on the connection and read the whole answer."""
        reader, writer = await self._connection()
        body = urlencode(form).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if form is not None:
            lines.append("Content-Type: application/x-www-form-urlencoded")
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.x status line: {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = headers[name] + "\n" + value if name in headers else value
            if name == "set-cookie":
                self._keep_cookie(value)
        if "transfer-encoding" in headers:
            raise HttpError(f"unexpected Transfer-Encoding: {headers['transfer-encoding']}")
        length = int(headers.get("content-length", "0"))
        payload = await reader.readexactly(length) if length else b""
        self._last_used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(int(parts[1]), headers, payload)

    def _keep_cookie(self, value: str) -> None:
        pair = value.split(";", 1)[0]
        name, _, cookie = pair.partition("=")
        if "max-age=0" in value.lower() or not cookie:
            self.cookies.pop(name.strip(), None)
        else:
            self.cookies[name.strip()] = cookie.strip()

    async def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
