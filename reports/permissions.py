"""Who may produce reports: the system administrator and the three manager roles (the seed's rule).

Every path that produces a report (the CLI, the web app, the Python API) calls `require_report_access`
through `reports.api`, so the rule lives here once.

The built-in administrator is the actor of a command line run without `--as`: whoever can run
`calltrail-report` with the database's credentials can read every call anyway, so that person is
the installation's administrator and needs no row in `users`. `--as USERNAME` acts as a stored
user instead, with that user's roles, for example to check what a manager would get.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from reports import data
from reports.errors import ReportFilterError, ReportPermissionError

REPORT_ROLES: frozenset[str] = frozenset({"admin", "sales_manager", "crm_manager", "support_manager"})
ROLE_TITLES = {
    "admin": "system administrator",
    "sales_manager": "sales manager",
    "crm_manager": "CRM manager",
    "support_manager": "support manager",
    "agent": "agent",
}


@dataclass(frozen=True)
class Actor:
    """The user a report is produced for (and whose name goes in its header)."""

    username: str
    name: str
    roles: frozenset[str]
    active: bool = True
    builtin: bool = False

    @property
    def may_produce_reports(self) -> bool:
        """True when one of the actor's roles allows reports and the account is active."""
        return self.active and bool(self.roles & REPORT_ROLES)


BUILTIN_ADMIN = Actor(username="admin", name="System administrator", roles=frozenset({"admin"}), builtin=True)


def actor(username: str, roles: Iterable[str], *, name: str = "", active: bool = True) -> Actor:
    """An Actor built by the caller (e.g. the web app from its session)."""
    return Actor(username=username, name=name or username, roles=frozenset(roles), active=active)


async def load_actor(conn: asyncpg.Connection, username: str | None) -> Actor:
    """The stored user `username`, or the built-in administrator when None."""
    if username is None:
        return BUILTIN_ADMIN
    row = await data.user_by_name(conn, username)
    if row is None:
        raise ReportFilterError("as", f"there is no user {username!r}")
    return Actor(username=row["username"], name=row["name"], roles=frozenset(row["roles"]), active=row["active"])


def require_report_access(who: Actor) -> None:
    """Raise ReportPermissionError unless `who` may produce reports."""
    if who.may_produce_reports:
        return
    allowed = ", ".join(ROLE_TITLES[r] for r in ("admin", "sales_manager", "crm_manager", "support_manager"))
    if not who.active:
        raise ReportPermissionError(f"user {who.username!r} is disabled and may not produce reports")
    held = ", ".join(ROLE_TITLES.get(r, r) for r in sorted(who.roles)) or "no role"
    raise ReportPermissionError(
        f"user {who.username!r} ({held}) may not produce reports: this needs the role of {allowed}"
    )
