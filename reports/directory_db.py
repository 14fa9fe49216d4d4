"""The directory in PostgreSQL: upsert an import in one transaction, export it, list unmapped extensions.

An import reads what is stored, compares, and writes only the differences, so it can say exactly
what changed (and, with a dry run, what would change: the same work in a transaction that is
rolled back). Re-assigning an extension closes the open assignment at the new `valid_from`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ingest.errors import InputFileError
from ingest.numbers import NumberPlan, is_extension, normalize_number
from reports.directory import (
    SYSTEM_DEFAULTS,
    AssignmentEntry,
    Directory,
    DirectoryError,
    IdentityEntry,
    SystemEntry,
)

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

_SYSTEM_COLUMNS = tuple(SYSTEM_DEFAULTS)
_SELECT_SYSTEMS = (
    f"SELECT s.name, b.name AS branch, {', '.join('s.' + c for c in _SYSTEM_COLUMNS)} FROM telephone_systems s"
    " JOIN branches b ON b.id = s.branch_id ORDER BY s.id"
)


@dataclass
class ChangeReport:
    """What an import changed (or would change): counts per kind and one line per changed row."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def count(self, kind: str, what: str, line: str | None = None) -> None:
        """Count one row of `kind` as `what` (added, changed, unchanged, closed), noting the change."""
        per_kind = self.counts.setdefault(kind, {"added": 0, "changed": 0, "closed": 0, "unchanged": 0})
        per_kind[what] = per_kind.get(what, 0) + 1
        if line is not None:
            self.lines.append(f"{kind}: {line}")

    @property
    def changed(self) -> bool:
        """True when anything was (or would be) written."""
        return any(n for c in self.counts.values() for k, n in c.items() if k != "unchanged")


class _RollbackError(Exception):
    pass


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (old.get(k), v) for k, v in new.items() if v is not None and old.get(k) != v}


def _show(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())


async def apply_directory(
    conn: asyncpg.Connection, directory: Directory, *, dry_run: bool = False, number_plan: NumberPlan | None = None
) -> ChangeReport:
    """Upsert everything in `directory` in one transaction; with `dry_run`, roll it back."""
    report = ChangeReport()
    try:
        async with conn.transaction():
            await _branches(conn, directory, report)
            await _systems(conn, directory, report)
            await _users(conn, directory, report)
            await _extensions(conn, directory.extensions, report)
            plan = number_plan or await _default_plan(conn, directory)
            await _identities(conn, directory.identities, plan, report)
            if dry_run:
                raise _RollbackError
    except _RollbackError:
        log.info("dry run: rolled back")
    return report


async def _branches(conn: asyncpg.Connection, directory: Directory, report: ChangeReport) -> None:
    stored = {r["name"]: r["title"] for r in await conn.fetch("SELECT name, title FROM branches")}
    for entry in directory.branches:
        if entry.name not in stored:
            await conn.execute("INSERT INTO branches (name, title) VALUES ($1, $2)", entry.name, entry.title or "")
            report.count("branches", "added", f"+ {entry.name} (title {entry.title or ''!r})")
        elif entry.title is not None and entry.title != stored[entry.name]:
            await conn.execute("UPDATE branches SET title = $2 WHERE name = $1", entry.name, entry.title)
            report.count("branches", "changed", f"~ {entry.name}: title {stored[entry.name]!r} -> {entry.title!r}")
        else:
            report.count("branches", "unchanged")


async def _systems(conn: asyncpg.Connection, directory: Directory, report: ChangeReport) -> None:
    branch_ids = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM branches")}
    stored = {r["name"]: dict(r) for r in await conn.fetch(_SELECT_SYSTEMS)}
    errors: list[InputFileError] = []
    for entry in directory.systems:
        if entry.branch is not None and entry.branch not in branch_ids:
            errors.append(entry.where.error("branch", f"no branch named {entry.branch!r} (add it to branches)"))
            continue
        old = stored.get(entry.name)
        if old is None:
            if entry.branch is None:
                errors.append(entry.where.error("branch", "is required for a new telephone system"))
                continue
            await _insert_system(conn, entry, branch_ids[entry.branch])
            report.count("systems", "added", f"+ {entry.name} (branch {entry.branch})")
            continue
        changes = _diff(old, {"branch": entry.branch, **entry.settings})
        if not changes:
            report.count("systems", "unchanged")
            continue
        columns = ["branch_id" if k == "branch" else k for k in changes]
        values = [branch_ids[v[1]] if k == "branch" else v[1] for k, v in changes.items()]
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        await conn.execute(f"UPDATE telephone_systems SET {sets} WHERE name = $1", entry.name, *values)
        report.count("systems", "changed", f"~ {entry.name}: {_show(changes)}")
    if errors:
        raise DirectoryError(errors)


async def _insert_system(conn: asyncpg.Connection, entry: SystemEntry, branch_id: int) -> None:
    values = {**SYSTEM_DEFAULTS, **entry.settings}
    placeholders = ", ".join(f"${i}" for i in range(3, 3 + len(_SYSTEM_COLUMNS)))
    await conn.execute(
        f"INSERT INTO telephone_systems (name, branch_id, {', '.join(_SYSTEM_COLUMNS)})"
        f" VALUES ($1, $2, {placeholders})",
        entry.name, branch_id, *(values[c] for c in _SYSTEM_COLUMNS),
    )


async def _users(conn: asyncpg.Connection, directory: Directory, report: ChangeReport) -> None:
    stored = {r["username"]: dict(r) for r in await conn.fetch("SELECT username, full_name, roles, active FROM users")}
    for entry in directory.users:
        roles = list(entry.roles) if entry.roles is not None else None
        old = stored.get(entry.username)
        if old is None:
            await conn.execute(
                "INSERT INTO users (username, full_name, roles, active) VALUES ($1, $2, $3, $4)",
                entry.username, entry.full_name or "", roles or [], True if entry.active is None else entry.active,
            )
            report.count("users", "added", f"+ {entry.username} ({entry.full_name or ''}; roles {roles or []})")
            continue
        changes = _diff(old, {"full_name": entry.full_name, "roles": roles, "active": entry.active})
        if not changes:
            report.count("users", "unchanged")
            continue
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
        await conn.execute(f"UPDATE users SET {sets} WHERE username = $1", entry.username,
                           *(v[1] for v in changes.values()))
        report.count("users", "changed", f"~ {entry.username}: {_show(changes)}")


def _localize(value: datetime, zone: ZoneInfo) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


async def _extensions(conn: asyncpg.Connection, entries: list[AssignmentEntry], report: ChangeReport) -> None:
    if not entries:
        return
    systems = {r["name"]: (r["id"], ZoneInfo(r["timezone"]))
               for r in await conn.fetch("SELECT id, name, timezone FROM telephone_systems")}
    user_ids = {r["username"]: r["id"] for r in await conn.fetch("SELECT id, username FROM users")}
    usernames = {v: k for k, v in user_ids.items()}
    errors: list[InputFileError] = []
    for entry in entries:
        if entry.system not in systems:
            errors.append(entry.where.error("system", f"no telephone system named {entry.system!r}"))
        if entry.user not in user_ids:
            errors.append(entry.where.error("user", f"no user named {entry.user!r} (add it to users)"))
    if errors:
        raise DirectoryError(errors)
    # Every stored assignment of the extensions concerned, as mutable [id, user_id, from, to] rows.
    history: dict[tuple[int, str], list[list[Any]]] = {}
    for r in await conn.fetch("SELECT id, system_id, extension, user_id, valid_from, valid_to"
                              " FROM extension_assignments ORDER BY valid_from"):
        history.setdefault((r["system_id"], r["extension"]), []).append(
            [r["id"], r["user_id"], r["valid_from"], r["valid_to"]])

    def start(entry: AssignmentEntry) -> datetime:
        return _localize(entry.valid_from, systems[entry.system][1])

    for entry in sorted(entries, key=lambda e: (e.system, e.extension, start(e))):
        system_id, zone = systems[entry.system]
        user_id = user_ids[entry.user]
        valid_from = start(entry)
        valid_to = _localize(entry.valid_to, zone) if entry.valid_to is not None else None
        rows = history.setdefault((system_id, entry.extension), [])
        label = f"{entry.system}/{entry.extension} from {valid_from.isoformat()}"
        same = next((row for row in rows if row[2] == valid_from), None)
        if same is not None:
            changes = _diff({"user": usernames[same[1]], "valid_to": same[3]},
                            {"user": entry.user, "valid_to": valid_to})
            if not changes:
                report.count("extensions", "unchanged")
                continue
            same[1], same[3] = user_id, valid_to if valid_to is not None else same[3]
            await conn.execute("UPDATE extension_assignments SET user_id = $2, valid_to = $3 WHERE id = $1", *same[:2],
                               same[3])
            report.count("extensions", "changed", f"~ {label}: {_show(changes)}")
            continue
        covering = next((row for row in rows if row[2] < valid_from and (row[3] is None or row[3] > valid_from)),
                        None)
        if covering is not None and covering[1] == user_id and (valid_to is None or covering[3] == valid_to):
            report.count("extensions", "unchanged")  # already this user's at that time
            continue
        if covering is not None:
            # Re-assignment: history stays, the previous holder's period ends where the new one starts.
            await conn.execute("UPDATE extension_assignments SET valid_to = $2 WHERE id = $1", covering[0], valid_from)
            report.count("extensions", "closed",
                         f"- {entry.system}/{entry.extension} of {usernames[covering[1]]}: closed at "
                         f"{valid_from.isoformat()}")
            covering[3] = valid_from
        later = [row[2] for row in rows if row[2] > valid_from]
        if later and (valid_to is None or valid_to > min(later)):
            valid_to = min(later)  # a later assignment already exists: this one ends where it starts
        new_id = await conn.fetchval(
            "INSERT INTO extension_assignments (system_id, extension, user_id, valid_from, valid_to)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id", system_id, entry.extension, user_id, valid_from, valid_to)
        rows.append([new_id, user_id, valid_from, valid_to])
        rows.sort(key=lambda row: row[2])
        until = f" until {valid_to.isoformat()}" if valid_to is not None else ""
        report.count("extensions", "added", f"+ {label}{until}: {entry.user}")


async def _default_plan(conn: asyncpg.Connection, directory: Directory) -> NumberPlan:
    """Identities' numbers are read with the first telephone system's country and city codes."""
    if directory.systems:
        name = directory.systems[0].name
        row = await conn.fetchrow("SELECT country_code, city_code FROM telephone_systems WHERE name = $1", name)
    else:
        row = await conn.fetchrow("SELECT country_code, city_code FROM telephone_systems ORDER BY id LIMIT 1")
    if row is None:
        return NumberPlan()
    return NumberPlan(country_code=row["country_code"], city_code=row["city_code"])


def _numbers(entry: IdentityEntry, plan: NumberPlan, errors: list[InputFileError]) -> dict[str, str] | None:
    """E.164 -> raw spelling of the entry's numbers, or None when the entry gives no numbers."""
    if entry.numbers is None:
        return None
    found: dict[str, str] = {}
    for raw in entry.numbers:
        e164 = normalize_number(raw, plan)
        if e164 is None:
            why = "is an extension, not a phone number" if is_extension(raw) else "is not a phone number"
            errors.append(entry.where.error("numbers", f"{raw!r} {why}"))
        else:
            found.setdefault(e164, raw)
    return found


async def _identities(
    conn: asyncpg.Connection, entries: list[IdentityEntry], plan: NumberPlan, report: ChangeReport
) -> None:
    if not entries:
        return
    errors: list[InputFileError] = []
    numbers = [_numbers(entry, plan, errors) for entry in entries]
    if errors:
        raise DirectoryError(errors)
    stored = {r["external_id"]: dict(r) for r in await conn.fetch(
        "SELECT id, external_id, kind, name, profile_url FROM identities WHERE external_id IS NOT NULL")}
    stored_numbers: dict[int, set[str]] = {}
    for r in await conn.fetch("SELECT identity_id, number_e164 FROM identity_numbers"):
        stored_numbers.setdefault(r["identity_id"], set()).add(r["number_e164"])
    new_numbers: list[tuple[int, str, str]] = []
    for entry, found in zip(entries, numbers, strict=True):
        old = stored.get(entry.external_id)
        if old is None:
            identity_id = await conn.fetchval(
                "INSERT INTO identities (external_id, kind, name, profile_url) VALUES ($1, $2, $3, $4) RETURNING id",
                entry.external_id, entry.kind or "person", entry.name, entry.profile_url)
            new_numbers += [(identity_id, e164, raw) for e164, raw in (found or {}).items()]
            report.count("identities", "added", f"+ {entry.external_id} {entry.name} {sorted(found or {})}")
            continue
        changes = _diff(old, {"kind": entry.kind, "name": entry.name, "profile_url": entry.profile_url})
        if changes:
            sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
            await conn.execute(f"UPDATE identities SET {sets} WHERE id = $1", old["id"],
                               *(v[1] for v in changes.values()))
        have = stored_numbers.get(old["id"], set())
        if found is not None and set(found) != have:
            changes["numbers"] = (sorted(have), sorted(found))
            await conn.execute("DELETE FROM identity_numbers WHERE identity_id = $1 AND NOT number_e164 = ANY($2)",
                               old["id"], list(found))
            new_numbers += [(old["id"], e164, raw) for e164, raw in found.items() if e164 not in have]
        if changes:
            report.count("identities", "changed", f"~ {entry.external_id}: {_show(changes)}")
        else:
            report.count("identities", "unchanged")
    await conn.executemany("INSERT INTO identity_numbers (identity_id, number_e164, raw) VALUES ($1, $2, $3)",
                           new_numbers)


# Export and the unmapped list ---------------------------------------------------------------


def _local_text(value: datetime | None, zone: ZoneInfo) -> str | None:
    """A stored time in the system's zone: a plain date when it is local midnight."""
    if value is None:
        return None
    local = value.astimezone(zone)
    if local.time() == time():
        return date.isoformat(local.date())
    return local.isoformat()


async def export_directory(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Everything in the directory as plain dicts per kind, in the import format's fields."""
    data: dict[str, list[dict[str, Any]]] = {}
    data["branches"] = [dict(r) for r in await conn.fetch("SELECT name, title FROM branches ORDER BY name")]
    systems = [dict(r) for r in await conn.fetch(_SELECT_SYSTEMS)]
    data["systems"] = systems
    data["users"] = [dict(r, roles=list(r["roles"])) for r in await conn.fetch(
        "SELECT username, full_name, roles, active FROM users ORDER BY username")]
    zones = {s["name"]: ZoneInfo(s["timezone"]) for s in systems}
    data["extensions"] = [
        {"system": r["system"], "extension": r["extension"], "user": r["user"],
         "valid_from": _local_text(r["valid_from"], zones[r["system"]]),
         "valid_to": _local_text(r["valid_to"], zones[r["system"]])}
        for r in await conn.fetch(
            """SELECT s.name AS system, a.extension, u.username AS user, a.valid_from, a.valid_to
               FROM extension_assignments a JOIN telephone_systems s ON s.id = a.system_id
               JOIN users u ON u.id = a.user_id ORDER BY s.name, a.extension, a.valid_from""")
    ]
    data["identities"] = [dict(r, numbers=list(r["numbers"])) for r in await conn.fetch(
        """SELECT i.external_id, i.kind, i.name, i.profile_url,
                  coalesce(array_agg(n.number_e164 ORDER BY n.number_e164)
                           FILTER (WHERE n.number_e164 IS NOT NULL), '{}') AS numbers
           FROM identities i LEFT JOIN identity_numbers n ON n.identity_id = i.id
           GROUP BY i.id ORDER BY i.external_id""")]
    return data


@dataclass(frozen=True)
class UnmappedExtension:
    """An extension seen on the wire that no user holds at its last sighting."""

    system: str
    extension: str
    first_seen: datetime
    last_seen: datetime
    call_count: int


async def unmapped_extensions(conn: asyncpg.Connection, system: str | None = None) -> list[UnmappedExtension]:
    """Extensions the daemon (or an import) saw with no assignment covering their last sighting."""
    rows = await conn.fetch(
        """SELECT s.name AS system, u.extension, u.first_seen, u.last_seen, u.call_count
           FROM unmapped_extensions u JOIN telephone_systems s ON s.id = u.system_id
           WHERE ($1::text IS NULL OR s.name = $1)
             AND NOT EXISTS (SELECT 1 FROM extension_assignments a
                             WHERE a.system_id = u.system_id AND a.extension = u.extension
                               AND a.valid_from <= u.last_seen AND (a.valid_to IS NULL OR a.valid_to > u.last_seen))
           ORDER BY s.name, u.call_count DESC, u.extension""", system)
    return [UnmappedExtension(**dict(r)) for r in rows]
