"""Report pages: the filter form, "show" and "get report", the totals pages, the transfer chain,
and the two small JSON endpoints the form's script uses (user search, systems of a branch).

Thin: the form's values go to `reports.filters.parse_filters`, the work to `reports.web.reporting`
(which only calls the report side's functions); a bad value comes back as the form with the
field's message and HTTP 400.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reports.data import Connection
from reports.errors import ReportFilterError, ReportNotFoundError
from reports.filters import DEFAULT_TIMEZONE, parse_filters
from reports.users import REPORT_ROLES
from reports.web import db, forms, reporting
from reports.web.auth import check_csrf, require
from reports.web.pages import lang, pool, render, state

log = logging.getLogger(__name__)

MAX_PAGE = 1_000_000
PICKER_TTL = 30.0


def _today() -> date:
    return datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date()


async def _form_page(
    request: Request,
    kind: str,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
    output: Any = None,
    conn: Connection | None = None,
) -> Response:
    branches, systems = await _pickers(request, conn)
    form = forms.build_context(kind, values, errors, lang(request), _today(), branches, systems)
    return render(request, "report.html", {"form": form, "output": output}, status_code=status_code)


async def _pickers(request: Request, conn: Connection | None = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Branches and systems for the form, read at most every PICKER_TTL seconds (they rarely change).

    `conn`: the request's connection, when it holds one (taking a second could wait for ever on a
    pool whose connections are all held by requests waiting for a second one).
    """
    web = state(request)
    cached = web.pickers
    if cached is not None and time.monotonic() - cached[0] < PICKER_TTL:
        return cached[1], cached[2]
    async with (nullcontext(conn) if conn is not None else pool(request).acquire()) as held:
        branches = await db.branches(held)
        systems = await db.systems(held)
    web.pickers = (time.monotonic(), branches, systems)
    return branches, systems


def _page_number(raw: object) -> int:
    try:
        page = int(str(raw))
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)


async def _refused(request: Request, kind: str, values: dict[str, str], error: ReportFilterError,
                   conn: Connection | None = None) -> Response:
    """The form again, with the bad field's message (HTTP 400)."""
    name, message = forms.field_error(lang(request), error)
    log.info("report form refused: %s", error)
    return await _form_page(request, kind, values, {name: message}, status_code=400, conn=conn)


async def _report(request: Request, kind: str) -> Response:
    # The form is read before a database connection is taken: a slow client holds none.
    form = await request.form() if request.method == "POST" else None
    # One connection for the user check, the shown report and the form: every connection taken
    # from the pool is reset when it goes back, a round trip to the database each time.
    async with pool(request).acquire() as conn:
        user = await require(request, REPORT_ROLES, conn)
        language = lang(request)
        if form is None:
            return await _form_page(request, kind, forms.default_values(language, _today()), {}, conn=conn)
        check_csrf(request, form.get("csrf_token"))
        values = forms.submitted_values(form, language, _today())
        action = str(form.get("action") or "download")
        try:
            report_request = parse_filters(
                forms.filter_input(values, kind, language, state(request).settings.company_name)
            )
            if action == "show":
                output = await reporting.show(
                    conn, report_request, kind, user, _page_number(form.get("page")),
                    state(request).settings.detail_page_size,
                )
                return await _form_page(request, kind, values, {}, output=output, conn=conn)
        except ReportFilterError as exc:
            return await _refused(request, kind, values, exc, conn)
    # A download waits for its turn (and renders) without holding the connection above.
    try:
        async with state(request).downloads:
            document = await reporting.download(pool(request), report_request, kind, user)
    except ReportFilterError as exc:
        return await _refused(request, kind, values, exc)
    return Response(
        document.content,
        media_type=document.media_type,
        headers={"Content-Disposition": f'attachment; filename="{document.filename}"'},
    )


async def details(request: Request) -> Response:
    """GET/POST /report: the call-details report form, shown or downloaded."""
    return await _report(request, "details")


async def totals(request: Request) -> Response:
    """GET/POST /totals/{agent,date,number}: the sibling totals reports."""
    kind = request.path_params["kind"]
    if kind not in ("agent", "date", "number"):
        raise HTTPException(404)
    return await _report(request, kind)


async def call_chain(request: Request) -> Response:
    """GET /calls/{call_id}?system=NAME: one call's transfer chain (a page, or a fragment for the dialog)."""
    user = await require(request, REPORT_ROLES)
    system = request.query_params.get("system") or None
    try:
        chain = await reporting.chain(pool(request), request.path_params["call_id"], system, lang(request), user)
    except ReportNotFoundError as exc:
        raise HTTPException(404) from exc
    except ReportFilterError as exc:
        # The same call id on several systems and no system given.
        log.info("transfer chain refused: %s", exc)
        raise HTTPException(400) from exc
    if request.query_params.get("fragment"):
        return render(request, "chain_fragment.html", {"chain": chain})
    return render(request, "chain.html", {"chain": chain})


async def api_users(request: Request) -> Response:
    """GET /api/users?q=: users whose name contains q, for the agent picker."""
    await require(request, REPORT_ROLES)
    query = request.query_params.get("q", "").strip()[:100]
    if not query:
        return JSONResponse({"users": []})
    async with pool(request).acquire() as conn:
        found = await db.search_users(conn, query)
    return JSONResponse({"users": found})


async def api_systems(request: Request) -> Response:
    """GET /api/systems?branch=NAME: telephone systems of a branch (all when empty)."""
    await require(request, REPORT_ROLES)
    branch = request.query_params.get("branch", "").strip()
    async with pool(request).acquire() as conn:
        branches = await db.branches(conn)
        branch_id = None
        if branch:
            matching = [b["id"] for b in branches if branch in (b["name"], b["title"])]
            if not matching:
                return JSONResponse({"error": f"no branch {branch!r}", "systems": []}, status_code=404)
            branch_id = matching[0]
        systems = await db.systems(conn, branch_id)
    return JSONResponse({"systems": [{"name": s["name"], "title": s["title"]} for s in systems]})
