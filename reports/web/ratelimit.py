"""Login throttling: after N failures in a sliding window, a user name or address must wait.

Counted separately per user name (guessing one account from many addresses) and per client
address (trying many accounts from one address). The failures are rows of `web_login_failures`
in PostgreSQL, timed by the database's clock, so the limit holds across every worker process of
`calltrail-report serve` (and across restarts).
"""

from __future__ import annotations

import math
from datetime import datetime

import asyncpg

from reports.web import db


class LoginRateLimiter:
    """Sliding-window failure counter keyed by user name and by address, kept in the database."""

    def __init__(self, max_failures: int = 5, window_seconds: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds

    @staticmethod
    def _keys(username: str, address: str) -> list[str]:
        return ["user:" + username.strip().lower(), "addr:" + address]

    async def retry_after(self, conn: asyncpg.Connection, username: str, address: str,
                          now: datetime | None = None) -> int | None:
        """Seconds to wait before another attempt is allowed, or None when allowed now."""
        wait = await db.login_wait(conn, self._keys(username, address), self.max_failures, self.window_seconds, now)
        return max(1, math.ceil(wait)) if wait is not None and wait > 0 else None

    async def record_failure(self, conn: asyncpg.Connection, username: str, address: str,
                             now: datetime | None = None) -> None:
        """Count one failed attempt against both the user name and the address."""
        await db.record_login_failure(conn, self._keys(username, address), self.window_seconds, now)

    async def record_success(self, conn: asyncpg.Connection, username: str) -> None:
        """Forget the user name's failures; the address keeps its count so one good account cannot reset it."""
        await db.forget_login_failures(conn, self._keys(username, "")[0])
