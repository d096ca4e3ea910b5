"""The systemd unit of `odooops serve`: the shipped template filled in for this host, and how it is installed."""

from __future__ import annotations

import grp
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.resources import read_text

UNIT_NAME = "odooops.service"
TEMPLATE = "systemd/odooops.service"  # under infra/
STOP_MARGIN_S = 60  # TimeoutStopSec beyond serve's --stop-grace: the parking, the HTTP shutdown, the exit

# What a user's systemd (--user) cannot apply without privileges: dropped from a user unit rather than
# left to fail its start.
SYSTEM_ONLY = frozenset({
    "User", "Group", "AmbientCapabilities", "CapabilityBoundingSet", "ProtectSystem", "ReadWritePaths",
    "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname", "RestrictNamespaces",
})


STATE_KEY = "state_dir"
# Host file key -> the key file's name in --key-dir when the host file does not place it.
KEY_SETTINGS = {"keys.api": "api.key", "keys.audit": "audit.key", "keys.secrets": "secret.key",
                "keys.backup": "backup.key"}
_KEY_VARIABLES = {"keys.api": "ODOOOPS_API_KEY_FILE", "keys.audit": "ODOOOPS_AUDIT_KEY_FILE",
                  "keys.secrets": "ODOOOPS_SECRET_KEY_FILE", "keys.backup": "ODOOOPS_BACKUP_KEY_FILE"}


@dataclass(frozen=True)
class UnitSettings:
    """What the unit says about this host: the program and its arguments, where it keeps things, who runs it."""

    command: tuple[str, ...]  # the executable and `serve ...`
    state_dir: Path
    key_dir: Path
    config_dir: Path
    host_config: Path | None = None
    user: str = "odooops"
    user_mode: bool = False
    log_format: str = "text"
    stop_grace_s: float = 90.0
    key_files: dict[str, Path] | None = None  # host file key -> path, for the keys the host file leaves open
    writable: tuple[str, ...] = ()  # the key files' directories (besides the state directory)
    state_in_file: bool = False  # the host file sets the state directory: no variable to override it
    project: str | None = None  # one unit per project of the host (docs/projects.md): odooops-<project>.service

    @property
    def unit_name(self) -> str:
        return UNIT_NAME if self.project is None else f"odooops-{self.project}.service"


def quote(arg: str) -> str:
    """One ExecStart= word: `%` and `$` are systemd's specifiers and variables, quotes and backslashes escaped."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not re.search(r'[\s"\'\\;]', text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _under_home(path: str | Path | None) -> bool:
    return path is not None and Path(path).parts[1:2] in (("home",), ("root",), ("run",))


def render_unit(s: UnitSettings) -> str:
    values = {
        "USER": s.user, "GROUP": s.user, "STATE_DIR": str(s.state_dir), "KEY_DIR": str(s.key_dir),
        "CONFIG_DIR": str(s.config_dir), "LOG_FORMAT": s.log_format,
        "EXEC_START": " ".join(quote(a) for a in s.command),
        "TIMEOUT_STOP": f"{int(s.stop_grace_s) + STOP_MARGIN_S}s",
        "WANTED_BY": "default.target" if s.user_mode else "multi-user.target",
        "HOST_CONFIG": quote(str(s.host_config)) if s.host_config else "",
        # An installation (or host file) under a home directory must stay readable to the service.
        "PROTECT_HOME": "read-only" if any(_under_home(p) for p in (s.command[0], s.host_config)) else "yes",
        # A project's unit also reads its own file (ODOOOPS_REPO with a password, ...) after the host's.
        "PROJECT_ENV_FILE": f"odooops-{s.project}.env" if s.project else "",
        "DESCRIPTION_PROJECT": f", project {s.project}" if s.project else "",
    }
    keys = s.key_files if s.key_files is not None else {k: s.key_dir / n for k, n in KEY_SETTINGS.items()}
    values["KEY_ENVIRONMENT"] = "\n".join(f"Environment={_KEY_VARIABLES[k]}={p}" for k, p in sorted(keys.items()))
    values["WRITABLE"] = " ".join(dict.fromkeys([str(s.state_dir), *(s.writable or [str(s.key_dir)])]))
    lines = []
    for line in read_text("infra", TEMPLATE).splitlines():
        key = line.split("=", 1)[0]
        if (s.user_mode and key in SYSTEM_ONLY) or (s.host_config is None and "@HOST_CONFIG@" in line) \
                or (s.state_in_file and line.startswith("Environment=ODOOOPS_STATE_DIR=")) \
                or (not keys and "@KEY_ENVIRONMENT@" in line) or (s.project is None and "@PROJECT_ENV_FILE@" in line):
            continue
        for name, value in values.items():
            line = line.replace(f"@{name}@", value)
        lines.append(line)
    return "\n".join(lines).rstrip("\n") + "\n"


def unit_path(user_mode: bool, config_home: Path, name: str = UNIT_NAME) -> Path:
    """Where systemd looks for an administrator's unit (or, with --user, the user's)."""
    return config_home / "systemd" / "user" / name if user_mode else Path("/etc/systemd/system") / name


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _in_group(user: str, group: str) -> bool | None:
    """True/False whether user is in group; None when the group does not exist."""
    try:
        members = grp.getgrnam(group).gr_mem
    except KeyError:
        return None
    return user in members


def prepare_commands(s: UnitSettings) -> list[list[str]]:
    """Before the unit is written: its user (a system account, home = state directory, no login; in the
    docker group when there is one) and its directories, owned by that user."""
    key_dirs = list(s.writable or (str(s.key_dir),))
    if s.user_mode:
        return [["mkdir", "-p", str(s.state_dir)], *(["mkdir", "-p", "-m", "0700", d] for d in key_dirs)]
    out = []
    if not _user_exists(s.user):
        out.append(["useradd", "--system", "--user-group", "--home-dir", str(s.state_dir), "--no-create-home",
                     "--shell", "/usr/sbin/nologin", s.user])
    if _in_group(s.user, "docker") is False:  # the engine's socket is root:docker 0660
        out.append(["usermod", "--append", "--groups", "docker", s.user])
    out += [["install", "-d", "-o", s.user, "-g", s.user, "-m", "0750", str(s.state_dir)],
            *(["install", "-d", "-o", s.user, "-g", s.user, "-m", "0700", d] for d in key_dirs)]
    return out


def activate_commands(s: UnitSettings, start: bool) -> list[list[str]]:
    """After the unit is written: systemd reads it and starts it at boot (and now, with start)."""
    systemctl = ["systemctl", "--user"] if s.user_mode else ["systemctl"]
    return [[*systemctl, "daemon-reload"], [*systemctl, "enable", *(["--now"] if start else []), s.unit_name]]
