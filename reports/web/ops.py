"""The operations page (admins): ingestion status per telephone system.

From the database: the daemon's bookkeeping (ingest_state) and today's calls. From the daemon's
health endpoint, when its URL is configured: whether each system's AMI connection is up and the
journal backlog. The endpoint's answer is read leniently (a JSON object with a `systems` map or
list), so an older or newer daemon degrades to "unknown" instead of breaking the page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reports.web import db, i18n
from reports.web.auth import require
from reports.web.pages import lang, pool, render, state
from reports.web.settings import ADMIN_ROLES

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 2.0


@dataclass(frozen=True)
class DaemonHealth:
    """What the daemon's health endpoint said: per system name, its fields; or why it said nothing."""

    url: str
    systems: dict[str, dict[str, Any]]
    error: str | None = None


@dataclass(frozen=True)
class OpsRow:
    """One line of the operations table, ready to print."""

    name: str
    title: str
    branch: str
    timezone: str
    connected: bool | None
    login_failed: bool
    open_calls: str
    last_event: str
    last_call: str
    calls_today: str
    calls_stored: str
    backlog: str


def parse_health(url: str, body: bytes) -> DaemonHealth:
    """Read the health endpoint's JSON: {"systems": {name: {...}}} or {"systems": [{"name": ...}]}."""
    try:
        data = json.loads(body)
    except ValueError:
        return DaemonHealth(url, {}, "not JSON")
    systems: dict[str, dict[str, Any]] = {}
    raw = data.get("systems") if isinstance(data, dict) else None
    if isinstance(raw, dict):
        systems = {str(k): v for k, v in raw.items() if isinstance(v, dict)}
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and (item.get("name") or item.get("system")):
                systems[str(item.get("name") or item.get("system"))] = item
    return DaemonHealth(url, systems)


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - admin-configured URL
    # A 503 from the health endpoint still carries its JSON body: read it too.
    try:
        with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT) as response:  # noqa: S310
            body: bytes = response.read(1_000_000)
    except urllib.error.HTTPError as exc:
        body = exc.read(1_000_000)
    return body


async def daemon_health(url: str) -> DaemonHealth:
    """Ask the daemon's health endpoint; a failure is reported, never raised."""
    try:
        body = await asyncio.to_thread(_fetch, url)
    except (OSError, ValueError) as exc:
        log.warning("ingest health endpoint %s did not answer: %s", url, exc)
        return DaemonHealth(url, {}, str(exc))
    return parse_health(url, body)


def _when(language: str, moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return i18n.translate(language, "ops.never")
    from zoneinfo import ZoneInfo

    from reports import calendar as cal

    local = moment.astimezone(ZoneInfo(timezone))
    calendar: cal.Calendar = "jalali" if language == "fa" else "gregorian"
    return i18n.digits(language, f"{cal.format_date(local.date(), calendar)} {local:%H:%M:%S}")


def _backlog(language: str, info: dict[str, Any]) -> str:
    value = info.get("journal_backlog_bytes")
    if isinstance(value, int):
        return i18n.translate(language, "ops.bytes", n=i18n.digits(language, f"{value:,}"))
    value = info.get("journal_backlog", info.get("backlog"))
    return i18n.digits(language, value) if value is not None else i18n.translate(language, "ops.unknown")


def build_rows(language: str, statuses: list[db.SystemStatus], health: DaemonHealth | None) -> list[OpsRow]:
    """The table rows from the database's view and the daemon's (when asked)."""
    rows = []
    for status in statuses:
        info = health.systems.get(status.name, {}) if health else {}
        connected = info.get("connected")
        open_calls = info.get("open_calls")
        rows.append(
            OpsRow(
                name=status.name,
                title=status.title,
                branch=status.branch,
                timezone=status.timezone,
                connected=connected if isinstance(connected, bool) else None,
                login_failed=info.get("login_failed") is True,
                open_calls=i18n.digits(language, open_calls) if isinstance(open_calls, int) else "",
                last_event=_when(language, status.last_event_at, status.timezone),
                last_call=_when(language, status.last_call_stored_at, status.timezone),
                calls_today=i18n.digits(language, status.calls_today),
                calls_stored=i18n.digits(language, status.calls_stored),
                backlog=_backlog(language, info) if health else i18n.translate(language, "ops.unknown"),
            )
        )
    return rows


async def ops_page(request: Request) -> Response:
    """GET /admin/ops: the ingestion status table (admins only)."""
    await require(request, ADMIN_ROLES)
    language = lang(request)
    async with pool(request).acquire() as conn:
        statuses = await db.ingest_status(conn)
    url = state(request).settings.healthz_url
    health = await daemon_health(url) if url else None
    return render(request, "ops.html", {"rows": build_rows(language, statuses, health), "health": health})
