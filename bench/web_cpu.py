"""CPU per report page, in process: the whole ASGI app (middleware, session, form, report, page)
driven without HTTP, so load on the shared machine hardly moves the figure.

    .venv/bin/python bench/web_cpu.py --server postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/web_cpu.py --requests 300 --profile /tmp/web.prof   # cProfile as well

Uses `calltrail_bench` (bench/report_data.py, 10 million calls) and the same form as bench/web.py
(the latest full Jalali month, by day, all systems, "show", first 100 rows). Prints the median and
quartiles of the app's CPU time per page (time.process_time of this process: the app's Python,
asyncpg and the kernel work on its side) and PostgreSQL's CPU per page (the pool's backends, from
/proc), plus the wall time of one page alone.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.web import (
    APP_NAME,
    CSRF,
    PASSWORD,
    cpu_seconds,
    latest_month,
    with_database,
)
from reports import users
from reports.web.app import create_app
from reports.web.cli import tune_gc
from reports.web.settings import WebSettings

Message = dict[str, Any]
# Not bench/web.py's user: both benchmarks may run at once, and each removes its own user at the end.
USERNAME = "bench_web_cpu"


async def add_user(dsn: str) -> None:
    """The sales manager the page is asked for by."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM users WHERE username = $1", USERNAME)
        await users.add_user(conn, USERNAME, full_name="محک وب", roles=["sales_manager"], password=PASSWORD)
    finally:
        await conn.close()


async def remove_user(dsn: str) -> None:
    """Leave the (shared) benchmark database as it was."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM users WHERE username = $1", USERNAME)
    finally:
        await conn.close()


class Answer:
    """One response of the app: status, headers and body."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""


async def call(app: Any, method: str, path: str, cookie: str, form: dict[str, str] | None = None) -> Answer:
    """One request straight into the ASGI app (no sockets, no HTTP parsing)."""
    body = urlencode(form).encode() if form is not None else b""
    headers = [(b"host", b"bench"), (b"cookie", cookie.encode())]
    if form is not None:
        headers += [(b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
             "state": {}}
    sent = False
    answer = Answer()

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)
    return answer


def session_cookie(answer: Answer, cookie: str) -> str:
    """The cookie jar (one session cookie) after `answer`."""
    for name, value in answer.headers:
        if name == b"set-cookie":
            return value.decode().split(";", 1)[0]
    return cookie


async def backend_cpu(conn: asyncpg.Connection) -> float:
    """CPU seconds of the app pool's PostgreSQL backends so far."""
    rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1", APP_NAME)
    return sum(cpu_seconds(r["pid"]) for r in rows)


async def run(dsn: str, requests: int, profile: str | None) -> None:
    """Log in, warm up, then time `requests` report pages one after the other."""
    year, month = await latest_month(dsn)
    pool = await asyncpg.create_pool(f"{dsn}?application_name={APP_NAME}", min_size=1, max_size=4)
    assert pool is not None
    app = create_app(pool, WebSettings(secret_key="bench-web-cpu-secret-0123456789"))
    # As a `calltrail-report serve` worker does once its app is built.
    tune_gc()
    monitor = await asyncpg.connect(dsn)
    try:
        cookie = ""
        first = await call(app, "GET", "/login", cookie)
        cookie = session_cookie(first, cookie)
        token = CSRF.search(first.body.decode())
        assert token
        answer = await call(app, "POST", "/login", cookie,
                            {"username": USERNAME, "password": PASSWORD, "csrf_token": token.group(1)})
        assert answer.status == 303, answer.body[:300]
        cookie = session_cookie(answer, cookie)
        page = await call(app, "GET", "/report", cookie)
        token = CSRF.search(page.body.decode())
        assert token
        form = {"period": "month", "calendar": "jalali", "year": str(year), "month": str(month), "by": "day",
                "type": "all", "format": "pdf", "action": "show", "csrf_token": token.group(1)}
        for _ in range(20):
            answer = await call(app, "POST", "/report", cookie, form)
            assert answer.status == 200, answer.body[-300:]
            assert answer.body.count(b"data-call=") == 100, answer.body[-300:]
        cpu: list[float] = []
        wall: list[float] = []
        profiler = cProfile.Profile() if profile else None
        pg_before = await backend_cpu(monitor)
        for _ in range(requests):
            began_cpu, began = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            answer = await call(app, "POST", "/report", cookie, form)
            if profiler:
                profiler.disable()
            cpu.append(time.process_time() - began_cpu)
            wall.append(time.perf_counter() - began)
            assert answer.status == 200
        pg = (await backend_cpu(monitor) - pg_before) / requests
        if profiler and profile:
            profiler.dump_stats(profile)
        q = statistics.quantiles(cpu, n=10)
        print(f"Jalali {year}/{month:02d} by day, all systems, first 100 rows; {requests} pages; "
              f"load average {os.getloadavg()[0]:.2f}")
        # Other load on the machine inflates CPU times too (shared caches and cores): the low
        # percentiles move least, so they are printed beside the median.
        print(f"app CPU per page: median {statistics.median(cpu) * 1000:.2f} ms, 10th percentile {q[0] * 1000:.2f} ms, "
              f"minimum {min(cpu) * 1000:.2f} ms, 90th percentile {q[-1] * 1000:.2f} ms; "
              f"PostgreSQL CPU per page {pg * 1000:.2f} ms (mean); wall per page median "
              f"{statistics.median(wall) * 1000:.2f} ms; page {len(answer.body):,} bytes")
    finally:
        await monitor.close()
        await pool.close()


def main() -> None:
    """Parse the options, add the bench user, measure, remove it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("CALLTRAIL_BENCH_SERVER",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--profile", help="write cProfile statistics of the timed pages to this file")
    args = parser.parse_args()
    dsn = with_database(args.server, "calltrail_bench")
    asyncio.run(add_user(dsn))
    try:
        asyncio.run(run(dsn, args.requests, args.profile))
    finally:
        asyncio.run(remove_user(dsn))


if __name__ == "__main__":
    main()
