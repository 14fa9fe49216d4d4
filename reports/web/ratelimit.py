"""Login throttling: after N failures in a sliding window, a user name or address must wait.

Counted separately per user name (guessing one account from many addresses) and per client
address (trying many accounts from one address). The state is in memory, so it is per process:
`calltrail-report serve` runs one worker, which is what makes the limit hold.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

# Cap on tracked keys so a flood of random user names cannot grow memory without bound.
MAX_TRACKED_KEYS = 50_000


class LoginRateLimiter:
    """Sliding-window failure counter keyed by user name and by address."""

    def __init__(
        self, max_failures: int = 5, window_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return "user:" + username.strip().lower(), "addr:" + address

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - self.window_seconds:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait before another attempt is allowed, or None when allowed now."""
        now = self._clock()
        wait = 0.0
        for key in self._keys(username, address):
            stamps = self._recent(key, now)
            if len(stamps) >= self.max_failures:
                # Allowed again once the oldest failure that still counts leaves the window.
                wait = max(wait, stamps[-self.max_failures] + self.window_seconds - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, username: str, address: str) -> None:
        """Count one failed attempt against both the user name and the address."""
        now = self._clock()
        if len(self._failures) >= MAX_TRACKED_KEYS:
            self._prune(now)
        for key in self._keys(username, address):
            self._recent(key, now)
            self._failures.setdefault(key, deque(maxlen=self.max_failures * 4)).append(now)

    def record_success(self, username: str) -> None:
        """Forget the user name's failures; the address keeps its count so one good account cannot reset it."""
        self._failures.pop(self._keys(username, "")[0], None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) >= MAX_TRACKED_KEYS:
            # Still full of live keys: drop the oldest half rather than grow.
            oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in oldest[: len(oldest) // 2]:
                del self._failures[key]
