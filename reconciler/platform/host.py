"""Settings of the host an apply runs on: where PostgreSQL, Docker, Caddy and the state live."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.resources import data_dir
from reconciler.errors import OdooOpsError


@dataclass(frozen=True)
class HostSettings:
    """Read from ODOOOPS_* environment variables (scripts/services.sh writes them to .work/services.env)."""

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
    def from_env(cls, state_dir: Path, env: Mapping[str, str] | None = None) -> HostSettings:
        env = os.environ if env is None else env
        missing = [k for k in ("ODOOOPS_PG_HOST", "ODOOOPS_PG_PORT", "ODOOOPS_PG_USER", "ODOOOPS_PG_PASSWORD",
                               "DOCKER_HOST", "ODOOOPS_CADDY_ADMIN", "ODOOOPS_ROUTER_HTTP") if not env.get(k)]
        if missing:
            raise OdooOpsError(
                "HOST_NOT_CONFIGURED", f"the host settings {', '.join(missing)} are not set",
                "start the embedded services and load their settings: bash scripts/services.sh start && "
                "set -a && . .work/services.env && set +a")
        overrides = _pairs(env, "ODOOOPS_IMAGE_OVERRIDES", "odoo:19.0=registry.example/odoo:19.0")
        mirrors = _pairs(env, "ODOOOPS_GIT_MIRRORS", "https://github.com/OCA/=file:///srv/mirrors/oca/")
        return cls(
            state_dir=state_dir, pg_host=env["ODOOOPS_PG_HOST"], pg_port=int(env["ODOOOPS_PG_PORT"]),
            pg_admin_user=env["ODOOOPS_PG_USER"], pg_admin_password=env["ODOOOPS_PG_PASSWORD"],
            pg_host_from_containers=env.get("ODOOOPS_PG_HOST_FROM_CONTAINERS") or env["ODOOOPS_PG_HOST"],
            docker_host=env["DOCKER_HOST"], caddy_admin=env["ODOOOPS_CADDY_ADMIN"],
            router_http=env["ODOOOPS_ROUTER_HTTP"], base_domain=env.get("ODOOOPS_BASE_DOMAIN", "odooops.localhost"),
            caddy_server=env.get("ODOOOPS_CADDY_SERVER", "odooops"),
            terraform_binary=env.get("ODOOOPS_TERRAFORM") or None, image_overrides=overrides,
            git_mirrors=mirrors, tf_backend=_json_setting(env, "ODOOOPS_TF_BACKEND"),
            mail_catcher_host=env.get("ODOOOPS_MAIL_CATCHER_HOST") or env.get("ODOOOPS_PG_HOST_FROM_CONTAINERS")
            or "127.0.0.1",
            mail_catcher_port=int(env.get("ODOOOPS_MAIL_CATCHER_PORT", "1025")),
            pg_bin_dir=Path(env["ODOOOPS_PG_BIN"]) if env.get("ODOOOPS_PG_BIN") else _find_pg_bin(),
            backup_store=_json_setting(env, "ODOOOPS_BACKUP_STORE"),
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
                               "apt-get install postgresql-client-15, or set ODOOOPS_PG_BIN to its directory")
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


def _find_pg_bin() -> Path | None:
    """Debian's newest versioned client directory, if any (pg_dump must not be older than the server)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), key=lambda p: int(p.parts[-3])
                   if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else None


def _pairs(env: Mapping[str, str], key: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, env.get(key, "").split(",")):
        src, _, dst = item.partition("=")
        if not dst:
            raise OdooOpsError("HOST_NOT_CONFIGURED", f"{key} item {item!r} has no '='", f"write it as {example}")
        out[src.strip()] = dst.strip()
    return out


def _json_setting(env: Mapping[str, str], key: str) -> dict[str, Any] | None:
    raw = env.get(key)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise OdooOpsError("HOST_NOT_CONFIGURED", f"{key} is not valid JSON: {exc}",
                           f'set {key} to JSON such as {{"s3": {{"bucket": "tf-state", "region": "eu-west-1"}}}}'
                           ) from exc
    if not isinstance(value, dict):
        raise OdooOpsError("HOST_NOT_CONFIGURED", f"{key} must be a JSON object", f"set {key} to a JSON object")
    return value
