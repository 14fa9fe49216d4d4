"""The report pages over HTTP on a real PostgreSQL: every route for every kind of user, the form's
errors, "show" (with paging and the transfer chain), downloads, the JSON endpoints and the
operations page."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
import openpyxl
import pytest
import pytest_asyncio
from pypdf import PdfReader
from test_web_seed import csrf_of, login, make_app, seeded_database, web_client

from reports.web import db

pytestmark = pytest.mark.asyncio

CALL = "1710900000.10"
FARVARDIN_1403 = {
    "period": "month", "calendar": "jalali", "year": "1403", "month": "1", "by": "day", "type": "all,internal",
    "branch": "tehran", "system": "tehran-main", "format": "csv", "agent": "",
}
REPORT_PAGES = ("/report", "/totals/agent", "/totals/date", "/totals/number", f"/calls/{CALL}?system=tehran-main")
ROLE_LIST_FA = "مدیر سیستم، مدیر فروش، مدیر ارتباط با مشتری، مدیر پشتیبانی"


@pytest.fixture(scope="module")
def web_dsn(pg_admin_dsn: str, template_database: str) -> Iterator[str]:
    """A seeded database shared by this module's tests (they only read it)."""
    yield from seeded_database(pg_admin_dsn, template_database)


@pytest_asyncio.fixture
async def client(web_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app over the seeded database."""
    async with web_client(web_dsn) as test_client:
        yield test_client


async def post_form(client: httpx.AsyncClient, path: str, **changes: str) -> httpx.Response:
    """Fetch the form at `path` for its CSRF token, then post the Farvardin 1403 filters with `changes`."""
    token = csrf_of((await client.get(path)).text)
    return await client.post(path, data={**FARVARDIN_1403, "action": "show", **changes, "csrf_token": token})


@pytest.mark.parametrize("username", [None, "agent101", "sales", "crm", "support", "admin"])
async def test_every_route_for_every_kind_of_user(client: httpx.AsyncClient, username: str | None) -> None:
    if username is not None:
        await login(client, username)
    manager = username in ("sales", "crm", "support", "admin")
    for path in (*REPORT_PAGES, "/api/users?q=ali", "/api/systems?branch=tehran", "/admin/ops"):
        response = await client.get(path)
        api = path.startswith("/api/")
        if username is None:
            if api:
                assert response.status_code == 401, path
            else:
                assert response.status_code == 303, path
                assert response.headers["location"].startswith("/login?next=")
        elif path == "/admin/ops":
            assert response.status_code == (200 if username == "admin" else 403), path
            if username != "admin":
                assert "فقط برای کاربرانی است که یکی از این نقش‌ها را دارند: مدیر سیستم." in response.text
        elif manager:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 403, path
            if api:
                assert response.json()["roles"] == ["admin", "sales_manager", "crm_manager", "support_manager"]
            else:
                assert ROLE_LIST_FA in response.text, path
    # Posting the report form (show and download) follows the same rule.
    if username is None:
        page = await client.get("/login")
        token = csrf_of(page.text)
        for path in ("/report", "/totals/agent"):
            response = await client.post(path, data={**FARVARDIN_1403, "csrf_token": token})
            assert response.status_code == 303, path
        return
    for path in ("/report", "/totals/agent", "/totals/date", "/totals/number"):
        shown = await post_form(client, path) if manager else await client.post(path, data=FARVARDIN_1403)
        assert shown.status_code == (200 if manager else 403), path
        if manager:
            download = await post_form(client, path, action="download")
            assert download.status_code == 200, path
            assert download.headers["content-type"].startswith("text/csv")


async def test_public_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).text == "ok"
    assert (await client.get("/login")).status_code == 200
    script = await client.get("/static/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert (await client.get("/fonts/Vazirmatn-Regular.ttf")).status_code == 200
    assert (await client.get("/")).headers["location"] == "/report"
    assert (await client.get("/no/such/page")).status_code == 404


async def test_report_form_needs_csrf(client: httpx.AsyncClient) -> None:
    await login(client, "sales")
    missing = await client.post("/report", data={**FARVARDIN_1403, "action": "download"})
    assert missing.status_code == 403
    assert "فرم منقضی شده" in missing.text
    forged = await client.post("/totals/number", data={**FARVARDIN_1403, "csrf_token": "x" * 43})
    assert forged.status_code == 403


@pytest.mark.parametrize(
    ("changes", "field", "persian"),
    [
        ({"month": "13"}, "month", "ماه را از فهرست انتخاب کنید."),
        ({"period": "custom", "from": "1403/13/40", "to": ""}, "from", "تاریخ شروع معتبر نیست"),
        ({"period": "custom", "from": "1403/02/01", "to": "1403/01/01"}, "to", "پیش از تاریخ شروع"),
        ({"agent": "nobody"}, "agent", "کارشناسی با این نام کاربری پیدا نشد."),
        ({"branch": "shiraz"}, "system", "در شعبه انتخاب‌شده نیست"),
        ({"branch": "mashhad"}, "branch", "این شعبه وجود ندارد."),
        ({"format": "docx", "action": "download"}, "format", "فرمت فایل را از فهرست انتخاب کنید."),
        ({"type": "voicemail"}, "type", "نوع تماس را از فهرست انتخاب کنید."),
        ({"period": "custom", "from": "1300/01/01", "to": "1403/01/01"}, "by", "تفکیک بزرگ‌تر"),
    ],
)
async def test_bad_filters_give_the_form_back(
    client: httpx.AsyncClient, changes: dict[str, str], field: str, persian: str
) -> None:
    await login(client, "crm")
    response = await post_form(client, "/report", **changes)
    assert response.status_code == 400
    assert persian in response.text
    assert f'id="error-{field}"' in response.text
    assert re.search(rf'name="{field}" id="{field}"[^>]*aria-invalid="true"', response.text)
    # The values are kept, so the user corrects one field instead of starting over.
    assert 'value="tehran-main" selected' in response.text or field in ("branch", "system")


async def test_bad_filter_in_english_shows_the_reason(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    await client.post("/lang", data={"lang": "en", "next": "/login", "csrf_token": csrf_of(page.text)})
    await login(client, "crm")
    response = await post_form(client, "/totals/date", period="custom", **{"from": "2024-02-30", "to": ""},
                               calendar="gregorian")
    assert response.status_code == 400
    assert "2024-02-30 does not exist: February 2024 has 29 days" in response.text
    assert "Please correct the marked fields." in response.text


async def test_show_details_with_pages_and_totals(web_dsn: str) -> None:
    async with web_client(web_dsn, detail_page_size=3) as client:
        await login(client, "support")
        first = await post_form(client, "/report")
        assert first.status_code == 200
        html = first.text
        assert "گزارش روزانه جزئیات تماس‌ها" in html
        assert "تجارت الکترونیک اول" in html
        assert "<svg" in html  # the chart opens the report
        assert html.count("data-call=") == 3
        # The row names its system (by name, not title): a call id alone may exist on two systems.
        assert 'data-call="1710900000.10" data-system="tehran-main"' in html
        assert "علی رضایی &rarr; مریم کریمی" in html  # the agent chain
        assert "هاشمی" in html
        assert "جمع کل دوره" in html  # grand totals (E)
        assert "صفحه ۱ از ۲" in html
        assert "<style" not in html  # the renderer's inline style is left out
        # Every style is a class of the served report.css: no inline style of any kind is allowed.
        csp = first.headers["content-security-policy"]
        assert "style-src 'self';" in csp
        assert "unsafe" not in csp
        assert " style=" not in html
        second = await post_form(client, "/report", page="2")
        assert "صفحه ۲ از ۲" in second.text
        assert second.text.count("data-call=") == 1
        assert 'data-call="1711080000.40"' in second.text  # the internal call is the fourth
        beyond = await post_form(client, "/report", page="99")
        assert "صفحه ۲ از ۲" in beyond.text


async def test_show_in_english(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    await client.post("/lang", data={"lang": "en", "next": "/login", "csrf_token": csrf_of(page.text)})
    await login(client, "admin")
    response = await post_form(client, "/report", calendar="gregorian", year="2024", month="3")
    assert response.status_code == 200
    assert '<html lang="en" dir="ltr">' in response.text
    assert "Daily call details report" in response.text
    assert "Get report" in response.text
    assert "دریافت گزارش" not in response.text


async def test_totals_pages(client: httpx.AsyncClient) -> None:
    await login(client, "sales")
    agent = await post_form(client, "/totals/agent")
    assert "گزارش مجموع تماس‌ها به تفکیک کارشناسان" in agent.text
    assert "علی رضایی" in agent.text
    assert "مجموع" in agent.text
    assert "میانگین" in agent.text
    assert "<li><span>به تفکیک:</span>" not in agent.text  # no breakdown in totals by agent
    by_date = await post_form(client, "/totals/date")
    assert "۱۴۰۳/۰۱/۰۱" in by_date.text
    assert "<li><span>به تفکیک:</span> روز</li>" in by_date.text
    number = await post_form(client, "/totals/number", sort="calls")
    assert "مرتب‌سازی" in number.text
    assert "09121234567" in number.text or "۰۹۱۲۱۲۳۴۵۶۷" in number.text


async def test_downloads_pdf_and_xlsx(client: httpx.AsyncClient) -> None:
    await login(client, "admin")
    pdf = await post_form(client, "/report", action="download", format="pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'attachment; filename="calls-2024-03-20-2024-04-19.pdf"'
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "گزارش روزانه جزئیات" in text
    assert "تجارت الکترونیک اول" in text
    assert "مریم کریمی" in text
    assert "هاشمی" in text
    xlsx = await post_form(client, "/totals/agent", action="download", format="xlsx")
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    cells = {str(cell.value) for sheet in book.worksheets for row in sheet.iter_rows() for cell in row if cell.value}
    assert "علی رضایی" in cells
    assert "مریم کریمی" in cells


async def test_transfer_chain(client: httpx.AsyncClient) -> None:
    await login(client, "crm")
    page = await client.get(f"/calls/{CALL}?system=tehran-main")
    assert page.status_code == 200
    assert "زنجیره انتقال تماس" in page.text
    assert "علی رضایی" in page.text
    assert "انتقال مستقیم" in page.text  # the second turn began by a blind transfer
    assert "<td>پاسخ داده شد</td>" in page.text  # ring outcomes translated too
    assert "<td>answered</td>" not in page.text
    fragment = await client.get(f"/calls/{CALL}?fragment=1")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert " style=" not in fragment.text
    assert "مریم کریمی" in fragment.text
    assert (await client.get("/calls/123.456")).status_code == 404


async def test_json_endpoints(client: httpx.AsyncClient) -> None:
    await login(client, "sales")
    found = (await client.get("/api/users", params={"q": "رضایی"})).json()
    assert found == {"users": [{"id": found["users"][0]["id"], "username": "agent101", "full_name": "علی رضایی"}]}
    assert (await client.get("/api/users", params={"q": "%"})).json() == {"users": []}  # % is literal
    assert (await client.get("/api/users", params={"q": "former"})).json() == {"users": []}  # disabled
    assert (await client.get("/api/users")).json() == {"users": []}
    tehran = (await client.get("/api/systems", params={"branch": "tehran"})).json()
    assert sorted(s["name"] for s in tehran["systems"]) == ["tehran-main", "tehran-sales"]
    assert len((await client.get("/api/systems")).json()["systems"]) == 3
    assert (await client.get("/api/systems", params={"branch": "nowhere"})).status_code == 404


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # The daemon's document (ingest/metrics.py): 503 when a system is down, the JSON all the same.
        body = json.dumps({"healthy": False, "database_reachable": True, "systems": {
            "tehran-main": {"connected": True, "login_failed": False, "journal_backlog_bytes": 7340,
                            "open_calls": 3, "last_event_age_seconds": 0.4},
            "shiraz-1": {"connected": False, "login_failed": True, "journal_backlog_bytes": 0, "open_calls": 0},
        }})
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


async def test_operations_page(web_dsn: str) -> None:
    async with web_client(web_dsn) as client:
        await login(client, "admin")
        page = await client.get("/admin/ops")
        assert page.status_code == 200
        assert "نشانی سلامت سرویس دریافت تنظیم نشده است" in page.text
        row = re.search(r'<tr data-system="tehran-main">(.*?)</tr>', page.text, re.S)
        assert row
        assert "مرکز تهران" in row.group(1)
        assert ">۴</td>" in row.group(1)  # calls stored
        assert "۱۴۰۳/۰۱/۰۳" in row.group(1)  # last event, in Tehran's Jalali date
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        async with web_client(web_dsn, healthz_url=url) as client:
            await login(client, "admin")
            page = await client.get("/admin/ops")
            assert "سرویس دریافت پاسخ می‌دهد" in page.text
            row = re.search(r'<tr data-system="tehran-main">(.*?)</tr>', page.text, re.S)
            assert row
            assert "متصل" in row.group(1)
            assert "۷٬۳۴۰ بایت" in row.group(1)
            assert ">۳</td>" in row.group(1)  # open calls
            shiraz = re.search(r'<tr data-system="shiraz-1">(.*?)</tr>', page.text, re.S)
            assert shiraz
            assert "ورود رد شد" in shiraz.group(1)
    finally:
        server.shutdown()
        server.server_close()
    async with web_client(web_dsn, healthz_url="http://127.0.0.1:9/healthz") as client:
        await login(client, "admin")
        page = await client.get("/admin/ops")
        assert page.status_code == 200
        assert "سرویس دریافت در http://127.0.0.1:9/healthz پاسخ نداد" in page.text


async def test_database_gone_is_a_clear_page_not_a_500(web_dsn: str) -> None:
    pool = await asyncpg.create_pool(web_dsn, min_size=1, max_size=2)
    transport = httpx.ASGITransport(app=make_app(pool))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await login(client, "sales")
        await pool.close()
        response = await client.get("/report")
        assert response.status_code == 503
        assert "پایگاه داده در دسترس نیست" in response.text
        assert (await client.get("/api/users?q=a")).json()["error"].startswith("پایگاه داده")


async def test_a_released_connection_is_as_new(web_dsn: str) -> None:
    """After every kind of page and download, and after a request that fails inside its transaction,
    the web pool's one connection has the settings of a new connection, no transaction, no LISTEN
    and no advisory lock: nothing leaks from one request into the next. (asyncpg's reset query on
    release is needed: its type introspection inside a report's transaction, with details_csv's
    transaction-local settings, leaves `jit` off for the session; RESET ALL puts it back.)"""
    pool = await db.create_pool(web_dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            settings = await conn.fetch("SELECT name, setting FROM pg_settings ORDER BY name")
        transport = httpx.ASGITransport(app=make_app(pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await login(client, "admin")
            for path in ("/report", "/totals/number"):
                for fmt in ("csv", "xlsx", "html"):
                    response = await post_form(client, path, action="download", format=fmt)
                    assert response.status_code == 200, (path, fmt)
                assert (await post_form(client, path)).status_code == 200
            assert (await post_form(client, "/report", page="3")).status_code == 200
            assert (await client.get(f"/calls/{CALL}?system=tehran-main")).status_code == 200
            assert (await post_form(client, "/report", branch="nowhere")).status_code == 400
        async with pool.acquire() as conn:
            assert await conn.fetch("SELECT name, setting FROM pg_settings ORDER BY name") == settings
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
            locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            assert await conn.fetchval(locks) == 0
            # A transaction left open by a failing request is rolled back on release (by asyncpg).
            with pytest.raises(asyncpg.PostgresError):
                async with conn.transaction():
                    await conn.execute("SELECT 1 / 0")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            await conn.execute("BEGIN")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
    finally:
        await pool.close()
