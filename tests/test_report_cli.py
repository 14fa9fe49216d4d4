"""calltrail-report render | totals | chain through click's CliRunner, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import asyncpg
import openpyxl
import pytest
import report_data
from click.testing import CliRunner

from reports.cli import main

PERIOD = ["--from", "1404/12/01", "--to", "1405/01/31"]


async def _load(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await report_data.load(conn)
    finally:
        await conn.close()


@pytest.fixture
def dsn(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    asyncio.run(_load(db_dsn))
    monkeypatch.setenv("CALLTRAIL_DSN", db_dsn)
    monkeypatch.delenv("CALLTRAIL_CONFIG", raising=False)
    monkeypatch.delenv("CALLTRAIL_COMPANY", raising=False)
    return db_dsn


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_render_csv_to_stdout(dsn: str) -> None:
    code, out, err = run("render", *PERIOD, "--branch", "tehran", "--format", "csv", "-o", "-")
    assert code == 0, err
    lines = out.lstrip("\ufeff").splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("ردیف,")


def test_render_picks_the_format_from_the_file_name(dsn: str, tmp_path: Path) -> None:
    target = tmp_path / "calls.xlsx"
    code, _, err = run("render", *PERIOD, "--system", "tehran-main", "--by", "month", "--lang", "en",
                       "--calendar", "jalali", "-o", str(target))
    assert code == 0, err
    assert "calls.xlsx: 8 calls" in err
    book = openpyxl.load_workbook(io.BytesIO(target.read_bytes()))
    assert book.sheetnames == ["Calls", "Totals"]
    assert [p.name for p in tmp_path.iterdir()] == ["calls.xlsx"]      # no partial file left behind


def test_render_html_and_pdf(dsn: str, tmp_path: Path) -> None:
    code, out, err = run("render", *PERIOD, "--agent", "ali", "--type", "all,internal", "--format", "html",
                         "--company", "Acme", "-o", "-")
    assert code == 0, err
    assert "Acme" in out
    assert "علی رضایی" in out
    target = tmp_path / "r.pdf"
    code, _, err = run("render", "--period", "month", "--year", "1404", "--month", "12", "-o", str(target))
    assert code == 0, err
    assert target.read_bytes().startswith(b"%PDF")


BAD = [
    (["--from", "1404/12/30"], "Error: from: 1404/12/30 does not exist: Esfand 1404 has 29 days"),
    (["--from", "1405/01/10", "--to", "1405/01/01"], "Error: to: 1405/01/01 is before from (1405/01/10)"),
    ([*PERIOD, "--by", "week"], "Error: by: 'week' is not one of day, month, season, year"),
    ([*PERIOD, "--type", "fax"], "Error: type: 'fax' is not one of all, incoming, outgoing, missed, internal"),
    ([*PERIOD, "--tz", "Tehran"], "Error: tz: 'Tehran' is not a known time zone"),
    ([*PERIOD, "--format", "doc"], "Error: format: 'doc' is not one of pdf, xlsx, csv, html"),
    ([*PERIOD, "--agent", "ghost"], "Error: agent: there is no user 'ghost'"),
    ([*PERIOD, "--branch", "shiraz"], "Error: branch: there is no branch 'shiraz'"),
    ([*PERIOD, "--branch", "mashhad", "--system", "tehran-main"],
     "Error: system: telephone system 'tehran-main' is not in branch 'mashhad'"),
    ([*PERIOD, "--as", "mallory"], "Error: as: there is no user 'mallory'"),
    (["--period", "month", "--year", "1405", "--month", "13"], "Error: month: must be 1-12, not 13"),
]


@pytest.mark.parametrize(("args", "message"), BAD,
                         ids=[m.split(":")[1].strip() + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_filters_exit_with_code_2_and_name_the_field(dsn: str, tmp_path: Path, args: list[str],
                                                         message: str) -> None:
    target = tmp_path / "out.csv"
    code, _, err = run("render", *args, "-o", str(target))
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not target.exists()


def test_refused_users_get_a_clear_error(dsn: str) -> None:
    code, out, err = run("render", *PERIOD, "--as", "ali", "--format", "csv", "-o", "-")
    assert code == 1
    assert "user 'ali' (agent) may not produce reports" in err
    assert out == ""
    code, _, err = run("totals", "agent", *PERIOD, "--as", "former", "--format", "csv", "-o", "-")
    assert code == 1
    assert "disabled" in err
    code, _, err = run("chain", "c2", "--as", "nobody")
    assert code == 1
    assert "may not produce reports" in err
    code, _, err = run("render", *PERIOD, "--as", "maryam", "--format", "csv", "-o", "-")
    assert code == 0, err


def test_totals_commands(dsn: str) -> None:
    code, out, err = run("totals", "agent", *PERIOD, "--branch", "tehran", "--lang", "en", "--calendar", "jalali",
                         "--format", "csv", "-o", "-")
    assert code == 0, err
    lines = out.lstrip("\ufeff").splitlines()
    assert lines[-2] == ",Sum,5,0:05:40,2,0:01:30,8,2"
    assert lines[-1] == ",Average,1,0:01:08,0,0:00:18,2,0"
    code, out, err = run("totals", "date", *PERIOD, "--by", "month", "--branch", "tehran", "--format", "csv", "-o", "-")
    assert code == 0, err
    assert out.lstrip("\ufeff").splitlines()[1].startswith("1,اسفند 1404,3,0:03:15,2,0:01:30,6,1")
    code, out, err = run("totals", "number", *PERIOD, "--sort", "calls", "--format", "html", "-o", "-")
    assert code == 0, err
    assert "Hashemi" in out
    code, _, err = run("totals", "number", *PERIOD, "--sort", "size", "-o", "-")
    assert code == 2
    assert "sort: 'size' is not one of number, calls, talk" in err


def test_chain_command(dsn: str) -> None:
    code, out, err = run("chain", "c2", "--lang", "en")
    assert code == 0, err
    assert "102 (Hadi Agent)  blind transfer" in out
    assert "Transfers: 3" in out
    code, out, err = run("chain", "c2", "--format", "json", "--lang", "en")
    assert code == 0, err
    chain = json.loads(out)
    assert [t["extension"] for t in chain["turns"]] == ["101", "102", "103"]
    assert chain["talk_seconds"] == 120
    code, _, err = run("chain", "nope")
    assert code == 1
    assert "there is no call 'nope'" in err
