"""Mosquitto users and ACL derived from the site config.

One MQTT user per camera group (``edge-<group>``) that may publish only under its own cameras' topics,
and ``citywatch-server`` that reads every contract topic and publishes alerts. Passwords come from the
environment or the ``.env`` file, or are generated and appended to ``.env``; they never reach a log.

The password file uses Mosquitto 2's own format, as ``mosquitto_passwd`` writes it:
``user:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from citywatch.site import SiteConfig
from contract.topics import MAJOR

log = logging.getLogger(__name__)

SERVER_USER = "citywatch-server"
SERVER_PASSWORD_VAR = "MQTT_SERVER_PASSWORD"  # noqa: S105 (the variable's name, not a password)
#: mosquitto_passwd's default; generated passwords are 256-bit random, so iterations add little there.
DEFAULT_ITERATIONS = 101
_SALT_BYTES = 12  # what mosquitto_passwd uses
_HASH_ID = "7"  # Mosquitto's id for PBKDF2-HMAC-SHA512


class BrokerAuthError(Exception):
    """The users, passwords or files cannot be produced."""


def edge_user(group: str) -> str:
    """The MQTT user of the edge worker serving a camera group."""
    return f"edge-{group}"


def edge_password_var(group: str) -> str:
    """The environment variable holding an edge group's password (``MQTT_EDGE_<GROUP>_PASSWORD``)."""
    return f"MQTT_EDGE_{group.upper().replace('-', '_')}_PASSWORD"


def camera_groups(cfg: SiteConfig) -> dict[str, list[str]]:
    """Camera ids by group, in the order they appear in the site file."""
    groups: dict[str, list[str]] = {}
    for cam in cfg.cameras:
        groups.setdefault(cam.group, []).append(cam.id)
    return groups


def user_vars(cfg: SiteConfig) -> dict[str, str]:
    """Every MQTT user of the site and the variable holding its password."""
    users = {SERVER_USER: SERVER_PASSWORD_VAR}
    for group in camera_groups(cfg):
        users[edge_user(group)] = edge_password_var(group)
    if len(set(users.values())) != len(users):
        # "a-b" and "a_b" map to the same variable; refusing beats silently sharing a password.
        raise BrokerAuthError("two camera groups map to the same password variable; rename one")
    return users


def render_acl(cfg: SiteConfig, source: str = "the site config") -> str:
    """The Mosquitto ACL file text (no secrets)."""
    prefix, site = cfg.mqtt_prefix, cfg.site.id
    lines = [
        f"# Generated for {source}; regenerate with `citywatch broker auth` when cameras change.",
        "# Anything not granted here is denied; there are no anonymous clients.",
        "# The server reads everything of its sites, publishes alerts and confirms stored messages to",
        "# the edges; $SYS/broker/uptime is what the compose health check reads.",
        f"user {SERVER_USER}",
        f"topic read {prefix}/v{MAJOR}/#",
        f"topic write {prefix}/alerts/#",
        f"topic write {prefix}/acks/#",
        "topic read $SYS/broker/uptime",
        "# Fleet (contract/fleet.py): the server alone pushes configs and reads the edges' announcements.",
        f"topic write {prefix}/config/#",
        f"topic read {prefix}/edges/#",
        "",
        "# Each edge publishes only under its own cameras' topics (the retained status last will too)",
        "# and reads only its own cameras' delivery confirmations.",
    ]
    for group, cameras in camera_groups(cfg).items():
        lines.append(f"user {edge_user(group)}")
        lines.extend(f"topic write {prefix}/v{MAJOR}/{site}/{cam}/#" for cam in cameras)
        lines.extend(f"topic read {prefix}/acks/v{MAJOR}/{site}/{cam}" for cam in cameras)
        # Its own group's pushed config (read only) and its own announcement (write only).
        lines.append(f"topic read {prefix}/config/v{MAJOR}/{site}/{group}")
        lines.append(f"topic write {prefix}/edges/v{MAJOR}/{site}/{group}")
        lines.append("")
    return "\n".join(lines)


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """Hash a password the way ``mosquitto_passwd`` does (``$7$...``)."""
    if iterations < 1:
        raise BrokerAuthError("iterations must be at least 1")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"${_HASH_ID}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Check a password against a ``$7$`` hash (also one written by ``mosquitto_passwd``)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != _HASH_ID:
        raise BrokerAuthError("not a Mosquitto $7$ (PBKDF2-SHA512) hash")
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError as exc:
        raise BrokerAuthError("malformed Mosquitto hash") from exc
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def render_passwd(passwords: Mapping[str, str], *, iterations: int = DEFAULT_ITERATIONS) -> str:
    """The password file text: one ``user:hash`` line per user."""
    for user in passwords:
        if not user or ":" in user or any(c.isspace() for c in user):
            raise BrokerAuthError(f"invalid MQTT user name {user!r}")
    return "".join(f"{user}:{hash_password(pw, iterations=iterations)}\n" for user, pw in passwords.items())


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a dotenv file (comments, ``export`` and simple quotes understood)."""
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _append_env(path: Path, new: Mapping[str, str]) -> None:
    """Append variables to the env file, creating it owner-only and tightening an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    needs_newline = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        os.chmod(path, 0o600)
        if needs_newline:
            fh.write("\n")
        fh.write("# MQTT passwords generated by `citywatch broker auth`\n")
        fh.writelines(f"{key}={value}\n" for key, value in new.items())


@dataclass(frozen=True, slots=True)
class Passwords:
    """Each user's password, and which variables were newly generated into the env file."""

    by_user: dict[str, str]
    generated: list[str]

    def __repr__(self) -> str:  # keeps passwords out of tracebacks and debug logs
        return f"Passwords(users={sorted(self.by_user)}, generated={self.generated})"


def resolve_passwords(cfg: SiteConfig, env_file: Path, environ: Mapping[str, str] | None = None) -> Passwords:
    """Take each password from the environment, else the env file, else generate and append it.

    The environment wins over the file, as it does for ``docker compose``.
    """
    environ = os.environ if environ is None else environ
    from_file = read_env_file(env_file)
    by_user: dict[str, str] = {}
    new: dict[str, str] = {}
    for user, var in user_vars(cfg).items():
        value = environ.get(var) or from_file.get(var)
        if not value:
            value = secrets.token_urlsafe(32)
            new[var] = value
        by_user[user] = value
    if new:
        _append_env(env_file, new)
        log.info("generated %d MQTT password(s) into %s: %s", len(new), env_file, ", ".join(new))
    return Passwords(by_user, list(new))


def _write(path: Path, text: str, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Write via a temporary file and rename, so the broker never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    if owner is not None:
        try:
            os.chown(tmp, *owner)
        except PermissionError as exc:
            tmp.unlink(missing_ok=True)
            raise BrokerAuthError(
                f"cannot give {path} to uid:gid {owner[0]}:{owner[1]} (needs root)"
            ) from exc
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class AuthFiles:
    acl: Path
    passwd: Path
    users: list[str]
    generated: list[str]


def write_auth_files(
    cfg: SiteConfig,
    out: Path,
    env_file: Path,
    *,
    source: str = "the site config",
    environ: Mapping[str, str] | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    owner: tuple[int, int] | None = None,
) -> AuthFiles:
    """Write ``acl`` and ``passwd`` into ``out`` (passwords resolved by :func:`resolve_passwords`).

    ``passwd`` is owner-only; ``owner`` (uid, gid) hands it to the broker's user, which a broker started
    as root switches to before reading it (1883:1883 in the eclipse-mosquitto image).
    """
    passwords = resolve_passwords(cfg, env_file, environ)
    out.mkdir(parents=True, exist_ok=True)
    acl, passwd = out / "acl", out / "passwd"
    _write(acl, render_acl(cfg, source), 0o644)
    _write(passwd, render_passwd(passwords.by_user, iterations=iterations), 0o600, owner)
    log.info("wrote %s and %s for %d MQTT user(s)", acl, passwd, len(passwords.by_user))
    return AuthFiles(acl, passwd, list(passwords.by_user), passwords.generated)
