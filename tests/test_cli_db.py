"""`calltrail-ingest db ...` on the embedded default and on a configured server, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import main


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run calltrail-ingest in its own process, so the embedded server's lifetime is real."""
    return subprocess.run(
        [sys.executable, "-c", "from ingest.cli import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no DSN and a private data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTRAIL_")}
    env["CALLTRAIL_DATA_DIR"] = str(tmp_path / "data")
    env["CALLTRAIL_CONFIG"] = str(tmp_path / "absent.toml")
    return env


def test_db_init_and_status_on_the_embedded_default(embedded_env: dict[str, str], tmp_path: Path) -> None:
    embedded_env.pop("CALLTRAIL_CONFIG")
    data = tmp_path / "data" / "pg"
    first = run_cli("db", "init", env=embedded_env)
    assert first.returncode == 0, first.stderr
    assert f"embedded PostgreSQL, data in {data}" in first.stdout
    assert "schema created (version" in first.stdout
    assert (data / "PG_VERSION").exists()

    second = run_cli("db", "init", env=embedded_env)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout

    status = run_cli("db", "status", env=embedded_env)
    assert status.returncode == 0, status.stderr
    assert "server: PostgreSQL" in status.stdout
    assert "schema: version" in status.stdout
    assert "expects" not in status.stdout
    assert "calls stored: 0" in status.stdout
    # The server does not outlive the processes that used it.
    assert not (data / "postmaster.pid").exists()
    stop = run_cli("db", "stop", env=embedded_env)
    assert "not running" in stop.stdout


def test_db_status_on_a_configured_server(db_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLTRAIL_DSN", db_dsn)
    monkeypatch.delenv("CALLTRAIL_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "none.toml"), "db", "status"])
    # A named config file that does not exist is an error, never a traceback.
    assert result.exit_code == 1
    assert "does not exist" in result.output
    config = tmp_path / "calltrail.toml"
    config.write_text('journal_dir = "/tmp/j"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "db", "status"])
    assert result.exit_code == 0, result.output
    assert "PostgreSQL at postgresql://" in result.output
    assert "schema: version" in result.output


def test_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLTRAIL_DSN", "postgresql://nobody:secret@127.0.0.1:1/none")
    monkeypatch.delenv("CALLTRAIL_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["db", "status"])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL at postgresql://nobody:***@127.0.0.1:1/none" in result.output
    assert "secret" not in result.output
    assert "Traceback" not in result.output


def test_version_and_help() -> None:
    runner = CliRunner()
    assert "calltrail-ingest, version" in runner.invoke(main, ["--version"]).output
    help_text = runner.invoke(main, ["--help"]).output
    assert "embedded" in help_text
    assert "db" in help_text
