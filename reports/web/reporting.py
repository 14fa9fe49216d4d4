"""The web's bridge to the report functions: build the actor, call `reports.api`, render.

No report logic here: filters were validated by `reports.filters`, permissions are checked by
`reports.api` (again, after the web's own role check), documents come from `reports.api` and are
written by `reports.render`. The web only decides the page (offset/limit) and cuts the body out of
the HTML renderer's page to show it inside its own.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Literal

from markupsafe import Markup

from reports import api, render
from reports.context import ChainDocument
from reports.filters import ReportRequest
from reports.permissions import Actor, actor
from reports.render.html import render_html
from reports.users import User

TotalsKind = Literal["agent", "date", "number"]


def as_actor(user: User) -> Actor:
    """The report side's Actor for a logged-in web user."""
    return actor(user.username, user.roles, name=user.full_name or user.username, active=user.active)


def body_of(page: str) -> Markup:
    """The inside of the renderer's <body>: its <head> (with an inline <style> our CSP forbids) stays out."""
    start = page.find("<body")
    start = page.find(">", start) + 1 if start >= 0 else 0
    end = page.rfind("</body>")
    return Markup(page[start : end if end >= 0 else len(page)])  # noqa: S704 - the renderer escaped it


@dataclass(frozen=True)
class ShownReport:
    """A report shown in the page: its HTML and, for the call details, where the page is."""

    html: Markup
    page: int = 1
    pages: int = 1
    calls: int = 0
    system: str | None = None


@dataclass(frozen=True)
class Download:
    """A rendered report file."""

    content: bytes
    media_type: str
    filename: str


async def show(pool: Any, request: ReportRequest, kind: str, user: User, page: int, page_size: int) -> ShownReport:
    """The report as HTML for the page: one page of detail rows, or a whole totals report."""
    who = as_actor(user)
    if kind == "details":
        # Ask for the page first; past the end (the data shrank) falls back to the last page.
        document = await api.produce(pool, request, who, limit=page_size, offset=(page - 1) * page_size)
        pages = max(1, math.ceil(document.grand.calls / page_size))
        if page > pages:
            page = pages
            document = await api.produce(pool, request, who, limit=page_size, offset=(page - 1) * page_size)
        html = await render_html(document)
        return ShownReport(body_of(html), page, pages, document.grand.calls, request.system)
    totals_kind: TotalsKind = "agent" if kind == "agent" else "date" if kind == "date" else "number"
    totals = await api.totals_report(pool, request, totals_kind, who)
    return ShownReport(body_of(await render_html(totals)))


def _filename(request: ReportRequest, kind: str) -> str:
    stem = "calls" if kind == "details" else f"totals-by-{kind}"
    return f"{stem}-{request.first_day.isoformat()}-{request.last_day.isoformat()}.{request.format}"


async def download(pool: Any, request: ReportRequest, kind: str, user: User) -> Download:
    """The report as a file in the request's format."""
    who = as_actor(user)
    out = io.BytesIO()
    if kind == "details":
        async with api.open_report(pool, request, who) as document:
            await render.write(document, out)
    else:
        totals_kind: TotalsKind = "agent" if kind == "agent" else "date" if kind == "date" else "number"
        await render.write(await api.totals_report(pool, request, totals_kind, who), out)
    return Download(out.getvalue(), render.CONTENT_TYPES[request.format], _filename(request, kind))


async def chain(pool: Any, call_id: str, system: str | None, lang: str, user: User) -> tuple[ChainDocument, Markup]:
    """One call's transfer chain and its HTML (the body of the renderer's page)."""
    document = await api.chain_report(pool, call_id, as_actor(user), system=system, lang=lang)
    return document, body_of(await render_html(document))


__all__ = ["Download", "ShownReport", "as_actor", "body_of", "chain", "download", "show"]
