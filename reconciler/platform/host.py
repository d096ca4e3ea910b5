"""Settings of the host an apply runs on: where PostgreSQL, Docker, Caddy, the state, the keys and the
backups are. Every setting is read here, from an ODOOOPS_* variable, else the host file (host.yaml), else
its default; `odooops host show` prints each one with where it came from."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from reconciler.core.host_config import HostFile, parse_host_config
from reconciler.core.resources import data_dir
from reconciler.errors import OdooOpsError

HOST_CONFIG_ENV = "ODOOOPS_HOST_CONFIG"
DEFAULT_HOST_CONFIG = Path("/etc/odooops/host.yaml")
PASSWORD_ENV = "ODOOOPS_PG_PASSWORD"  # inline, for the embedded services and CI; host.yaml only names a file
REDACTED = "[redacted]"
REFERENCE = "docs/configuration.md#host-configuration-file"


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Setting:
    """One host setting: its key in host.yaml (dotted), its variable, how a variable's text is read, its
    default (a value, REQUIRED, or a function of the other settings) and an example for error messages."""

    key: str
    variable: str
    kind: str  # text | port | count | seconds | path | pairs | json | flag | secret
    default: Any = None
    example: str = ""
    in_file: bool = True  # False: the file names a file holding it (postgres.password -> password_file)


@dataclass(frozen=True)
class Resolved:
    """A setting's effective value and where it came from: "variable NAME", "PATH:LINE" or "default"."""

    setting: Setting
    value: Any
    origin: str

    @property
    def source(self) -> str:
        """variable, file, default, missing (required, found nowhere) or error (found but unreadable)."""
        if self.origin.startswith(("variable", "default", "error")):
            word = self.origin.split(" ")[0]
            return "missing" if word == "default" and self.value is None and self.setting.default is REQUIRED \
                else word
        return "file"

    def shown(self) -> Any:
        """The value as `odooops host show` prints it: secrets redacted, paths as text."""
        if self.setting.kind == "secret":
            return None if self.value is None else REDACTED
        if isinstance(self.value, Path):
            return str(self.value)
        if isinstance(self.value, Mapping):
            return _redact(dict(self.value))
        if isinstance(self.value, float) and self.value.is_integer():
            return int(self.value)
        return self.value


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if any(w in k.lower() for w in ("secret", "password", "token", "key_id")) else _redact(v)
                for k, v in value.items()}
    return value


def _config_home(r: _Resolver) -> Path:
    base = r.env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "odooops"


def _state_home(r: _Resolver) -> Path:
    base = r.env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "odooops"


def _find_pg_bin() -> Path | None:
    """Debian's newest versioned client directory, if any (pg_dump must not be older than the server)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), key=lambda p: int(p.parts[-3])
                   if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else None


def _mail_catcher_host(r: _Resolver) -> str:
    # Containers reach the catcher where they reach PostgreSQL, when that address is configured.
    own = r.get("postgres.host_from_containers")
    return str(own.value) if own.origin != "default" else "127.0.0.1"


SETTINGS: tuple[Setting, ...] = (
    Setting("state_dir", "ODOOOPS_STATE_DIR", "path", _state_home, "/var/lib/odooops"),
    Setting("postgres.host", "ODOOOPS_PG_HOST", "text", REQUIRED, "127.0.0.1"),
    Setting("postgres.port", "ODOOOPS_PG_PORT", "port", REQUIRED, "5432"),
    Setting("postgres.admin_user", "ODOOOPS_PG_USER", "text", REQUIRED, "odooops"),
    Setting("postgres.password_file", "ODOOOPS_PG_PASSWORD_FILE", "path", None, "/etc/odooops/pg.password"),
    Setting("postgres.password", PASSWORD_ENV, "secret", REQUIRED, "/etc/odooops/pg.password", in_file=False),
    Setting("postgres.host_from_containers", "ODOOOPS_PG_HOST_FROM_CONTAINERS", "text",
            lambda r: r.get("postgres.host").value, "172.17.0.1"),
    Setting("postgres.bin_dir", "ODOOOPS_PG_BIN", "path", lambda r: _find_pg_bin(), "/usr/lib/postgresql/15/bin"),
    Setting("docker.host", "DOCKER_HOST", "text", REQUIRED, "unix:///run/docker.sock"),
    Setting("router.caddy_admin", "ODOOOPS_CADDY_ADMIN", "text", REQUIRED, "http://127.0.0.1:2019"),
    Setting("router.http", "ODOOOPS_ROUTER_HTTP", "text", REQUIRED, "http://127.0.0.1:80"),
    Setting("router.caddy_server", "ODOOOPS_CADDY_SERVER", "text", "odooops", "odooops"),
    Setting("base_domain", "ODOOOPS_BASE_DOMAIN", "text", "odooops.localhost", "odoo.example.com"),
    Setting("backups.store", "ODOOOPS_BACKUP_STORE", "json", None, '{"local": "/srv/odooops/backups"}'),
    Setting("backups.refuse_unencrypted", "ODOOOPS_BACKUP_REFUSE_UNENCRYPTED", "flag", False, "true"),
    Setting("keys.audit", "ODOOOPS_AUDIT_KEY_FILE", "path", lambda r: _config_home(r) / "audit.key",
            "/etc/odooops/audit.key"),
    Setting("keys.backup", "ODOOOPS_BACKUP_KEY_FILE", "path", lambda r: _config_home(r) / "backup.key",
            "/etc/odooops/backup.key"),
    Setting("keys.secrets", "ODOOOPS_SECRET_KEY_FILE", "path", lambda r: _config_home(r) / "secret.key",
            "/etc/odooops/secret.key"),
    Setting("keys.api", "ODOOOPS_API_KEY_FILE", "path", lambda r: _config_home(r) / "api.key",
            "/etc/odooops/api.key"),
    Setting("mail_catcher.host", "ODOOOPS_MAIL_CATCHER_HOST", "text", _mail_catcher_host, "172.17.0.1"),
    Setting("mail_catcher.port", "ODOOOPS_MAIL_CATCHER_PORT", "port", 1025, "1025"),
    Setting("terraform.binary", "ODOOOPS_TERRAFORM", "text", None, "tofu"),
    Setting("terraform.backend", "ODOOOPS_TF_BACKEND", "json", None, '{"s3": {"bucket": "tf-state"}}'),
    Setting("images.overrides", "ODOOOPS_IMAGE_OVERRIDES", "pairs", {}, "odoo:19.0=registry.example/odoo:19.0"),
    Setting("images.cache_dir", "ODOOOPS_IMAGE_CACHE", "path", Path("/var/cache/odooops"), "/var/cache/odooops"),
    Setting("git_mirrors", "ODOOOPS_GIT_MIRRORS", "pairs", {}, "https://github.com/OCA/=file:///srv/mirrors/oca/"),
    Setting("limits.scratch_max_age_s", "ODOOOPS_SCRATCH_MAX_AGE_S", "seconds", 6 * 3600.0, "21600"),
    Setting("limits.production_copy_max_age_s", "ODOOOPS_PRODUCTION_COPY_MAX_AGE_S", "seconds", 24 * 3600.0,
            "86400"),
    Setting("limits.snapshot_max_age_s", "ODOOOPS_SNAPSHOT_MAX_AGE_S", "seconds", 24 * 3600.0, "86400"),
    Setting("limits.template_cap_bytes", "ODOOOPS_TEMPLATE_CAP_BYTES", "count", 10 * 1024**3, "10737418240"),
    Setting("limits.template_cap_count", "ODOOOPS_TEMPLATE_CAP_COUNT", "count", 5, "5"),
    Setting("limits.max_concurrent_per_project", "ODOOOPS_MAX_CONCURRENT_PER_PROJECT", "count", 0, "4"),
)
BY_KEY = {s.key: s for s in SETTINGS}
BY_VARIABLE = {s.variable: s for s in SETTINGS}


def host_config_path(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The host file and whether it was named (--host-config sets ODOOOPS_HOST_CONFIG): a named file must
    exist; the default one (/etc/odooops/host.yaml) may not, and the variables and defaults then stand alone."""
    raw = (os.environ if env is None else env).get(HOST_CONFIG_ENV, "").strip()
    return (Path(raw), True) if raw else (DEFAULT_HOST_CONFIG, False)


def load_host_file(env: Mapping[str, str] | None = None) -> HostFile | None:
    path, named = host_config_path(env)
    try:
        stat = path.stat()
    except FileNotFoundError:
        if not named:
            return None
        raise OdooOpsError("HOST_CONFIG_NOT_FOUND", f"the host file {path} (named by --host-config or "
                           f"{HOST_CONFIG_ENV}) does not exist",
                           f"create it (reference: {REFERENCE}), or name the right file with --host-config / "
                           f"{HOST_CONFIG_ENV}", {"file": str(path)}) from None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return _parse(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _parse(path: str, _mtime_ns: int, _size: int) -> HostFile:
    """Parsed once per version of the file: the limits are read at each use, the schema check costs ~1 ms."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise _unreadable(Path(path), exc) from None
    return parse_host_config(text, path)


def _unreadable(path: Path, exc: OSError) -> OdooOpsError:
    return OdooOpsError("HOST_CONFIG_UNREADABLE", f"the host file {path} cannot be read: {exc.strerror}",
                        f"let the user OdooOps runs as read {path} (chmod 640, group of that user)",
                        {"file": str(path)})


class _Resolver:
    """Each setting resolved once, on demand: variable > host file > default (a default may use others)."""

    def __init__(self, env: Mapping[str, str], file: HostFile | None) -> None:
        self.env, self.file = env, file
        self._done: dict[str, Resolved] = {}

    def get(self, key: str) -> Resolved:
        if key not in self._done:
            self._done[key] = self._resolve(BY_KEY[key])
        return self._done[key]

    def _resolve(self, s: Setting) -> Resolved:
        raw = self.env.get(s.variable, "")
        if raw.strip():  # a password is taken as it is; other values without surrounding blanks
            return Resolved(s, _from_text(s, raw if s.kind == "secret" else raw.strip()), f"variable {s.variable}")
        if s.kind == "secret":  # the file names a file that holds it
            holder = self.get(s.key + "_file")
            if holder.value is None:
                return Resolved(s, None, "default")
            return Resolved(s, _read_secret(Path(holder.value), holder),
                            f"{holder.value} (named by {holder.setting.key}, {holder.origin})")
        found = self.file.get(s.key) if s.in_file and self.file is not None else None
        if found is not None and self.file is not None:
            return Resolved(s, _from_file(s, found[0]), f"{self.file.name}:{found[1]}")
        default = s.default
        value = None if default is REQUIRED else default(self) if callable(default) else default
        return Resolved(s, dict(value) if isinstance(value, dict) else value, "default")


def _read_secret(path: Path, holder: Resolved) -> str:
    where = f"{holder.setting.key} ({holder.origin})"
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise OdooOpsError("HOST_SECRET_FILE_UNREADABLE", f"{path}, named by {where}, cannot be read: {exc.strerror}",
                           f"create {path} with the password on one line (chmod 600, owned by the user OdooOps "
                           "runs as), or correct the path", {"file": str(path), "setting": holder.setting.key}
                           ) from None
    if mode & 0o007:
        raise OdooOpsError("HOST_SECRET_FILE_UNREADABLE", f"{path}, named by {where}, is readable by every user",
                           f"chmod 600 {path}", {"file": str(path), "setting": holder.setting.key})
    if not value:
        raise OdooOpsError("HOST_SECRET_FILE_UNREADABLE", f"{path}, named by {where}, is empty",
                           f"write the password on one line into {path}", {"file": str(path),
                                                                            "setting": holder.setting.key})
    return value


def _from_text(s: Setting, raw: str) -> Any:
    """A variable's text as the setting's value; HOST_NOT_CONFIGURED names the variable when it is malformed."""
    if s.kind in ("text", "secret"):
        return raw
    if s.kind == "path":
        return Path(raw)
    if s.kind == "flag":
        return raw.lower() in ("1", "true", "yes", "on")
    if s.kind == "pairs":
        return _pairs(s.variable, raw, s.example)
    if s.kind == "json":
        return _json_object(s.variable, raw)
    try:
        value = float(raw) if s.kind == "seconds" else int(raw)
    except ValueError:
        value = -1
    low = 1 if s.kind == "port" else 0
    if value < low or (s.kind == "port" and value > 65535):
        what = {"port": "a port number", "count": "a non-negative integer"}.get(s.kind, "a number of seconds")
        raise OdooOpsError("HOST_NOT_CONFIGURED", f"{s.variable}={raw!r} is not {what}",
                           f"set {s.variable} to e.g. {s.example} or unset it", {"variable": s.variable})
    return value


def _from_file(s: Setting, value: Any) -> Any:
    """A host file's value (already checked against schemas/host.schema.json) as the setting's value."""
    if s.kind == "path":
        return Path(value)
    if s.kind == "seconds":
        return float(value)
    if s.kind in ("pairs", "json"):
        return dict(value)
    return value


def _pairs(key: str, raw: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, raw.split(",")):
        src, _, dst = item.partition("=")
        if not dst:
            raise OdooOpsError("HOST_NOT_CONFIGURED", f"{key} item {item!r} has no '='", f"write it as {example}")
        out[src.strip()] = dst.strip()
    return out


def _json_object(key: str, raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise OdooOpsError("HOST_NOT_CONFIGURED", f"{key} is not valid JSON: {exc}",
                           f'set {key} to JSON such as {{"s3": {{"bucket": "tf-state", "region": "eu-west-1"}}}}'
                           ) from exc
    if not isinstance(value, dict):
        raise OdooOpsError("HOST_NOT_CONFIGURED", f"{key} must be a JSON object", f"set {key} to a JSON object")
    return value


def resolve_host(env: Mapping[str, str] | None = None, *, lenient: bool = False
                 ) -> tuple[Path, HostFile | None, list[Resolved]]:
    """Every setting with its value and origin; missing required ones have None. lenient=True (`odooops host
    show`): a setting that cannot be read (a malformed variable, a missing password file) gets the error as
    its origin instead of stopping the others."""
    env = os.environ if env is None else env
    file = load_host_file(env)
    resolver = _Resolver(env, file)
    out = []
    for s in SETTINGS:
        try:
            out.append(resolver.get(s.key))
        except OdooOpsError as exc:
            if not lenient:
                raise
            out.append(Resolved(s, None, f"error {exc.code}: {exc.message}"))
    return host_config_path(env)[0], file, out


def host_setting(key: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting's effective value (variable > host file > default), for code that holds no HostSettings."""
    env = os.environ if env is None else env
    return _Resolver(env, load_host_file(env)).get(key).value


def _file_key(s: Setting) -> str:
    return s.key if s.in_file else s.key + "_file"


def _variables(s: Setting) -> str:
    return s.variable if s.in_file else f"{BY_KEY[s.key + '_file'].variable} or {s.variable}"


def _named(s: Setting) -> str:
    where = "" if s.in_file else f"host file key {_file_key(s)}, "
    return f"{s.key} ({where}variable {_variables(s)})"


def missing_settings_error(missing: list[Setting], path: Path) -> OdooOpsError:
    """HOST_NOT_CONFIGURED naming each missing setting, its host file key and its variable, with the smallest
    host.yaml that supplies them."""
    sections: dict[str, list[str]] = {}
    for s in missing:
        section, _, leaf = _file_key(s).rpartition(".")
        sections.setdefault(section, []).append(f"{leaf}: {s.example}")
    snippet = "\n".join(f"{section}:\n" + "\n".join(f"  {line}" for line in lines) if section else "\n".join(lines)
                        for section, lines in sections.items())
    names = ", ".join(_named(s) for s in missing)
    indented = "\n".join(f"      {line}" for line in snippet.splitlines())
    return OdooOpsError(
        "HOST_NOT_CONFIGURED", f"required host settings are not set: {names}",
        f"add them to the host file {path} (or the file --host-config / {HOST_CONFIG_ENV} names), e.g.:\n"
        f"{indented}\n    or set the variables; every setting: {REFERENCE}",
        {"missing": [{"setting": s.key, "file_key": _file_key(s), "variable": _variables(s)} for s in missing],
         "host_file": str(path), "snippet": snippet + "\n"})


@dataclass(frozen=True)
class HostSettings:
    """What an apply needs of the host, resolved once (`from_env`); the settings table above says where each
    field comes from."""

    state_dir: Path
    pg_host: str
    pg_port: int
    pg_admin_user: str
    pg_admin_password: str = field(repr=False)
    pg_host_from_containers: str
    docker_host: str
    caddy_admin: str
    router_http: str
    base_domain: str = "odooops.localhost"
    caddy_server: str = "odooops"
    terraform_binary: str | None = None
    # "odoo:19.0=other:tag,..."; only what the operator configures: the product never swaps images itself.
    image_overrides: Mapping[str, str] = field(default_factory=dict)
    git_mirrors: Mapping[str, str] = field(default_factory=dict)  # url prefix -> replacement
    # Terraform backend per environment, e.g. {"s3": {"bucket": ..., "region": ..., "endpoints": ...}};
    # None keeps local state under the state directory. Credentials come from AWS_* variables.
    tf_backend: Mapping[str, Any] | None = None
    mail_catcher_host: str = "127.0.0.1"
    mail_catcher_port: int = 1025
    # Directory with pg_dump/pg_restore/psql (Debian keeps them out of PATH); None = search.
    pg_bin_dir: Path | None = None
    # Where backups go: {"local": "/path"} (default <state>/backups) or
    # {"s3": {"bucket": ..., "prefix": ..., "endpoint_url": ..., "region": ...}} with the keys
    # from the encrypted secret store (project scope, names s3_access_key_id / s3_secret_access_key).
    backup_store: Mapping[str, Any] | None = None

    @classmethod
    def from_env(cls, state_dir: Path | None = None, env: Mapping[str, str] | None = None) -> HostSettings:
        """The host's settings (variable > host file > default); `state_dir` (e.g. --state-dir) wins over
        both. HOST_NOT_CONFIGURED names every required setting that is missing."""
        path, _, resolved = resolve_host(env)
        values = {r.setting.key: r.value for r in resolved}
        missing = [r.setting for r in resolved if r.source == "missing"]
        if missing:
            raise missing_settings_error(missing, path)
        return cls(
            state_dir=state_dir or values["state_dir"], pg_host=values["postgres.host"],
            pg_port=values["postgres.port"], pg_admin_user=values["postgres.admin_user"],
            pg_admin_password=values["postgres.password"],
            pg_host_from_containers=values["postgres.host_from_containers"], docker_host=values["docker.host"],
            caddy_admin=values["router.caddy_admin"], router_http=values["router.http"],
            base_domain=values["base_domain"], caddy_server=values["router.caddy_server"],
            terraform_binary=values["terraform.binary"], image_overrides=values["images.overrides"],
            git_mirrors=values["git_mirrors"], tf_backend=values["terraform.backend"],
            mail_catcher_host=values["mail_catcher.host"], mail_catcher_port=values["mail_catcher.port"],
            pg_bin_dir=values["postgres.bin_dir"], backup_store=values["backups.store"],
        )

    @property
    def filestore_root(self) -> Path:
        return self.state_dir / "filestore"

    def filestore_dir(self, env: str, db: str | None = None) -> Path:
        """Odoo's filestore of database `db` (default: the environment's own) as mounted for `env`."""
        return self.filestore_root / env / "filestore" / (db or env)

    def pg_tool(self, name: str) -> str:
        """Path of a PostgreSQL client tool (pg_dump, pg_restore, psql)."""
        if self.pg_bin_dir is not None and (self.pg_bin_dir / name).exists():
            return str(self.pg_bin_dir / name)
        found = shutil.which(name)
        if found is None:
            raise OdooOpsError("PG_TOOL_MISSING", f"{name} is not installed on this host",
                               "apt-get install postgresql-client-15, or set postgres.bin_dir in the host file (or "
                               "ODOOOPS_PG_BIN) to its directory")
        return found

    def env_dir(self, env: str) -> Path:
        return self.state_dir / "envs" / env

    def platform_values(self, env: str, artifact_id: str, artifact_path: Path, filestore_owner: str,
                        project_id: str = "", db_login: str | None = None) -> dict[str, str]:
        """What the `@@platform:NAME@@` markers of an environment's artifacts stand for on this host."""
        return {
            "project_id": project_id, "db_login": db_login or env,
            "db_host": self.pg_host, "db_port": str(self.pg_port), "db_admin_user": self.pg_admin_user,
            "db_host_from_containers": self.pg_host_from_containers,
            "filestore_root": str(self.filestore_root), "filestore_owner": filestore_owner,
            "tf_module_local": str(data_dir("infra") / "terraform" / "modules" / "local"),
            "artifact_id": artifact_id, "artifact_path": str(artifact_path),
            "env_config_dir": str(self.env_dir(env)),
            "mail_catcher_host": self.mail_catcher_host, "mail_catcher_port": str(self.mail_catcher_port),
            "upstream": "127.0.0.1:0",
        }
