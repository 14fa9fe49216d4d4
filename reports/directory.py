"""The directory: branches, telephone systems, users, extension assignments and CRM identities.

This module turns raw records read from files (see `reports.directory_files`) into checked,
typed entries; `reports.directory_db` applies them to the database. Every entry keeps where it
came from (file, line, and the line of each field when known), so an error names all three.
A field missing from the input is None: an import then keeps the stored value (or the default).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jdatetime

from ingest.config import DEFAULT_EXTENSION_PATTERN, EXTENSION_SOURCES
from ingest.errors import InputFileError
from ingest.numbers import ascii_digits
from reports.users import ROLES, USERNAME

KINDS: tuple[str, ...] = ("branches", "systems", "users", "extensions", "identities")
IDENTITY_KINDS = {"person": "person", "organisation": "organisation", "organization": "organisation",
                  "company": "organisation", "org": "organisation"}
_EXTENSION = re.compile(r"^[0-9A-Za-z*#_-]+$")
_TRUE = {"true", "yes", "y", "1", "on", "t", "بله", "فعال"}
_FALSE = {"false", "no", "n", "0", "off", "f", "خیر", "غیرفعال"}


@dataclass(frozen=True)
class Where:
    """Where an entry was read: file, line, and the line of each field when it differs."""

    path: str
    line: int
    field_lines: dict[str, int] = field(default_factory=dict)

    def error(self, field_name: str, message: str) -> InputFileError:
        """An InputFileError pointing at `field_name` of this entry."""
        return InputFileError(message, path=self.path, line=self.field_lines.get(field_name, self.line),
                              field=field_name)


@dataclass(frozen=True)
class RawRecord:
    """One entry as read from a file: its kind, its location and its values (strings or native)."""

    kind: str
    where: Where
    values: dict[str, Any]


@dataclass(frozen=True)
class BranchEntry:
    """A branch: a name and a display title."""

    name: str
    title: str | None
    where: Where


@dataclass(frozen=True)
class SystemEntry:
    """A telephone system; `settings` holds only the columns the input gave."""

    name: str
    branch: str | None
    settings: dict[str, Any]
    where: Where


@dataclass(frozen=True)
class UserEntry:
    """A user (never a password: those are set with `users passwd`)."""

    username: str
    full_name: str | None
    roles: tuple[str, ...] | None
    active: bool | None
    where: Where


@dataclass(frozen=True)
class AssignmentEntry:
    """Extension -> user from valid_from; naive times are in the telephone system's time zone."""

    system: str
    extension: str
    user: str
    valid_from: datetime
    valid_to: datetime | None
    where: Where


@dataclass(frozen=True)
class IdentityEntry:
    """A CRM person or organisation and its phone numbers as written (normalised on import)."""

    external_id: str
    kind: str | None
    name: str
    profile_url: str | None
    numbers: tuple[str, ...] | None
    where: Where


@dataclass
class Directory:
    """Everything read from one import's files, checked."""

    branches: list[BranchEntry] = field(default_factory=list)
    systems: list[SystemEntry] = field(default_factory=list)
    users: list[UserEntry] = field(default_factory=list)
    extensions: list[AssignmentEntry] = field(default_factory=list)
    identities: list[IdentityEntry] = field(default_factory=list)


class DirectoryError(InputFileError):
    """Several bad entries: `errors` lists them all; the message shows each on its own line."""

    def __init__(self, errors: list[InputFileError]) -> None:
        first = errors[0]
        super().__init__(str(first), path=first.path, line=first.line, field=first.field)
        self.args = ("\n".join(str(e) for e in errors),)
        self.errors = errors


# Field aliases: the daemon's config keys and spelled-out column names are accepted too.
ALIASES = {
    "systems": {"host": "ami_host", "port": "ami_port", "trunks": "trunk_patterns", "system": "name",
                "branch_name": "branch"},
    "users": {"name": "full_name", "role": "roles", "user": "username"},
    "extensions": {"username": "user", "ext": "extension", "telephone_system": "system", "from": "valid_from",
                   "to": "valid_to"},
    "identities": {"id": "external_id", "profile": "profile_url", "link": "profile_url", "phones": "numbers",
                   "phone_numbers": "numbers", "type": "kind"},
    "branches": {"branch": "name"},
}
FIELDS = {
    "branches": ("name", "title"),
    "systems": ("name", "branch", "title", "ami_host", "ami_port", "country_code", "city_code", "outgoing_prefix",
                "timezone", "extension_from", "extension_pattern", "trunk_patterns", "inbound_contexts"),
    "users": ("username", "full_name", "roles", "active"),
    "extensions": ("system", "extension", "user", "valid_from", "valid_to"),
    "identities": ("external_id", "kind", "name", "profile_url", "numbers"),
}
REQUIRED = {
    "branches": ("name",), "systems": ("name",), "users": ("username",),
    "extensions": ("system", "extension", "user", "valid_from"), "identities": ("external_id", "name"),
}


def canonical_field(kind: str, name: str) -> str:
    """The field a column or key stands for (lower-cased, aliases resolved)."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(kind, {}).get(key, key)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _list(value: Any, separators: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(t for t in (_text(v) for v in value) if t)
    parts = re.split(f"[{re.escape(separators)}\n]", str(value))
    return tuple(p.strip() for p in parts if p.strip())


def parse_bool(value: Any) -> bool:
    """true/false, yes/no, 1/0, on/off (and Persian بله/خیر)."""
    if isinstance(value, bool):
        return value
    text = ascii_digits(_text(value)).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, not {value!r}")


def parse_time(value: Any) -> datetime:
    """A date or date-time (ISO; a Jalali date like 1403-01-01 too); naive means local time."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    text = ascii_digits(_text(value)).replace("/", "-")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a date or date-time like 2024-03-20 or 2024-03-20T08:00, not {value!r}") from None
    if parsed.year < 1700:
        # Solar Hijri: Persian users write their own calendar's dates.
        gregorian = jdatetime.date(parsed.year, parsed.month, parsed.day).togregorian()
        parsed = parsed.replace(year=gregorian.year, month=gregorian.month, day=gregorian.day)
    return parsed


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression {value!r}: {exc}") from None
    return value


def _matching(pattern: str, what: str) -> Callable[[Any], str]:
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        text = ascii_digits(_text(value))
        if not compiled.match(text):
            raise ValueError(f"{text!r} is not {what}")
        return text

    return check


def _port(value: Any) -> int:
    text = ascii_digits(_text(value))
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"expected a TCP port (1-65535), not {value!r}")
    return int(text)


def _timezone(value: Any) -> str:
    text = _text(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r} (use a name like Asia/Tehran)") from None
    return text


def _one_of(choices: Iterable[str]) -> Callable[[Any], str]:
    allowed = tuple(choices)

    def check(value: Any) -> str:
        text = _text(value).lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, not {value!r}")
        return text

    return check


# Per system column: how to read it, and whether an empty value means "not given".
_SYSTEM_PARSERS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "title": (_text, False),
    "ami_host": (_text, False),
    "ami_port": (_port, True),
    "country_code": (lambda v: _matching(r"^[0-9]{1,3}$", "a country code (1-3 digits)")(v).lstrip("0") or "0", True),
    "city_code": (lambda v: _matching(r"^[0-9]{0,6}$", "a city code (digits)")(v).lstrip("0"), False),
    "outgoing_prefix": (_matching(r"^[0-9*#]*$", "an outgoing prefix (digits, * or #)"), False),
    "timezone": (_timezone, True),
    "extension_from": (_one_of(EXTENSION_SOURCES), True),
    "extension_pattern": (lambda v: _regex(_text(v)), True),
    "trunk_patterns": (lambda v: [_regex(p) for p in _list(v, ";")], False),
    "inbound_contexts": (lambda v: list(_list(v, ";,")), False),
}
SYSTEM_DEFAULTS: dict[str, Any] = {
    "title": "", "ami_host": "", "ami_port": 5038, "country_code": "98", "city_code": "21", "outgoing_prefix": "",
    "timezone": "Asia/Tehran", "extension_from": "endpoint", "extension_pattern": DEFAULT_EXTENSION_PATTERN,
    "trunk_patterns": [], "inbound_contexts": [],
}


class _Checker:
    """Reads one raw record's fields, collecting errors instead of stopping at the first."""

    def __init__(self, record: RawRecord, errors: list[InputFileError]) -> None:
        self.record = record
        self.errors = errors
        self.failed = False

    def get(self, name: str, parse: Callable[[Any], Any] = _text, *, empty_is_missing: bool = True) -> Any:
        value = self.record.values.get(name)
        if value is None or (empty_is_missing and isinstance(value, str) and not value.strip()):
            if name in REQUIRED[self.record.kind]:
                self.fail(name, "is required")
            return None
        try:
            return parse(value)
        except (ValueError, TypeError) as exc:
            self.fail(name, str(exc))
            return None

    def fail(self, name: str, message: str) -> None:
        self.failed = True
        self.errors.append(self.record.where.error(name, message))


def _user_roles(value: Any) -> tuple[str, ...]:
    roles: dict[str, None] = {}
    for part in _list(value, ";,"):
        role = part.lower().replace("-", "_")
        if role not in ROLES:
            raise ValueError(f"unknown role {part!r}: use one of {', '.join(ROLES)}")
        roles.setdefault(role, None)
    return tuple(roles)


def _url(value: Any) -> str:
    text = _text(value)
    if not re.match(r"^https?://\S+$", text):
        raise ValueError(f"expected an http(s) link, not {text!r}")
    return text


def check_records(records: Iterable[RawRecord]) -> Directory:
    """Typed, checked entries for `records`; raises DirectoryError naming every bad field."""
    directory = Directory()
    errors: list[InputFileError] = []
    for record in records:
        c = _Checker(record, errors)
        unknown = sorted(set(record.values) - set(FIELDS[record.kind]))
        for name in unknown:
            c.fail(name, f"unknown field (expected {', '.join(FIELDS[record.kind])})")
        where = record.where
        if record.kind == "branches":
            branch = BranchEntry(c.get("name"), c.get("title", empty_is_missing=False), where)
            if not c.failed:
                directory.branches.append(branch)
        elif record.kind == "systems":
            name, branch_name = c.get("name"), c.get("branch")
            settings = {}
            for key, (parse, empty_is_missing) in _SYSTEM_PARSERS.items():
                value = c.get(key, parse, empty_is_missing=empty_is_missing)
                if value is not None:
                    settings[key] = value
            if not c.failed:
                directory.systems.append(SystemEntry(name, branch_name, settings, where))
        elif record.kind == "users":
            user = UserEntry(
                c.get("username", _matching(USERNAME.pattern, "a username (letters, digits, _ . @ -)")),
                c.get("full_name", empty_is_missing=False), c.get("roles", _user_roles, empty_is_missing=False),
                c.get("active", parse_bool), where,
            )
            if not c.failed:
                directory.users.append(user)
        elif record.kind == "extensions":
            assignment = AssignmentEntry(
                c.get("system"), c.get("extension", _matching(_EXTENSION.pattern, "an extension")),
                c.get("user"), c.get("valid_from", parse_time), c.get("valid_to", parse_time), where,
            )
            if not c.failed and assignment.valid_to is not None and not _later(assignment):
                c.fail("valid_to", "must be after valid_from")
            if not c.failed:
                directory.extensions.append(assignment)
        else:
            identity = IdentityEntry(
                c.get("external_id"), c.get("kind", lambda v: _kind(v)), c.get("name"),
                c.get("profile_url", _url), c.get("numbers", lambda v: _list(v, ";,"), empty_is_missing=False),
                where,
            )
            if not c.failed:
                directory.identities.append(identity)
    _check_duplicates(directory, errors)
    if errors:
        raise DirectoryError(errors)
    return directory


def _later(assignment: AssignmentEntry) -> bool:
    start, end = assignment.valid_from, assignment.valid_to
    assert end is not None
    if (start.tzinfo is None) != (end.tzinfo is None):
        return end.replace(tzinfo=None) > start.replace(tzinfo=None)
    return end > start


def _kind(value: Any) -> str:
    text = _text(value).lower()
    if text not in IDENTITY_KINDS:
        raise ValueError(f"expected person or organisation, not {value!r}")
    return IDENTITY_KINDS[text]


def _check_duplicates(directory: Directory, errors: list[InputFileError]) -> None:
    """The same key twice in one import is ambiguous: say where both are."""
    keyed: list[tuple[str, list[tuple[Any, Where]]]] = [
        ("name", [(b.name, b.where) for b in directory.branches]),
        ("name", [(s.name, s.where) for s in directory.systems]),
        ("username", [(u.username, u.where) for u in directory.users]),
        ("valid_from", [((a.system, a.extension, a.valid_from), a.where) for a in directory.extensions]),
        ("external_id", [(i.external_id, i.where) for i in directory.identities]),
    ]
    for field_name, items in keyed:
        seen: dict[Any, Where] = {}
        for key, where in items:
            if key in seen:
                first = seen[key]
                errors.append(where.error(field_name, f"duplicate of the entry at {first.path}:{first.line}"))
            else:
                seen[key] = where
