"""Calltrail users: who may log in and produce reports, with argon2 password hashes.

Used by `calltrail-report users ...`, the web login and the report command line's `--as`.
Passwords are never stored or logged in clear; an unknown user costs as much time to check as a
wrong password, so the login does not tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ingest.errors import CalltrailError

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("admin", "sales_manager", "crm_manager", "support_manager", "agent")
# Who may produce the call-details report (PRODUCT.md, Access).
REPORT_ROLES: frozenset[str] = frozenset({"admin", "sales_manager", "crm_manager", "support_manager"})
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]+$")
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("calltrail-no-such-user")


class UserError(CalltrailError):
    """A user command cannot be carried out (unknown user, bad role, weak password...)."""


@dataclass(frozen=True, slots=True)
class User:
    """One Calltrail user as the login and the reports see it (never the password hash)."""

    id: int
    username: str
    full_name: str
    roles: tuple[str, ...]
    active: bool

    @property
    def may_report(self) -> bool:
        """True when this user may produce the call-details report."""
        return self.active and bool(REPORT_ROLES.intersection(self.roles))


def parse_roles(values: Iterable[str]) -> tuple[str, ...]:
    """Role names (comma-separated or repeated, `sales-manager` or `sales_manager`), checked and deduplicated."""
    roles: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            role = part.strip().lower().replace("-", "_")
            if not role:
                continue
            if role not in ROLES:
                raise UserError(f"unknown role {part.strip()!r}: use one of {', '.join(ROLES)}")
            roles.setdefault(role, None)
    return tuple(roles)


def check_username(username: str) -> str:
    """`username` if it is acceptable (letters, digits and _ . @ -), else a UserError."""
    if not USERNAME.match(username):
        raise UserError(f"invalid username {username!r}: use letters, digits and _ . @ - only")
    return username


def hash_password(password: str) -> str:
    """The argon2 hash of `password`, after checking it is long enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _user(row: Any) -> User:
    return User(
        id=row["id"], username=row["username"], full_name=row["full_name"],
        roles=tuple(row["roles"]), active=row["active"],
    )


_COLUMNS = "id, username, full_name, roles, active"


async def get_user(conn: asyncpg.Connection, username: str) -> User | None:
    """The user named `username` (active or not), or None."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE username = $1", username)
    return _user(row) if row is not None else None


async def list_users(conn: asyncpg.Connection) -> list[User]:
    """Every user, by username."""
    return [_user(r) for r in await conn.fetch(f"SELECT {_COLUMNS} FROM users ORDER BY username")]


async def verify_password(conn: asyncpg.Connection, username: str, password: str) -> User | None:
    """The active user when `password` is theirs, else None (unknown, disabled, no password, wrong)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = $1", username)
    stored = row["password_hash"] if row is not None and row["password_hash"] else None
    try:
        # argon2 takes tens of milliseconds of CPU by design: in a thread, so an event loop (the web
        # app) keeps serving other requests meanwhile. Unknown users cost the same (no enumeration).
        await asyncio.to_thread(_hasher.verify, stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or stored is None or not row["active"]:
        return None
    if _hasher.check_needs_rehash(stored):
        # Parameters got stronger since this hash was made: upgrade it while we know the password.
        upgraded = await asyncio.to_thread(_hasher.hash, password)
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", row["id"], upgraded)
    return _user(row)


async def add_user(
    conn: asyncpg.Connection, username: str, *, full_name: str = "", roles: Iterable[str] = (),
    password: str | None = None,
) -> User:
    """Create a user; an existing username is an error (use the other commands to change it)."""
    check_username(username)
    password_hash = hash_password(password) if password is not None else None
    row = await conn.fetchrow(
        f"""INSERT INTO users (username, full_name, roles, password_hash) VALUES ($1, $2, $3, $4)
            ON CONFLICT (username) DO NOTHING RETURNING {_COLUMNS}""",
        username, full_name, list(parse_roles(roles)), password_hash,
    )
    if row is None:
        raise UserError(f"user {username!r} already exists")
    log.info("user %s added", username)
    return _user(row)


async def _update(conn: asyncpg.Connection, username: str, assignment: str, *args: Any) -> User:
    row = await conn.fetchrow(
        f"UPDATE users SET {assignment} WHERE username = $1 RETURNING {_COLUMNS}", username, *args
    )
    if row is None:
        raise UserError(f"no user named {username!r}")
    return _user(row)


async def set_password(conn: asyncpg.Connection, username: str, password: str) -> User:
    """Replace the user's password."""
    user = await _update(conn, username, "password_hash = $2", hash_password(password))
    log.info("password of %s changed", username)
    return user


async def set_roles(
    conn: asyncpg.Connection, username: str, *, add: Iterable[str] = (), remove: Iterable[str] = (),
    replace: Iterable[str] | None = None,
) -> User:
    """Change the user's roles: replace them all, or add and remove some."""
    user = await get_user(conn, username)
    if user is None:
        raise UserError(f"no user named {username!r}")
    roles = list(parse_roles(replace)) if replace is not None else list(user.roles)
    removed = set(parse_roles(remove))
    roles = [r for r in roles if r not in removed]
    roles += [r for r in parse_roles(add) if r not in roles]
    return await _update(conn, username, "roles = $2", roles)


async def set_active(conn: asyncpg.Connection, username: str, active: bool) -> User:
    """Enable or disable a user; a disabled user cannot log in but stays in the reports' history."""
    user = await _update(conn, username, "active = $2", active)
    log.info("user %s %s", username, "enabled" if active else "disabled")
    return user
