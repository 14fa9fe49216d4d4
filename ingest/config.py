"""Configuration: defaults, then the TOML file, then the environment (later wins).

Loaded once and passed down. Secrets (AMI secrets, passwords inside a DSN) are never printed:
`SystemConfig.__repr__` hides them and `redact_dsn` masks DSN passwords for logs.

Minimal file::

    dsn = "postgresql://calltrail@db/calltrail"   # optional: embedded PostgreSQL when absent
    journal_dir = "/var/lib/calltrail/journal"

    [[systems]]
    name = "tehran-main"
    branch = "tehran"
    host = "10.0.0.5"
    port = 5038
    username = "calltrail"
    secret = "..."              # or secret_file = "/etc/calltrail/ami.secret"
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ingest.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/calltrail/calltrail.toml")
DEFAULT_EXTENSION_PATTERN = r"^\d{2,6}$"
EXTENSION_SOURCES = ("endpoint", "callerid", "accountcode")
AUTH_TYPES = ("plain", "md5")


@dataclass(frozen=True)
class SystemConfig:
    """One telephone system: its AMI endpoint and the rules that read its channels."""

    name: str = "default"
    branch: str = "default"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    # AMI login: "plain" sends the secret; "md5" answers a Challenge with md5(challenge + secret).
    auth: str = "plain"
    # How an extension is read from a channel: its endpoint name, caller ID number or account code.
    extension_from: str = "endpoint"
    extension_pattern: str = DEFAULT_EXTENSION_PATTERN
    # Endpoint name -> extension number, for PBXs whose peers are not named by extension.
    extension_map: dict[str, str] = field(default_factory=dict)
    # Endpoint name patterns (regular expressions, full match) that are trunks.
    trunks: tuple[str, ...] = ()
    # Dialplan contexts where calls from outside enter.
    inbound_contexts: tuple[str, ...] = ()
    country_code: str = "98"
    city_code: str = "21"
    outgoing_prefix: str = ""
    timezone: str = "Asia/Tehran"

    def __post_init__(self) -> None:
        if self.auth not in AUTH_TYPES:
            raise ConfigError(f"systems.{self.name}.auth must be one of {', '.join(AUTH_TYPES)}, not {self.auth!r}")
        if self.extension_from not in EXTENSION_SOURCES:
            raise ConfigError(
                f"systems.{self.name}.extension_from must be one of {', '.join(EXTENSION_SOURCES)}, "
                f"not {self.extension_from!r}"
            )
        for key, pattern in [("extension_pattern", self.extension_pattern)] + [
            ("trunks", p) for p in self.trunks
        ]:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"systems.{self.name}.{key}: bad regular expression {pattern!r}: {exc}") from exc


@dataclass(frozen=True)
class DaemonConfig:
    """The `[daemon]` table: how `calltrail-ingest run` behaves (every key optional)."""

    # host:port of /healthz and /metrics; "" turns the endpoint off.
    metrics: str = "127.0.0.1:9108"
    journal_segment_mb: int = 64
    # Journal kept for re-replays; segments a replay still needs are kept beyond it.
    journal_max_mb: int = 1024
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    checkpoint_interval: float = 2.0
    # A call with no event for this long is closed as recovered (its hang-up was lost).
    stale_call_hours: float = 12.0


DAEMON_FIELDS = {f.name: f for f in fields(DaemonConfig)}


def daemon_from_dict(raw: dict[str, Any]) -> DaemonConfig:
    """Build the DaemonConfig from the `[daemon]` table, casting and checking every key."""
    if not isinstance(raw, dict):
        raise ConfigError("daemon must be a table: write [daemon]")
    unknown = set(raw) - set(DAEMON_FIELDS)
    if unknown:
        raise ConfigError(f"daemon: unknown key(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "metrics":
            if not isinstance(value, str) or (value and not re.fullmatch(r"\[?[\w.:-]*\]?:\d{1,5}", value)):
                raise ConfigError(f"daemon.metrics must be \"host:port\" or \"\", not {value!r}")
            values[key] = value
        elif key in ("journal_segment_mb", "journal_max_mb"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"daemon.{key} must be a whole number of MiB (1 or more), not {value!r}")
            values[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"daemon.{key} must be a positive number, not {value!r}")
            values[key] = float(value)
    return DaemonConfig(**values)


@dataclass(frozen=True)
class Config:
    """The whole daemon configuration."""

    dsn: str | None = field(default=None, repr=False)
    journal_dir: Path = Path("/var/lib/calltrail/journal")
    systems: tuple[SystemConfig, ...] = ()
    source: Path | None = None
    daemon: DaemonConfig = field(default_factory=DaemonConfig)

    def system(self, name: str | None) -> SystemConfig:
        """The named system, or the only/default one when `name` is None."""
        if name is None:
            if len(self.systems) == 1:
                return self.systems[0]
            if not self.systems:
                return SystemConfig()
            names = ", ".join(s.name for s in self.systems)
            raise ConfigError(f"several telephone systems are configured ({names}): choose one with --system")
        for system in self.systems:
            if system.name == name:
                return system
        if not self.systems and name:
            return SystemConfig(name=name)
        raise ConfigError(f"no telephone system named {name!r} in {self.source or 'the configuration'}")


_SYSTEM_FIELDS = {f.name: f for f in fields(SystemConfig)}


def _read_secret(raw: dict[str, Any], where: str) -> str:
    if "secret_file" in raw:
        path = Path(str(raw["secret_file"]))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}.secret_file: cannot read {path}: {exc.strerror}") from exc
    return str(raw.get("secret", ""))


def system_from_dict(raw: dict[str, Any], index: int = 0) -> SystemConfig:
    """Build one SystemConfig from a `[[systems]]` table, casting and checking every key."""
    where = f"systems[{index}]"
    unknown = set(raw) - set(_SYSTEM_FIELDS) - {"secret_file"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("secret", "secret_file"):
            continue
        if key == "port":
            if not isinstance(value, int) or not 0 < value < 65536:
                raise ConfigError(f"{where}.port must be a TCP port number (1-65535), not {value!r}")
            values[key] = value
        elif key in ("trunks", "inbound_contexts"):
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.{key} must be a list of strings")
            values[key] = tuple(value)
        elif key == "extension_map":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.extension_map must be a table of endpoint = extension")
            values[key] = {str(k): str(v) for k, v in value.items()}
        else:
            if isinstance(value, (dict, list)):
                raise ConfigError(f"{where}.{key} must be a single value")
            values[key] = str(value)
    values["secret"] = _read_secret(raw, where)
    env_secret = os.environ.get(f"CALLTRAIL_{_env_name(values.get('name', 'default'))}_SECRET")
    if env_secret:
        values["secret"] = env_secret
    return SystemConfig(**values)


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def load_config(path: Path | None = None, *, required: bool = False) -> Config:
    """Read the TOML file (if any) and apply environment overrides.

    `path` None means `CALLTRAIL_CONFIG` or the default path, silently skipped when missing
    unless `required` is set.
    """
    explicit = path is not None or "CALLTRAIL_CONFIG" in os.environ
    if path is None:
        path = Path(os.environ.get("CALLTRAIL_CONFIG", str(DEFAULT_CONFIG_PATH)))
    raw: dict[str, Any] = {}
    source: Path | None = None
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        source = path
    elif explicit or required:
        raise ConfigError(f"configuration file {path} does not exist")
    return config_from_dict(raw, source=source)


def config_from_dict(raw: dict[str, Any], *, source: Path | None = None) -> Config:
    """Build a Config from parsed TOML, then apply environment overrides."""
    known = {"dsn", "dsn_file", "journal_dir", "systems", "daemon"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(sorted(unknown))}")
    dsn: str | None = raw.get("dsn")
    if "dsn_file" in raw:
        dsn = Path(str(raw["dsn_file"])).read_text(encoding="utf-8").strip()
    dsn = os.environ.get("CALLTRAIL_DSN") or dsn
    dsn_file = os.environ.get("CALLTRAIL_DSN_FILE")
    if dsn_file:
        dsn = Path(dsn_file).read_text(encoding="utf-8").strip()
    systems_raw = raw.get("systems", [])
    if not isinstance(systems_raw, list):
        raise ConfigError("systems must be an array of tables: write [[systems]]")
    systems = tuple(system_from_dict(s, i) for i, s in enumerate(systems_raw))
    names = [s.name for s in systems]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ConfigError(f"telephone system names must be unique: {', '.join(sorted(duplicated))}")
    journal_dir = Path(os.environ.get("CALLTRAIL_JOURNAL_DIR") or raw.get("journal_dir") or Config.journal_dir)
    daemon = daemon_from_dict(raw.get("daemon", {}))
    return Config(dsn=dsn or None, journal_dir=journal_dir, systems=systems, source=source, daemon=daemon)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ***, for logs and status output."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
