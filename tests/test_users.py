"""Users and passwords on a real PostgreSQL: argon2 hashes, roles, disabling, and the CLI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from reports import users
from reports.cli import main


def verify(dsn: str, username: str, password: str) -> users.User | None:
    """verify_password on a connection of its own (CLI tests run outside an event loop)."""

    async def go() -> users.User | None:
        conn = await asyncpg.connect(dsn)
        try:
            return await users.verify_password(conn, username, password)
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.mark.asyncio
async def test_add_and_verify(db: asyncpg.Connection) -> None:
    user = await users.add_user(db, "sara", full_name="سارا احمدی", roles=["sales-manager", "agent"],
                                password="correct horse")
    assert user.roles == ("sales_manager", "agent")
    assert user.may_report
    stored = await db.fetchval("SELECT password_hash FROM users WHERE username = 'sara'")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    verified = await users.verify_password(db, "sara", "correct horse")
    assert verified == user
    assert await users.verify_password(db, "sara", "wrong horse") is None
    assert await users.verify_password(db, "nobody", "correct horse") is None
    assert await users.get_user(db, "sara") == user
    assert await users.get_user(db, "nobody") is None


@pytest.mark.asyncio
async def test_disable_passwd_roles(db: asyncpg.Connection) -> None:
    await users.add_user(db, "reza", roles=["agent"], password="first password")
    assert not (await users.get_user(db, "reza")).may_report  # type: ignore[union-attr]
    await users.set_password(db, "reza", "second password")
    assert await users.verify_password(db, "reza", "first password") is None
    assert await users.verify_password(db, "reza", "second password") is not None
    changed = await users.set_roles(db, "reza", add=["crm_manager"], remove=["agent"])
    assert changed.roles == ("crm_manager",)
    replaced = await users.set_roles(db, "reza", replace=["admin,agent"])
    assert replaced.roles == ("admin", "agent")
    await users.set_active(db, "reza", False)
    assert await users.verify_password(db, "reza", "second password") is None
    disabled = await users.get_user(db, "reza")
    assert disabled is not None
    assert not disabled.active
    assert not disabled.may_report


@pytest.mark.asyncio
async def test_user_errors(db: asyncpg.Connection) -> None:
    await users.add_user(db, "ali")
    with pytest.raises(users.UserError, match="already exists"):
        await users.add_user(db, "ali")
    with pytest.raises(users.UserError, match="unknown role"):
        await users.add_user(db, "bob", roles=["boss"])
    with pytest.raises(users.UserError, match="at least 8"):
        await users.add_user(db, "bob", password="short")
    with pytest.raises(users.UserError, match="invalid username"):
        await users.add_user(db, "b o b")
    with pytest.raises(users.UserError, match="no user"):
        await users.set_password(db, "ghost", "long enough password")
    # No password set: cannot log in.
    assert await users.verify_password(db, "ali", "") is None


def test_cli_users(db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLTRAIL_DSN", db_dsn)
    runner = CliRunner()
    # Hidden prompt with confirmation: the password is never an argument.
    result = runner.invoke(main, ["users", "add", "maryam", "--full-name", "مریم", "--role", "support-manager"],
                           input="s3cret password\ns3cret password\n")
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert verify(db_dsn, "maryam", "s3cret password") is not None

    password_file = tmp_path / "pw"
    password_file.write_text("from a file!\n", encoding="utf-8")
    result = runner.invoke(main, ["users", "passwd", "maryam", "--password-file", str(password_file)])
    assert result.exit_code == 0, result.output
    assert verify(db_dsn, "maryam", "from a file!") is not None

    result = runner.invoke(main, ["users", "passwd", "maryam", "--password-file", "-"], input="from stdin too\n")
    assert result.exit_code == 0, result.output
    assert verify(db_dsn, "maryam", "from stdin too") is not None

    result = runner.invoke(main, ["users", "roles", "maryam", "--add", "admin"])
    assert result.exit_code == 0, result.output
    assert "support_manager,admin" in result.output

    result = runner.invoke(main, ["users", "list"])
    assert "maryam\tمریم\tsupport_manager,admin\tactive" in result.output

    result = runner.invoke(main, ["users", "disable", "maryam"])
    assert result.exit_code == 0
    assert verify(db_dsn, "maryam", "from stdin too") is None

    result = runner.invoke(main, ["users", "add", "x", "--role", "boss", "--no-password"])
    assert result.exit_code == 2
    assert "unknown role" in result.output
    result = runner.invoke(main, ["users", "passwd", "ghost", "--password-file", str(password_file)])
    assert result.exit_code == 1
    assert "no user named 'ghost'" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["users", "add", "y"], input="short\nshort\n")
    assert result.exit_code == 1
    assert "at least 8" in result.output


@pytest.mark.asyncio
async def test_verify_password_leaves_the_event_loop_free(db: asyncpg.Connection) -> None:
    """argon2 runs in a worker thread: other coroutines go on while a password is checked."""
    await users.add_user(db, "mina", roles=["agent"], password="long enough password")
    stored = await db.fetchval("SELECT password_hash FROM users WHERE username = 'mina'")
    # The slower of two runs: on a loaded machine a check and a scheduling gap both stretch.
    runs = []
    for _ in range(2):
        began = time.perf_counter()
        PasswordHasher().verify(stored, "long enough password")
        runs.append(time.perf_counter() - began)
    argon2_seconds = max(runs)
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    assert await users.verify_password(db, "mina", "long enough password") is not None
    assert await users.verify_password(db, "mina", "a wrong password") is None
    done = True
    await task
    # On the loop, each check would stall every other coroutine for a whole argon2 run.
    assert max(gaps) < argon2_seconds * 0.75
