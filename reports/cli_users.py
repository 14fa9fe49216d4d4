"""`calltrail-report users ...`: add users, set passwords and roles, disable them (thin commands).

Passwords never appear on the command line: they are read with a hidden prompt, or from a file
(`--password-file PATH`, `-` for standard input) for scripts.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ingest.cli import get_config, run_async
from reports import users as users_mod

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")


@asynccontextmanager
async def connection(ctx: click.Context) -> AsyncIterator[asyncpg.Connection]:
    """An open connection to the configured (or embedded) database, closed afterwards."""
    from ingest import pg, store

    target = await asyncio.to_thread(pg.resolve, get_config(ctx).dsn)
    conn = await store.connect(target.dsn)
    try:
        yield conn
    finally:
        await conn.close()


def run_with_connection(ctx: click.Context, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work(conn)` on a fresh connection, turning Calltrail errors into clean CLI errors."""

    async def go() -> T:
        async with connection(ctx) as conn:
            return await work(conn)

    return run_async(go)


def read_password(password_file: Path | None, *, confirm: bool = True) -> str:
    """The new password: from `password_file` (`-` is stdin, first line), else a hidden prompt."""
    if password_file is not None:
        try:
            text = sys.stdin.read() if str(password_file) == "-" else password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot read {password_file}: {exc.strerror}") from exc
        lines = text.splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    if len(password) < users_mod.MIN_PASSWORD_LENGTH:
        raise click.ClickException(f"the password must have at least {users_mod.MIN_PASSWORD_LENGTH} characters")
    return password


def _describe(user: users_mod.User) -> str:
    state = "active" if user.active else "disabled"
    roles = ",".join(user.roles) or "-"
    return f"{user.username}\t{user.full_name}\t{roles}\t{state}"


_PASSWORD_FILE = click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default=None,
    help="Read the password from this file's first line ('-' for standard input) instead of a prompt.",
)


@click.group("users")
def users() -> None:
    """Manage who may log in and produce reports (argon2 password hashes)."""


@users.command("add")
@click.argument("username")
@click.option("--full-name", default="", help="Display name (may be Persian).")
@click.option("--role", "roles", multiple=True,
              help=f"Role, repeatable or comma-separated: {', '.join(users_mod.ROLES)}.")
@_PASSWORD_FILE
@click.option("--no-password", is_flag=True, help="Create the user without a password (cannot log in yet).")
@click.pass_context
def users_add(
    ctx: click.Context, username: str, full_name: str, roles: tuple[str, ...], password_file: Path | None,
    no_password: bool,
) -> None:
    """Create USERNAME with a password read from a hidden prompt or --password-file."""
    try:
        users_mod.check_username(username)
        users_mod.parse_roles(roles)
    except users_mod.UserError as exc:
        raise click.UsageError(str(exc)) from exc
    password = None if no_password else read_password(password_file)
    user = run_with_connection(
        ctx, lambda conn: users_mod.add_user(conn, username, full_name=full_name, roles=roles, password=password)
    )
    click.echo(f"added {_describe(user)}")


@users.command("passwd")
@click.argument("username")
@_PASSWORD_FILE
@click.pass_context
def users_passwd(ctx: click.Context, username: str, password_file: Path | None) -> None:
    """Set USERNAME's password (hidden prompt, or --password-file)."""
    password = read_password(password_file)
    user = run_with_connection(ctx, lambda conn: users_mod.set_password(conn, username, password))
    click.echo(f"password of {user.username} changed")


@users.command("roles")
@click.argument("username")
@click.option("--add", "add", multiple=True, help="Role to add (repeatable, or comma-separated).")
@click.option("--remove", "remove", multiple=True, help="Role to remove (repeatable, or comma-separated).")
@click.option("--set", "replace", default=None, help="Replace all roles by this comma-separated list ('' for none).")
@click.pass_context
def users_roles(
    ctx: click.Context, username: str, add: tuple[str, ...], remove: tuple[str, ...], replace: str | None
) -> None:
    """Show or change USERNAME's roles."""
    try:
        for values in (add, remove, (replace or "",)):
            users_mod.parse_roles(values)
    except users_mod.UserError as exc:
        raise click.UsageError(str(exc)) from exc
    if not add and not remove and replace is None:
        user = run_with_connection(ctx, lambda conn: users_mod.get_user(conn, username))
        if user is None:
            raise click.ClickException(f"no user named {username!r}")
    else:
        replace_roles = None if replace is None else (replace,)
        user = run_with_connection(
            ctx, lambda conn: users_mod.set_roles(conn, username, add=add, remove=remove, replace=replace_roles)
        )
    click.echo(_describe(user))


@users.command("disable")
@click.argument("username")
@click.pass_context
def users_disable(ctx: click.Context, username: str) -> None:
    """Disable USERNAME: they can no longer log in; their history stays."""
    user = run_with_connection(ctx, lambda conn: users_mod.set_active(conn, username, False))
    click.echo(f"disabled {user.username}")


@users.command("enable")
@click.argument("username")
@click.pass_context
def users_enable(ctx: click.Context, username: str) -> None:
    """Enable USERNAME again."""
    user = run_with_connection(ctx, lambda conn: users_mod.set_active(conn, username, True))
    click.echo(f"enabled {user.username}")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List users: username, full name, roles, state (tab-separated)."""
    for user in run_with_connection(ctx, users_mod.list_users):
        click.echo(_describe(user))
