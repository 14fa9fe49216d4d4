"""Log-in, log-out, sessions, CSRF, throttling and security headers of the web app, over HTTP,
against a real PostgreSQL seeded with users of every role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
from test_web_seed import PASSWORD, csrf_of, login, post_login, seeded_database, web_client

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
