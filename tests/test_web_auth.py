"""Log-in, log-out, sessions, CSRF, throttling and security headers of the web app, over HTTP,
against a real PostgreSQL seeded with users of every role."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from test_web_seed import PASSWORD, csrf_of, login, post_login, seeded_database, web_client

from reports.web.ratelimit import LoginRateLimiter
from reports.web.security import CONTENT_SECURITY_POLICY
from reports.web.session import COOKIE_NAME

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def web_dsn(pg_admin_dsn: str, template_database: str) -> Iterator[str]:
    """A seeded database shared by this module's tests."""
    yield from seeded_database(pg_admin_dsn, template_database)


@pytest_asyncio.fixture
async def client(web_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app (fresh throttle) over the seeded database."""
    async with web_client(web_dsn) as test_client:
        yield test_client


async def test_login_page_is_persian_rtl_by_default(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert '<html lang="fa" dir="rtl">' in page.text
    assert "نام کاربری" in page.text
    assert "گذرواژه" in page.text
    assert "<script>" not in page.text
    assert "onclick" not in page.text
    assert "style=" not in page.text


async def test_login_logout_round_trip(client: httpx.AsyncClient) -> None:
    response = await post_login(client, "sales")
    assert response.status_code == 303
    assert response.headers["location"] == "/report"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(COOKIE_NAME + "=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert PASSWORD not in cookie
    page = await client.get("/report")
    assert page.status_code == 200
    assert "سارا فروش" in page.text
    logout = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert logout.status_code == 303
    assert logout.headers["location"] == "/login?bye=1"
    assert "از سامانه خارج شدید" in (await client.get("/login?bye=1")).text
    after = await client.get("/report")
    assert after.status_code == 303
    assert after.headers["location"] == "/login?next=/report"


async def test_wrong_password_and_unknown_user_get_the_same_answer(client: httpx.AsyncClient) -> None:
    wrong = await post_login(client, "sales", "not the password")
    unknown = await post_login(client, "nobody-here", "not the password")
    disabled = await post_login(client, "former")
    for response in (wrong, unknown, disabled):
        assert response.status_code == 401
        assert "نام کاربری یا گذرواژه نادرست است." in response.text
    # Apart from the echoed user name and the CSRF token, the pages are identical.
    def normal(response: httpx.Response, name: str) -> str:
        return response.text.replace(name, "X").replace(csrf_of(response.text), "T")

    assert normal(wrong, "sales") == normal(unknown, "nobody-here") == normal(disabled, "former")


async def test_login_needs_csrf_token(client: httpx.AsyncClient) -> None:
    await client.get("/login")
    missing = await client.post("/login", data={"username": "sales", "password": PASSWORD})
    assert missing.status_code == 403
    assert "فرم منقضی شده" in missing.text
    forged = await client.post("/login", data={"username": "sales", "password": PASSWORD, "csrf_token": "forged"})
    assert forged.status_code == 403
    assert (await client.get("/report")).status_code == 303  # still anonymous


async def test_csrf_rejects_foreign_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    response = await client.post(
        "/login", data={"username": "sales", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


async def test_csrf_token_changes_at_login(client: httpx.AsyncClient) -> None:
    before = csrf_of((await client.get("/login")).text)
    await login(client, "crm")
    after = csrf_of((await client.get("/report")).text)
    assert before != after
    stale = await client.post("/logout", data={"csrf_token": before})
    assert stale.status_code == 403


async def test_every_form_posts_a_csrf_token(client: httpx.AsyncClient) -> None:
    pages = [(await client.get("/login")).text]
    await login(client, "admin")
    for path in ("/report", "/totals/agent", "/totals/date", "/totals/number", "/admin/ops"):
        pages.append((await client.get(path)).text)
    names = ("/login", "/report", "/totals/agent", "/totals/date", "/totals/number", "/admin/ops")
    for path, html in zip(names, pages, strict=True):
        forms = html.count("<form")
        assert forms >= 1, path
        assert html.count('name="csrf_token"') == forms, path


async def test_login_throttled_per_user(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (await post_login(client, "support", "wrong")).status_code == 401
    blocked = await post_login(client, "support")
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 300
    assert "تلاش‌های ناموفق زیادی انجام شده است. ۵ دقیقه دیگر" in blocked.text
    assert (await client.get("/report")).status_code == 303  # the right password did not log in


async def test_login_throttled_per_address(web_dsn: str) -> None:
    async with web_client(web_dsn, address="10.1.1.1") as client:
        # Five different accounts from one address: the sixth attempt is refused whoever it names.
        for name in ("a1", "a2", "a3", "a4", "a5"):
            assert (await post_login(client, name, "wrong")).status_code == 401
        assert (await post_login(client, "admin")).status_code == 429


async def test_security_headers_everywhere(client: httpx.AsyncClient) -> None:
    for path in ("/login", "/static/app.js", "/nope", "/healthz"):
        response = await client.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "connection" not in response.headers  # one process: connections are kept alive
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert (await client.get("/login")).headers["cache-control"] == "no-store"


async def test_secure_cookie_over_tls(web_dsn: str) -> None:
    async with web_client(web_dsn, base_url="https://calltrail.example") as tls:
        response = await tls.get("/login")
        assert "Secure" in response.headers["set-cookie"]
        assert response.headers["strict-transport-security"].startswith("max-age=")
    async with web_client(web_dsn, secure_cookies=True) as forced:
        assert "Secure" in (await forced.get("/login")).headers["set-cookie"]


async def test_tampered_session_cookie_is_anonymous(client: httpx.AsyncClient) -> None:
    await login(client, "admin")
    value = client.cookies[COOKIE_NAME]
    client.cookies.set(COOKIE_NAME, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert (await client.get("/report")).status_code == 303


async def test_language_switch_to_english_and_back(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    switched = await client.post("/lang", data={"lang": "en", "next": "/login", "csrf_token": csrf_of(page.text)})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/login"
    english = await client.get("/login")
    assert '<html lang="en" dir="ltr">' in english.text
    assert "User name" in english.text
    assert "نام کاربری" not in english.text
    assert "Wrong user name or password." in (await post_login(client, "sales", "wrong")).text
    await login(client, "sales")
    assert '<html lang="en" dir="ltr">' in (await client.get("/report")).text  # the choice survives the log-in


async def test_next_is_kept_and_never_leaves_the_site(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/totals/agent")
    assert redirect.headers["location"] == "/login?next=/totals/agent"
    page = await client.get(redirect.headers["location"])
    assert 'name="next" value="/totals/agent"' in page.text
    response = await client.post(
        "/login", data={"username": "sales", "password": PASSWORD, "csrf_token": csrf_of(page.text),
                        "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/report"


async def test_disabled_user_loses_session(web_dsn: str) -> None:
    conn = await asyncpg.connect(web_dsn)
    try:
        async with web_client(web_dsn) as client:
            await login(client, "crm")
            assert (await client.get("/report")).status_code == 200
            await conn.execute("UPDATE users SET active = false WHERE username = 'crm'")
            try:
                assert (await client.get("/report")).status_code == 303
            finally:
                await conn.execute("UPDATE users SET active = true WHERE username = 'crm'")
    finally:
        await conn.close()


async def test_throttle_window_slides(db: asyncpg.Connection) -> None:
    limiter = LoginRateLimiter(max_failures=5, window_seconds=300)
    now = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    for _ in range(5):
        assert await limiter.retry_after(db, "Sara", "10.0.0.1", now) is None
        await limiter.record_failure(db, "Sara", "10.0.0.1", now)
        now += timedelta(seconds=10)
    assert await limiter.retry_after(db, "sara", "10.0.0.9", now) == 250  # user names compare case-insensitively
    assert await limiter.retry_after(db, "reza", "10.0.0.1", now) == 250  # the address is blocked too
    assert await limiter.retry_after(db, "reza", "10.0.0.2", now) is None
    now += timedelta(seconds=251)
    assert await limiter.retry_after(db, "sara", "10.0.0.1", now) is None
    await limiter.record_failure(db, "sara", "10.0.0.1", now)
    await limiter.record_success(db, "sara")
    assert await limiter.retry_after(db, "sara", "10.0.0.3", now) is None
    # The address keeps its count (4 of the first 5 are still in the window, and the new one).
    assert await db.fetchval("SELECT count(*) FROM web_login_failures WHERE key = 'addr:10.0.0.1'") == 5
    # Recording a failure deletes every failure that has left the window, whatever its key.
    now += timedelta(seconds=300)
    await limiter.record_failure(db, "nima", "10.0.0.4", now)
    assert sorted(await db.fetchval("SELECT array_agg(key) FROM web_login_failures")) == [
        "addr:10.0.0.4", "user:nima"]


async def test_throttle_is_shared_by_two_apps(web_dsn: str) -> None:
    # Two app instances, each with its own pool, as two worker processes are: the limit holds over both.
    async with web_client(web_dsn) as first, web_client(web_dsn) as second:
        for client in (first, second, first, second, second):
            assert (await post_login(client, "support", "wrong")).status_code == 401
        assert (await post_login(first, "support")).status_code == 429
        assert (await post_login(second, "support")).status_code == 429


async def test_two_workers_share_sessions_and_throttle(web_dsn: str) -> None:
    # The real server with two worker processes and no configured secret. One worker at a time is
    # stopped (SIGSTOP) so the other must answer: a session made by either is good in both, and
    # failures counted by either block the next attempt in the other.
    await _forget_failures(web_dsn)
    output = await asyncio.to_thread(_two_workers, web_dsn)
    assert "2 workers" in output, output
    assert "Child process" not in output, output  # no worker died or was restarted meanwhile
    await _forget_failures(web_dsn)


def _two_workers(web_dsn: str) -> str:
    """Run the two-worker scenario against a real server; returns the server's log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTRAIL_WEB_")}
    env["CALLTRAIL_DSN"] = web_dsn
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "calltrail-report"), "-v", "serve", "--listen",
             f"127.0.0.1:{port}", "--workers", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(base, process, log)
            workers = _workers(process.pid, 2)
            # A new connection for every request, so a request goes to whichever worker is running.
            limits = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(base_url=base, limits=limits) as sales, \
                    httpx.Client(base_url=base, limits=limits) as guesser:
                with _only(workers[0], workers):
                    _post_login(sales, "sales", PASSWORD, 303)
                    _post_login(guesser, "support", "wrong", 401)
                    _post_login(guesser, "support", "wrong", 401)
                with _only(workers[1], workers):
                    page = sales.get("/report")
                    assert page.status_code == 200  # the other worker's session
                    # Several workers: every answer closes its connection, so the next request goes to a free worker.
                    assert page.headers["connection"] == "close"
                    for _ in range(3):
                        _post_login(guesser, "support", "wrong", 401)
                with _only(workers[0], workers):
                    _post_login(guesser, "support", PASSWORD, 429)
                with _only(workers[1], workers):
                    _post_login(guesser, "support", PASSWORD, 429)
                    assert sales.get("/report").status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=20)
        log.seek(0)
        return log.read().decode(errors="replace")


def _post_login(client: httpx.Client, username: str, password: str, status: int) -> None:
    token = csrf_of(client.get("/login?next=/report").text)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == status, response.text


def _workers(parent: int, count: int) -> list[int]:
    """The worker processes of `calltrail-report serve` (uvicorn spawns them; a resource tracker too)."""
    deadline = time.monotonic() + 30
    while True:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        found = [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        if len(found) == count or time.monotonic() > deadline:
            assert len(found) == count, found
            return found
        time.sleep(0.2)


@contextmanager
def _only(running: int, workers: list[int]) -> Iterator[None]:
    """Stop every worker but `running` for the block (short: uvicorn restarts a worker silent for 5 s)."""
    stopped = [w for w in workers if w != running]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


async def _forget_failures(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM web_login_failures")
    finally:
        await conn.close()


def _wait_for(base: str, process: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).text == "ok":
                return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"calltrail-report serve did not start: {log.read().decode(errors='replace')}")
            time.sleep(0.2)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
