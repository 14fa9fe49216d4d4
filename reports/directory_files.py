"""Directory files: CSV (one file per kind, or a folder of them), YAML or TOML, read and written.

Reading keeps each entry's file and line (and each field's line in YAML and TOML), so errors can
name them. CSV is UTF-8 (a byte-order mark is accepted, and written so spreadsheet programs show
Persian correctly); list cells (roles, numbers, patterns) are separated by `;`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from ingest.errors import InputFileError
from reports.directory import FIELDS, KINDS, RawRecord, Where, canonical_field

# File stems and top-level keys accepted for each kind.
KIND_NAMES = {
    "branches": "branches", "branch": "branches",
    "systems": "systems", "telephone_systems": "systems", "system": "systems",
    "users": "users", "user": "users",
    "extensions": "extensions", "extension_assignments": "extensions", "assignments": "extensions",
    "identities": "identities", "identity": "identities",
}
FORMATS = ("csv", "yaml", "toml")


def kind_of(name: str) -> str | None:
    """The kind a file stem or top-level key stands for, or None."""
    return KIND_NAMES.get(name.strip().lower().replace("-", "_"))


def format_of(path: Path) -> str:
    """csv, yaml or toml, from the path (a folder is CSV)."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".toml":
        return "toml"
    return "csv"


def read_paths(paths: Iterable[Path], kind: str | None = None) -> list[RawRecord]:
    """Raw records from every path: CSV files or folders, YAML or TOML files."""
    records: list[RawRecord] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
            if not found:
                raise InputFileError("no CSV files in this folder", path=str(path))
            for csv_path in found:
                records.extend(read_csv(csv_path))
        elif format_of(path) == "yaml":
            records.extend(read_yaml(path))
        elif format_of(path) == "toml":
            records.extend(read_toml(path))
        else:
            records.extend(read_csv(path, kind))
    return records


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputFileError(f"cannot read: {exc.strerror}", path=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise InputFileError(f"not UTF-8 text (byte {exc.start}): save it as UTF-8", path=str(path)) from exc


def read_csv(path: Path, kind: str | None = None) -> Iterator[RawRecord]:
    """One raw record per data row; the header names the fields."""
    kind = kind or kind_of(path.stem)
    if kind is None:
        names = ", ".join(f"{k}.csv" for k in KINDS)
        raise InputFileError(f"cannot tell what this file holds: name it {names} (or pass --kind)", path=str(path))
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = next(reader, None)
    if header is None:
        return
    fields = [canonical_field(kind, h) for h in header]
    line = reader.line_num + 1
    for row in reader:
        if any(cell.strip() for cell in row):
            if len(row) > len(fields):
                raise InputFileError(f"{len(row)} cells but the header names {len(fields)} columns",
                                     path=str(path), line=line)
            values = {f: cell for f, cell in zip(fields, row, strict=False) if f}
            yield RawRecord(kind, Where(str(path), line), values)
        line = reader.line_num + 1


def _node_value(node: yaml.Node) -> Any:
    """A YAML node's value; numbers keep their written text (0912... must not become an int)."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag.endswith((":int", ":float")):
            return node.value
        return yaml.SafeLoader(io.StringIO("")).construct_object(node)
    if isinstance(node, yaml.SequenceNode):
        return [_node_value(item) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        return {str(_node_value(k)): _node_value(v) for k, v in node.value}
    return None


def read_yaml(path: Path) -> Iterator[RawRecord]:
    """Raw records from a YAML file with one list per kind at the top level."""
    try:
        root = yaml.compose(_read_text(path), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputFileError(f"not valid YAML: {getattr(exc, 'problem', exc)}", path=str(path),
                             line=mark.line + 1 if mark else 0) from exc
    if root is None:
        return
    if not isinstance(root, yaml.MappingNode):
        raise InputFileError("expected a mapping of branches/systems/users/extensions/identities", path=str(path),
                             line=root.start_mark.line + 1)
    for key_node, list_node in root.value:
        kind = kind_of(str(key_node.value))
        if kind is None:
            raise InputFileError(f"unknown section (expected {', '.join(KINDS)})", path=str(path),
                                 line=key_node.start_mark.line + 1, field=str(key_node.value))
        if isinstance(list_node, yaml.ScalarNode) and list_node.tag.endswith(":null"):
            continue
        if not isinstance(list_node, yaml.SequenceNode):
            raise InputFileError("expected a list of entries", path=str(path), line=list_node.start_mark.line + 1,
                                 field=kind)
        for item in list_node.value:
            line = item.start_mark.line + 1
            if not isinstance(item, yaml.MappingNode):
                raise InputFileError("expected an entry of key: value pairs", path=str(path), line=line, field=kind)
            values: dict[str, Any] = {}
            lines: dict[str, int] = {}
            for k, v in item.value:
                name = canonical_field(kind, str(k.value))
                values[name] = _node_value(v)
                lines[name] = k.start_mark.line + 1
            yield RawRecord(kind, Where(str(path), line, lines), values)


def read_toml(path: Path) -> Iterator[RawRecord]:
    """Raw records from a TOML file of [[branches]], [[systems]], ... tables."""
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else 0
        raise InputFileError(f"not valid TOML: {exc}", path=str(path), line=line) from exc
    lines = text.splitlines()
    for key, entries in data.items():
        kind = kind_of(key)
        if kind is None:
            raise InputFileError(f"unknown section (expected {', '.join(KINDS)})", path=str(path), field=key)
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InputFileError(f"write each entry as a [[{key}]] table", path=str(path), field=key)
        # tomllib keeps no positions: find each [[key]] header to name lines in errors.
        headers = [i + 1 for i, ln in enumerate(lines) if re.match(rf"^\s*\[\[\s*{re.escape(key)}\s*\]\]", ln)]
        for index, entry in enumerate(entries):
            start = headers[index] if index < len(headers) else 0
            end = headers[index + 1] if index + 1 < len(headers) else len(lines) + 1
            field_lines: dict[str, int] = {}
            values: dict[str, Any] = {}
            for name, value in entry.items():
                canonical = canonical_field(kind, name)
                values[canonical] = value
                for number in range(start, end - 1 if start else 0):
                    if re.match(rf"^\s*{re.escape(name)}\s*=", lines[number]):
                        field_lines[canonical] = number + 1
                        break
            yield RawRecord(kind, Where(str(path), start, field_lines), values)


# Writing ------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def write_csv_folder(folder: Path, data: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """One UTF-8 CSV per kind in `folder` (created when missing); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = folder / f"{kind}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(FIELDS[kind])
            for entry in data.get(kind, []):
                writer.writerow([_cell(entry.get(f)) for f in FIELDS[kind]])
        written.append(path)
    return written


def to_yaml(data: dict[str, list[dict[str, Any]]]) -> str:
    """The directory as one YAML document (Persian kept as is)."""
    ordered = {kind: [{f: e.get(f) for f in FIELDS[kind]} for e in data.get(kind, [])] for kind in KINDS}
    return str(yaml.safe_dump(ordered, allow_unicode=True, sort_keys=False, default_flow_style=False, width=120))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)


def to_toml(data: dict[str, list[dict[str, Any]]]) -> str:
    """The directory as one TOML document of [[kind]] tables (TOML has no null: None is left out)."""
    out: list[str] = []
    for kind in KINDS:
        for entry in data.get(kind, []):
            out.append(f"[[{kind}]]")
            out.extend(f"{f} = {_toml_value(entry[f])}" for f in FIELDS[kind] if entry.get(f) is not None)
            out.append("")
    return "\n".join(out)
