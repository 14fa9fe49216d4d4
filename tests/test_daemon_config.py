"""`calltrail-ingest check-config`: every bad field named with its line; a good file summarised."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import main

GOOD = """\
journal_dir = "/tmp/journal"

[daemon]
metrics = "127.0.0.1:9108"

[[systems]]
name = "tehran-main"
branch = "tehran"
host = "10.0.0.5"
port = 5038
username = "calltrail"
secret = "s3cret"
"""

BAD = """\
journal_dir = "/tmp/journal"
colour = "blue"

[daemon]
metrics = "everywhere"
ping_interval = -1

[[systems]]
name = "a"
host = "10.0.0.5"
port = 70000
username = "calltrail"
secret = "x"

[[systems]]
name = "a"
host = "10.0.0.6"
extension_from = "magic"
"""


def test_a_good_file_is_summarised(tmp_path: Path) -> None:
    path = tmp_path / "calltrail.toml"
    path.write_text(GOOD, encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK: 1 telephone system(s): tehran-main (10.0.0.5:5038)" in result.output
    assert "s3cret" not in result.output


def test_every_bad_field_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "calltrail.toml"
    path.write_text(BAD, encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    expected = {
        2: "unknown top-level key 'colour'",
        5: "daemon.metrics",
        6: "daemon.ping_interval",
        11: "systems[0].port",
        16: "already used",
        18: "systems.a.extension_from",
        15: "systems[1]: missing 'username'",
    }
    for line, text in expected.items():
        assert any(out.startswith(f"{path}:{line}: ") and text in out for out in lines), (line, text, lines)
    assert "7 problem(s)" in result.output or "8 problem(s)" in result.output


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "calltrail.toml"
    path.write_text('dsn = "x"\n[[systems]\nname = 1\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: not valid TOML" in result.output


def test_auth_chooses_plain_or_md5_login(tmp_path: Path) -> None:
    path = tmp_path / "calltrail.toml"
    path.write_text(GOOD + 'auth = "md5"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    path.write_text(GOOD + 'auth = "sha1"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:13: systems.tehran-main.auth must be one of plain, md5, not 'sha1'" in result.output


def test_the_shipped_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLTRAIL_TEHRAN_MAIN_SECRET", "s3cret")
    example = Path(__file__).parent.parent / "deploy" / "calltrail.toml"
    result = CliRunner().invoke(main, ["check-config", str(example)])
    assert result.exit_code == 0, result.output
    assert "tehran-main" in result.output
