"""Ansible executor: prepare the host (directories, Docker, PostgreSQL roles, Caddy) with ansible-runner."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.resources import data_dir
from reconciler.errors import OdooOpsError

PLAYBOOK = "site.yml"
# Keys prepare_host accepts; each becomes the extravar odooops_<key>. pg_password is the only
# secret and never becomes a variable: it goes into a private pgpass file outside the runner dir.
KNOWN_VARS = frozenset({
    "state_dir", "state_dir_mode", "filestore_root", "filestore_root_mode", "caddy_config_dir",
    "caddy_config_dir_mode", "docker_socket", "pg_host", "pg_port", "pg_user", "pg_database",
    "pg_password", "pg_group_role", "psql", "caddy_admin_url", "caddy_server", "caddy_listen",
    "caddy_catchall_id",
})
# Environment kept in the runner's artifacts/<id>/command record; everything else is scrubbed
# (ansible-runner copies this process's whole environment there, secrets included).
_KEEP_ENV_PREFIXES = ("ANSIBLE_", "PATH", "LANG", "LC_", "HOME", "PYTHON")


def playbook_dir() -> Path:
    return data_dir("infra") / "ansible"


@dataclass(frozen=True)
class HostPrepResult:
    changed: int
    ok: int
    failed: int
    duration_s: float


def prepare_host(vars: Mapping[str, Any], private_data_dir: Path,
                 on_event: Callable[[dict], None] | None = None) -> HostPrepResult:
    """Run infra/ansible/site.yml against localhost; raise OdooOpsError(ANSIBLE_FAILED) naming the
    failed task. `on_event` receives {"event", "task", "host", "changed", "failed", "msg"} dicts."""
    import ansible_runner  # here: importing it pulls in a lot and only this call needs it

    unknown = set(vars) - KNOWN_VARS
    if unknown:
        raise OdooOpsError("ANSIBLE_FAILED", f"unknown host variables: {', '.join(sorted(unknown))}",
                           f"use only: {', '.join(sorted(KNOWN_VARS))}", {"unknown": sorted(unknown)})
    pdd = Path(private_data_dir).resolve()
    pdd.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.rmtree(pdd / "env", ignore_errors=True)  # stale env/ files would be read again
    extravars = {f"odooops_{k}": v for k, v in vars.items() if k != "pg_password"}
    failures: list[dict] = []
    secret_dir = Path(tempfile.mkdtemp(prefix="odooops-ansible-"))
    start = time.monotonic()
    try:
        extravars["odooops_pg_passfile"] = str(_pgpass(secret_dir, vars))

        def handle(event: dict) -> bool:
            data = event.get("event_data") or {}
            res = data.get("res") or {}
            info = {"event": event.get("event"), "task": data.get("task"), "host": data.get("host"),
                    "changed": bool(res.get("changed")), "failed": event.get("event") == "runner_on_failed",
                    "msg": str(res.get("msg") or "")}
            if info["failed"] and not data.get("ignore_errors"):
                failures.append(info)
            if on_event is not None and info["event"] in {"playbook_on_task_start", "runner_on_ok",
                                                           "runner_on_failed", "runner_on_skipped",
                                                           "runner_on_unreachable"}:
                with contextlib.suppress(Exception):  # progress is best effort
                    on_event(info)
            return True

        bin_dir = str(Path(sys.executable).parent)  # ansible-runner looks up ansible-playbook on PATH
        run = ansible_runner.run(
            private_data_dir=str(pdd), project_dir=str(playbook_dir()), playbook=PLAYBOOK,
            inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                       "ansible_python_interpreter": sys.executable}}}},
            extravars=extravars, suppress_env_files=True, quiet=True, rotate_artifacts=5,
            event_handler=handle,
            envvars={"PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "/usr/bin:/bin")]),
                     "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False",
                     "ANSIBLE_LOCAL_TEMP": str(pdd / "tmp"), "ANSIBLE_HOME": str(pdd / "ansible-home"),
                     "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_RETRY_FILES_ENABLED": "False"},
        )
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
        shutil.rmtree(pdd / "env", ignore_errors=True)
        _scrub_artifacts(pdd / "artifacts")
    duration = round(time.monotonic() - start, 3)
    stats = run.stats or {}

    def total(key: str) -> int:
        return sum((stats.get(key) or {}).values())

    if run.rc != 0 or failures or total("failures") or total("dark"):
        first = failures[0] if failures else {"task": None, "msg": ""}
        task = first["task"] or "(before any task ran)"
        msg = first["msg"] or _stdout_tail(run)
        raise OdooOpsError(
            "ANSIBLE_FAILED", f"host preparation failed at task '{task}': {msg}",
            "fix the cause named above, then re-run: the playbook is idempotent "
            f"(artifacts: {pdd / 'artifacts'})",
            {"task": task, "status": run.status, "rc": run.rc, "duration_s": duration})
    return HostPrepResult(changed=total("changed"), ok=total("ok"), failed=total("failures"), duration_s=duration)


def _pgpass(secret_dir: Path, vars: Mapping[str, Any]) -> Path:
    """A 0600 pgpass file for the admin connection (empty without a password: libpq then tries
    other methods), in a private temp dir that is removed after the run."""
    path = secret_dir / "pgpass"
    line = ""
    if vars.get("pg_password"):
        def esc(value: Any) -> str:
            return str(value).replace("\\", "\\\\").replace(":", "\\:")

        line = ":".join(esc(v) for v in (vars.get("pg_host", "*"), vars.get("pg_port", "*"), "*",
                                           vars.get("pg_user", "*"), vars["pg_password"])) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(line)
    return path


def _scrub_artifacts(artifacts: Path) -> None:
    """ansible-runner writes this process's full environment into artifacts/<id>/command."""
    for command in artifacts.glob("*/command"):
        try:
            data = json.loads(command.read_text())
        except (OSError, ValueError):
            command.unlink(missing_ok=True)
            continue
        data["env"] = {k: v for k, v in (data.get("env") or {}).items() if k.startswith(_KEEP_ENV_PREFIXES)}
        command.write_text(json.dumps(data))


def _stdout_tail(run: Any) -> str:
    try:
        return "\n".join(run.stdout.read().splitlines()[-5:])
    except (OSError, AttributeError):
        return f"ansible-playbook ended with status {run.status} (rc {run.rc})"
