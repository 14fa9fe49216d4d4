"""`calltrail-ingest check-config`: every problem of a configuration file, each with its line.

`load_config` stops at the first error and tomllib knows no line numbers once parsing succeeded,
so this module checks every key on its own (through the same casting code `load_config` uses)
and finds each key's line by scanning the raw text for table headers and `key =` lines.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import DAEMON_FIELDS, Config, _env_name, daemon_from_dict, load_config, system_from_dict
from ingest.errors import ConfigError

_ARRAY_HEADER = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"""^(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*[.=]""")
_TOML_LINE = re.compile(r"at line (\d+)")
_TOP_LEVEL = {"dsn", "dsn_file", "journal_dir", "systems", "daemon"}
REQUIRED_SYSTEM_KEYS = ("name", "host", "username")


@dataclass(frozen=True)
class Problem:
    """One bad field: its line in the file (None when unknown), and what is wrong."""

    line: int | None
    message: str

    def format(self, path: Path) -> str:
        """`file:line: message`, as compilers print it."""
        return f"{path}:{self.line}: {self.message}" if self.line else f"{path}: {self.message}"


class _Locator:
    """Line numbers of table headers and keys in TOML text, found without a TOML parser."""

    def __init__(self, text: str) -> None:
        self.headers: dict[tuple[Any, ...], int] = {}
        self.keys: dict[tuple[tuple[Any, ...], str], int] = {}
        table: tuple[Any, ...] = ()
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if match := _ARRAY_HEADER.match(stripped):
                name = match.group(1)
                counts[name] = counts.get(name, -1) + 1
                table = (name, counts[name])
                self.headers[table] = number
            elif match := _TABLE_HEADER.match(stripped):
                parts = [p.strip().strip('"') for p in match.group(1).split(".")]
                if parts[0] in counts and len(parts) > 1:
                    table = (parts[0], counts[parts[0]], *parts[1:])
                else:
                    table = tuple(parts)
                self.headers[table] = number
            elif match := _KEY.match(stripped):
                key = next(g for g in match.groups() if g)
                self.keys.setdefault((table, key), number)

    def line(self, table: tuple[Any, ...], key: str | None = None) -> int | None:
        """The line of `key` in `table`, else of the table's header."""
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        return self.headers.get(table)


def check_config_text(text: str) -> list[Problem]:
    """Every problem of a configuration's TOML text (an empty list when it is fine)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        return [Problem(int(found.group(1)) if found else None, f"not valid TOML: {exc}")]
    where = _Locator(text)
    problems: list[Problem] = []
    for key in sorted(set(raw) - _TOP_LEVEL):
        problems.append(Problem(where.line((), key), f"unknown top-level key {key!r}"))
    for key in ("dsn", "dsn_file", "journal_dir"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(Problem(where.line((), key), f"{key} must be a string"))
    daemon = raw.get("daemon", {})
    if not isinstance(daemon, dict):
        problems.append(Problem(where.line((), "daemon"), "daemon must be a table: write [daemon]"))
    else:
        for key, value in daemon.items():
            if key not in DAEMON_FIELDS:
                problems.append(Problem(where.line(("daemon",), key), f"daemon: unknown key {key!r}"))
                continue
            try:
                daemon_from_dict({key: value})
            except ConfigError as exc:
                problems.append(Problem(where.line(("daemon",), key), str(exc)))
    systems = raw.get("systems", [])
    if not isinstance(systems, list) or not all(isinstance(s, dict) for s in systems):
        return [*problems, Problem(where.line((), "systems"), "systems must be an array of tables: write [[systems]]")]
    if not systems:
        problems.append(Problem(None, "no telephone system: add a [[systems]] table"))
    names: dict[str, int] = {}
    for index, system in enumerate(systems):
        problems.extend(_check_system(system, index, where))
        name = str(system.get("name", ""))
        if name in names:
            problems.append(Problem(where.line(("systems", index), "name"),
                                    f"systems[{index}].name {name!r} is already used by systems[{names[name]}]"))
        names.setdefault(name, index)
    return problems


def _check_system(system: dict[str, Any], index: int, where: _Locator) -> list[Problem]:
    table = ("systems", index)
    label = f"systems[{index}]"
    problems: list[Problem] = []
    for key, value in system.items():
        try:
            # With its name, so messages raised after casting name the system, not "default".
            name = system.get("name") if isinstance(system.get("name"), str) else f"#{index}"
            system_from_dict({"name": name, key: value}, index)
        except ConfigError as exc:
            problems.append(Problem(where.line(table, key), str(exc)))
    for key in REQUIRED_SYSTEM_KEYS:
        if not system.get(key):
            problems.append(Problem(where.line(table), f"{label}: missing {key!r}"))
    env_secret = os.environ.get(f"CALLTRAIL_{_env_name(str(system.get('name', 'default')))}_SECRET")
    if not system.get("secret") and "secret_file" not in system and not env_secret:
        problems.append(Problem(where.line(table), f"{label}: missing 'secret' (or 'secret_file')"))
    return problems


def check_config_file(path: Path) -> tuple[Config | None, list[Problem]]:
    """(the loaded Config when there is no problem, every problem) of the file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(None, f"cannot read: {exc.strerror}")]
    problems = check_config_text(text)
    if problems:
        return None, problems
    try:
        return load_config(path, required=True), []
    except ConfigError as exc:  # an environment override, or a file a key points to
        return None, [Problem(None, str(exc))]
