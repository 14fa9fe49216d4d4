"""Directory import/export on a real PostgreSQL: CSV, YAML, TOML, dry runs, errors, history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner, Result

from ingest import store
from ingest.config import SystemConfig
from ingest.records import CallRecord, Segment
from reports.cli import main

DIRECTORY_YAML = """\
branches:
  - name: tehran
    title: دفتر مرکزی تهران
systems:
  - name: tehran-main
    branch: tehran
    title: سانترال اصلی
    ami_host: 10.0.0.5
    ami_port: 5038
    country_code: 98
    city_code: 021
    outgoing_prefix: 9
    timezone: Asia/Tehran
    trunk_patterns: ["trunk.*", "^itsp-\\\\d{2,4}$"]
users:
  - username: ali
    full_name: علی رضایی
    roles: [agent]
  - username: sara
    full_name: سارا احمدی
    roles: sales-manager, agent
    active: true
extensions:
  - system: tehran-main
    extension: "101"
    user: ali
    valid_from: 2024-01-01
identities:
  - external_id: C-1
    kind: person
    name: مشتری یک
    profile_url: https://crm.example.com/contacts/1
    numbers: ["۰۹۱۲ ۱۲۳ ۴۵۶۷", 88776655]
  - external_id: C-2
    kind: organization
    name: شرکت نمونه
    numbers: ["+98 21 2222 3333", "02122223333", "9121112233"]
"""


def run_cli(dsn: str, *args: str, input: str | None = None) -> Result:
    """calltrail-report with CALLTRAIL_DSN pointing at the test database."""
    return CliRunner().invoke(main, list(args), input=input, env={"CALLTRAIL_DSN": dsn}, catch_exceptions=False)


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of `sql` on the test database (CLI tests run outside an event loop)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def counts(dsn: str) -> dict[str, int]:
    """Row counts of every directory table."""
    tables = ("branches", "telephone_systems", "users", "extension_assignments", "identities", "identity_numbers")
    return {t: query(dsn, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}


@pytest.fixture
def yaml_file(tmp_path: Path) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(DIRECTORY_YAML, encoding="utf-8")
    return path


def test_yaml_import_dry_run_then_real_then_idempotent(db_dsn: str, yaml_file: Path) -> None:
    empty = counts(db_dsn)
    dry = run_cli(db_dsn, "directory", "import", "--dry-run", str(yaml_file))
    assert dry.exit_code == 0, dry.output
    assert "users: + sara" in dry.output
    assert "identities: 2 added" in dry.output
    assert "dry run: nothing written" in dry.output
    assert counts(db_dsn) == empty

    real = run_cli(db_dsn, "directory", "import", str(yaml_file))
    assert real.exit_code == 0, real.output
    assert "imported" in real.output
    assert counts(db_dsn) == {"branches": 1, "telephone_systems": 1, "users": 2, "extension_assignments": 1,
                              "identities": 2, "identity_numbers": 4}
    system = query(db_dsn, "SELECT * FROM telephone_systems")[0]
    assert (system["title"], system["city_code"], system["outgoing_prefix"]) == ("سانترال اصلی", "21", "9")
    assert system["trunk_patterns"] == ["trunk.*", r"^itsp-\d{2,4}$"]
    numbers = {(r["external_id"], r["number_e164"], r["raw"]) for r in query(
        db_dsn, "SELECT external_id, number_e164, raw FROM identity_numbers JOIN identities ON id = identity_id")}
    assert numbers == {
        ("C-1", "+989121234567", "۰۹۱۲ ۱۲۳ ۴۵۶۷"), ("C-1", "+982188776655", "88776655"),
        ("C-2", "+982122223333", "+98 21 2222 3333"), ("C-2", "+989121112233", "9121112233"),
    }
    sara = query(db_dsn, "SELECT roles, active, password_hash FROM users WHERE username = 'sara'")[0]
    assert (sara["roles"], sara["active"], sara["password_hash"]) == (["sales_manager", "agent"], True, None)
    valid_from = query(db_dsn, "SELECT valid_from FROM extension_assignments")[0]["valid_from"]
    assert valid_from == datetime(2023, 12, 31, 20, 30, tzinfo=UTC)  # midnight in Tehran

    again = run_cli(db_dsn, "directory", "import", str(yaml_file))
    assert again.exit_code == 0, again.output
    assert "no changes" in again.output
    assert "identities: 2 unchanged" in again.output


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_csv_row_rolls_back_and_names_file_line_field(db_dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    _write(folder, "branches.csv", "name,title\nshiraz,شیراز\n")
    _write(folder, "users.csv", "username,full_name,roles,active\nhamid,حمید,agent,yes\n")
    identities = _write(folder, "identities.csv",
                        'external_id,kind,name,profile_url,numbers\n'
                        'P-1,person,یک,,09121234567\n'
                        'P-2,person,"دو\nبا خط دوم",,02188776655\n'
                        'P-3,person,سه,,"09351112233;101"\n')
    before = counts(db_dsn)
    result = run_cli(db_dsn, "directory", "import", str(folder))
    assert result.exit_code == 1
    # The multi-line cell of P-2 pushes P-3 to line 5.
    assert f"{identities}:5: numbers: '101' is an extension, not a phone number" in result.output
    assert counts(db_dsn) == before

    bad_users = _write(tmp_path, "users.csv", "username,roles,active\nok,agent,yes\nbad name,boss,maybe\n")
    result = run_cli(db_dsn, "directory", "import", str(bad_users))
    assert result.exit_code == 1
    assert f"{bad_users}:3: username: 'bad name' is not a username" in result.output
    assert f"{bad_users}:3: roles: unknown role 'boss'" in result.output
    assert f"{bad_users}:3: active: expected true or false" in result.output
    assert counts(db_dsn) == before

    unknown = _write(tmp_path, "extensions.csv", "system,extension,user,valid_from\nnowhere,101,ghost,2024-01-01\n")
    result = run_cli(db_dsn, "directory", "import", str(unknown))
    assert result.exit_code == 1
    assert f"{unknown}:2: system: no telephone system named 'nowhere'" in result.output
    assert f"{unknown}:2: user: no user named 'ghost'" in result.output


def test_yaml_and_toml_errors_name_the_line(db_dsn: str, tmp_path: Path) -> None:
    bad_yaml = _write(tmp_path, "d.yaml", "users:\n  - username: a\n  - username: b\n    active: sometimes\n")
    result = run_cli(db_dsn, "directory", "import", str(bad_yaml))
    assert result.exit_code == 1
    assert f"{bad_yaml}:4: active: expected true or false, not 'sometimes'" in result.output

    bad_toml = _write(tmp_path, "d.toml", '[[systems]]\nname = "a"\nbranch = "b"\n\n[[systems]]\nname = "c"\n'
                                          'ami_port = 99999\n')
    result = run_cli(db_dsn, "directory", "import", str(bad_toml))
    assert result.exit_code == 1
    assert f"{bad_toml}:7: ami_port: expected a TCP port" in result.output
    # The first system's branch does not exist either: reported once the file itself is fine.
    ok_toml = _write(tmp_path, "e.toml", '[[systems]]\nname = "a"\nbranch = "b"\n')
    result = run_cli(db_dsn, "directory", "import", str(ok_toml))
    assert f"{ok_toml}:3: branch: no branch named 'b'" in result.output
    assert counts(db_dsn)["telephone_systems"] == 0


def test_reassignment_keeps_history(db_dsn: str, yaml_file: Path, tmp_path: Path) -> None:
    assert run_cli(db_dsn, "directory", "import", str(yaml_file)).exit_code == 0
    move = _write(tmp_path, "extensions.csv",
                  "system,extension,user,valid_from\ntehran-main,101,sara,1403-04-01\n")  # Jalali: 2024-06-21
    dry = run_cli(db_dsn, "directory", "import", "--dry-run", str(move))
    assert "extensions: - tehran-main/101 of ali: closed at 2024-06-21T00:00:00+03:30" in dry.output
    assert len(query(db_dsn, "SELECT * FROM extension_assignments WHERE valid_to IS NOT NULL")) == 0
    result = run_cli(db_dsn, "directory", "import", str(move))
    assert result.exit_code == 0, result.output
    assert "extensions: 1 added, 1 closed" in result.output
    rows = query(db_dsn, """SELECT u.username, a.valid_from, a.valid_to FROM extension_assignments a
                            JOIN users u ON u.id = a.user_id ORDER BY a.valid_from""")
    switch = datetime(2024, 6, 20, 20, 30, tzinfo=UTC)
    assert [(r["username"], r["valid_to"]) for r in rows] == [("ali", switch), ("sara", None)]
    assert rows[1]["valid_from"] == switch
    # Importing the original file again does not reopen ali's period (history is not rewritten).
    again = run_cli(db_dsn, "directory", "import", str(yaml_file))
    assert "extensions: 1 unchanged" in again.output
    assert len(query(db_dsn, "SELECT * FROM extension_assignments")) == 2


@pytest.mark.parametrize("fmt", ["csv", "yaml", "toml"])
def test_export_round_trip(db_dsn: str, yaml_file: Path, tmp_path: Path, fmt: str) -> None:
    assert run_cli(db_dsn, "directory", "import", str(yaml_file)).exit_code == 0
    move = _write(tmp_path, "extensions.csv",
                  "system,extension,user,valid_from\ntehran-main,101,sara,2024-06-21 09:30\n")
    assert run_cli(db_dsn, "directory", "import", str(move)).exit_code == 0
    target = tmp_path / ("out" if fmt == "csv" else f"out.{fmt}")
    result = run_cli(db_dsn, "directory", "export", str(target))
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        users_csv = (target / "users.csv").read_bytes()
        assert users_csv.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets then show Persian correctly
        assert "سارا احمدی" in users_csv.decode("utf-8-sig")
        assert "2024-06-21T09:30:00+03:30" in (target / "extensions.csv").read_text(encoding="utf-8-sig")
    else:
        text = target.read_text(encoding="utf-8")
        assert "سارا احمدی" in text
        assert "tehran-main" in text
    before = counts(db_dsn)
    again = run_cli(db_dsn, "directory", "import", str(target))
    assert again.exit_code == 0, again.output
    assert "no changes" in again.output
    assert counts(db_dsn) == before


def test_export_to_stdout_and_bad_usage(db_dsn: str, yaml_file: Path) -> None:
    assert run_cli(db_dsn, "directory", "import", str(yaml_file)).exit_code == 0
    result = run_cli(db_dsn, "directory", "export", "--format", "yaml", "-")
    assert "علی رضایی" in result.output
    assert run_cli(db_dsn, "directory", "export", "-").exit_code == 2
    assert run_cli(db_dsn, "directory", "import", "--country-code", "98", str(yaml_file)).exit_code == 2


def test_identity_numbers_use_explicit_codes(db_dsn: str, tmp_path: Path) -> None:
    path = _write(tmp_path, "identities.csv", "external_id,name,numbers\nX,ایکس,32221234\n")
    result = run_cli(db_dsn, "directory", "import", "--country-code", "98", "--city-code", "031", str(path))
    assert result.exit_code == 0, result.output
    assert query(db_dsn, "SELECT number_e164 FROM identity_numbers")[0]["number_e164"] == "+983132221234"


def _call(call_id: str, start: datetime, agent: str) -> CallRecord:
    return CallRecord(system="tehran-main", call_id=call_id, direction="incoming", status="answered", reason=None,
                      caller="09121234567", callee="02191001000", start=start, end=start.replace(minute=5),
                      answer=start.replace(second=5),
                      segments=(Segment(agent, "answered", start, start.replace(second=5), start.replace(minute=5)),))


def test_unmapped_extensions(db_dsn: str, yaml_file: Path) -> None:
    assert run_cli(db_dsn, "directory", "import", str(yaml_file)).exit_code == 0

    async def store_some() -> None:
        conn = await store.connect(db_dsn)
        try:
            system_id = await store.ensure_system(conn, SystemConfig(name="tehran-main"))
            day: Callable[[int], datetime] = lambda d: datetime(2024, 7, d, 8, 0, tzinfo=UTC)  # noqa: E731
            await store.store_calls(conn, system_id, [_call("1.1", day(1), "101"), _call("1.2", day(2), "105"),
                                                      _call("1.3", day(3), "105"), _call("1.4", day(4), "106")])
        finally:
            await conn.close()

    asyncio.run(store_some())
    result = run_cli(db_dsn, "directory", "unmapped")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "tehran-main\t105\t2024-07-02T08:00:00+00:00\t2024-07-03T08:00:00+00:00\t2"
    assert lines[2].startswith("tehran-main\t106\t")
    assert not any("\t101\t" in line for line in lines)  # ali holds 101
    assign = yaml_file.parent / "more.yaml"
    assign.write_text("extensions:\n  - {system: tehran-main, extension: '105', user: ali, valid_from: 2024-07-01}\n"
                      "  - {system: tehran-main, extension: '106', user: sara, valid_from: 2024-07-01}\n",
                      encoding="utf-8")
    assert run_cli(db_dsn, "directory", "import", str(assign)).exit_code == 0
    assert "every extension seen is assigned" in run_cli(db_dsn, "directory", "unmapped").output
