"""What the REST API does to environments: read state and notes, scale/destroy through Git, exec, logs, secrets."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ruamel.yaml import YAML

from reconciler.controller.credentials import DB_PASSWORD
from reconciler.controller.plan_json import plan_json
from reconciler.controller.planning import compute_plan
from reconciler.core.naming import is_valid_env_name
from reconciler.core.production_exec import read_only_container
from reconciler.core.projects import project_secret_scope
from reconciler.data.backup import list_backups
from reconciler.data.backup_check import verify_backup
from reconciler.data.context import DataContext
from reconciler.errors import OdooOpsError
from reconciler.executors.runtimes import open_runtime
from reconciler.secrets import SecretStore
from reconciler.sources.branch_edits import branch_file, branch_tip, commit_file, move_branch
from reconciler.sources.notes import iter_notes
from reconciler.sources.remote import redact_url

if TYPE_CHECKING:
    from reconciler.controller.daemon import DaemonConfig
    from reconciler.controller.planning import Project
    from reconciler.platform.host import HostSettings

CONFIG_FILE = ".odooops.yaml"
MAX_EXEC_S = 600.0
TIERS = ("production", "staging", "development", "ephemeral", "preview")
# What the API accepts as a name (the OpenAPI pattern): every real environment and tier name
# matches; a name that matches but names nothing is a 404, anything else a 400.
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ROLES = ("web", "cron")
ROTATABLE = ("db_password", "admin_passwd")
_PUBLIC_FIELDS = ("steps", "tests", "modules", "error", "deployed_at", "running_commit", "spec_digest", "settings",
                  "data", "pre_deploy_backup", "restored_at", "rollback")


class DaemonLike(Protocol):
    config: DaemonConfig

    def project(self) -> Project: ...

    def enqueue(self, branch: str, reason: str) -> None: ...

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Actor:
    """Who asks (the token subject) and whether the token is an admin one."""

    subject: str
    admin: bool = False


def _not_found(env: str, known: list[str]) -> OdooOpsError:
    shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "") if known else "none"
    return OdooOpsError("ENV_NOT_FOUND", f"no environment {env!r} on this server (known: {shown})",
                        "odooops env list  # then use one of the listed names or a tier name",
                        {"env": env[:80]})


def check_name(name: str) -> None:
    """Environment and tier names are DNS labels; anything else (paths, shell, unicode) is refused."""
    if not NAME.fullmatch(name) and not is_valid_env_name(name):
        raise OdooOpsError("ENV_NAME_INVALID", "an environment name is a DNS label of 1-63 characters "
                           "([a-z0-9-]), e.g. feature-crm or production",
                           "odooops env list  # shows the names",
                           {"env": name[:80].encode("ascii", "replace").decode()})


class Operations:
    """One instance per server; every call opens what it needs from the daemon's per-thread project."""

    def __init__(self, daemon: DaemonLike, host: HostSettings | None) -> None:
        self.daemon = daemon
        self.host = host
        self._runtime: Any = None
        self._list_cache: tuple[int, bytes] | None = None

    # ------------------------------------------------------------------ reading

    @property
    def project(self) -> Project:
        return self.daemon.project()

    def entries(self) -> dict[str, dict[str, Any]]:
        return {n: e for n, e in self.project.store.entries().items() if e.get("state") != "destroyed"}

    def resolve_env(self, name: str) -> str:
        """An environment name, or a tier name that matches exactly one environment."""
        check_name(name)
        entries = self.entries()
        if name in entries:
            return name
        by_tier = sorted(n for n, e in entries.items() if e.get("tier") == name)
        if len(by_tier) == 1:
            return by_tier[0]
        if by_tier:
            raise OdooOpsError("ENV_AMBIGUOUS", f"tier {name!r} has {len(by_tier)} environments: "
                               f"{', '.join(by_tier[:20])}", f"name one of them, e.g. odooops env show {by_tier[0]}",
                               {"candidates": by_tier})
        raise _not_found(name, sorted(entries))

    def entry(self, name: str) -> tuple[str, dict[str, Any]]:
        env = self.resolve_env(name)
        return env, self.entries()[env]

    @staticmethod
    def summary(name: str, e: dict[str, Any]) -> dict[str, Any]:
        settings = e.get("settings") or {}
        return {"name": name, "branch": e.get("branch"), "tier": e.get("tier"), "commit": e.get("commit"),
                "state": e.get("state"), "url": e.get("url"), "workers": settings.get("workers"),
                "cron_workers": settings.get("cron_workers"), "updated_at": e.get("updated_at")}

    def list_envs(self) -> list[dict[str, Any]]:
        return [self.summary(n, e) for n, e in sorted(self.entries().items())]

    def list_json(self) -> bytes:
        """{"environments": [...]} as JSON bytes, rebuilt only when the state store changes (the
        busiest read: dashboards and `odooops env list` poll it)."""
        stamp = self.project.store.stamp()
        cached = self._list_cache
        if cached is not None and cached[0] == stamp:
            return cached[1]
        body = json.dumps({"environments": self.list_envs()}, separators=(",", ":")).encode()
        self._list_cache = (stamp, body)
        return body

    def show_env(self, name: str) -> dict[str, Any]:
        env, e = self.entry(name)
        out = self.summary(env, e)
        out.update({k: e.get(k) for k in _PUBLIC_FIELDS})
        # What its resources are called in PostgreSQL, Docker, the router and the state dir (docs/projects.md).
        base = self.host.base_domain if self.host is not None else self.project.platform.base_domain
        out["names"] = self.project.names(env).all_names(base)
        return out

    def deployments(self, name: str) -> list[dict[str, Any]]:
        """Every status note that names the environment, newest first."""
        env, _ = self.entry(name)
        out = []
        for commit, note in iter_notes(self.project.source.repo, ref=self.project.source.notes_ref):
            e = (note.get("environments") or {}).get(env)
            if isinstance(e, dict):
                out.append({"commit": commit, "state": e.get("state"), "deployed_at": e.get("deployed_at"),
                            "updated_at": e.get("updated_at"), "url": e.get("url"), "steps": e.get("steps") or [],
                            "tests": e.get("tests"), "error": e.get("error")})
        return sorted(out, key=lambda d: float(d.get("updated_at") or 0), reverse=True)

    def plan(self, branch: str | None = None) -> dict[str, Any]:
        project = self.project
        if branch is not None and branch not in {h.branch for h in project.heads()}:
            raise OdooOpsError("BRANCH_NOT_FOUND", f"no branch {branch[:100]!r} in {redact_url(project.location)}",
                               "git ls-remote ORIGIN  # then pass one of its branches as ?branch=")
        outcome = compute_plan(project, branches=[branch] if branch else None, refresh=False)
        return plan_json(outcome, redact_url(project.location), project.policy.name)

    def status(self) -> dict[str, Any]:
        return self.daemon.status()

    # ------------------------------------------------------------------ runtime

    @property
    def runtime(self) -> Any:
        if self.host is None:
            raise OdooOpsError("HOST_NOT_CONFIGURED", "the server has no host settings (Docker, PostgreSQL)",
                               "start odooops serve with its host settings: odooops host show names what is missing")
        if self._runtime is None:
            self._runtime = open_runtime(self.host)
        return self._runtime

    def logs(self, name: str, tail: int = 200, role: str = "web") -> str:
        env, _ = self.entry(name)
        if role not in _ROLES:
            raise OdooOpsError("ROLE_INVALID", f"no container role {role!r}", "use role=web or role=cron")
        return str(self.runtime.logs(self.project.key(env), role=role, tail=tail))

    def follow_logs(self, name: str, tail: int, role: str, max_seconds: float) -> Iterator[bytes]:
        """The container's log stream until it stops or max_seconds pass (a client can always reconnect)."""
        env, _ = self.entry(name)
        obs = self.runtime.observe_env(self.project.key(env)).container(role)
        if obs is None:
            raise OdooOpsError("CONTAINER_NOT_FOUND", f"environment {env} has no {role} container",
                               f"odooops status {env}  # is the environment deployed?")
        stream = self.runtime.follow_logs(obs.id, tail)

        def gen() -> Iterator[bytes]:
            # A quiet container sends nothing: closing the stream from a timer ends the iteration
            # at the deadline instead of at the next log line.
            timer = threading.Timer(max_seconds, stream.close)
            timer.daemon = True
            timer.start()
            try:
                yield from stream
            except (OSError, ValueError, AttributeError):
                pass  # the timer closed the socket under the reader
            finally:
                timer.cancel()
                stream.close()

        return gen()

    def exec(self, name: str, command: list[str], stdin: str | None, timeout_s: float, *,
             read_only: bool = False) -> dict[str, Any]:
        """A one-off command with the environment's image and mounts; read_only (production): without the
        config file and credential variables, every mount read-only (core/production_exec.py)."""
        env, e = self.entry(name)
        if not command or any(not isinstance(c, str) or "\x00" in c for c in command):
            raise OdooOpsError("COMMAND_INVALID", "command must be a non-empty list of strings",
                               'send {"command": ["odoo", "shell", "-d", "ENV"]}')
        if not 0 < timeout_s <= MAX_EXEC_S:
            raise OdooOpsError("TIMEOUT_INVALID", f"timeout_s must be in (0, {MAX_EXEC_S:.0f}]",
                               "send timeout_s: 600 or less")
        spec = e.get("container_spec")
        if not spec:
            raise OdooOpsError("ENV_NOT_DEPLOYED", f"environment {env} has no running deployment",
                               f"odooops env show {env}  # wait until its state is running")
        container = dict(spec["containers"][0])
        if read_only:
            container = read_only_container(container)
        if stdin is not None:
            # run_once attaches no stdin: the text reaches the command through a variable of the
            # one-off container only (removed afterwards), never through its argv or the audit log.
            container["environment"] = {**container.get("environment", {}), "ODOOOPS_STDIN": stdin}
            command = ["sh", "-c", 'printf "%s" "$ODOOOPS_STDIN" | "$@"', "odooops-exec", *command]
        result = self.runtime.run_once(spec, container, command, timeout_s)
        return {"exit_code": result.exit_code, "timed_out": result.timed_out, "output": result.logs,
                "seconds": round(result.duration_s, 3)}

    def redeploy(self, name: str) -> dict[str, Any]:
        env, e = self.entry(name)
        self.daemon.enqueue(str(e.get("branch") or env), "redeploy requested through the API")
        return {"status": "queued", "env": env}

    # ------------------------------------------------------------------ Git changes

    def scale(self, name: str, actor: Actor, workers: int | None, cron_workers: int | None) -> dict[str, Any]:
        env, e = self.entry(name)
        changes = {k: v for k, v in (("workers", workers), ("cron_workers", cron_workers)) if v is not None}
        if not changes:
            raise OdooOpsError("SCALE_INVALID", "nothing to change", 'send {"workers": 4} and/or {"cron_workers": 1}')
        branch = str(e.get("branch") or "")
        if branch.startswith(("pull/", "merge-requests/")):
            raise OdooOpsError("SCALE_REFUSED", f"{env} is built from a pull/merge request ({branch})",
                               f"change .odooops.yaml in the request's source branch (environments.{env}.workers)")
        key = env if env != branch else branch
        what = ", ".join(f"{k}={v}" for k, v in changes.items())
        commit = self._commit_config(branch, key, changes, actor, f"odooops: scale {env} ({what})")
        return {"status": "committed", "commit": commit, "env": env, "branch": branch}

    def _commit_config(self, branch: str, key: str, changes: dict[str, int], actor: Actor, message: str) -> str:
        source = self.project.source
        found = branch_file(source, branch, CONFIG_FILE)
        if found is None:
            raise OdooOpsError("BRANCH_NOT_FOUND", f"branch {branch} is not in the mirror",
                               "wait for the next poll (or push the branch), then retry")
        parent, data = found
        text = data.decode() if data is not None else "version: 1\n"
        yaml = YAML()  # round-trip mode: comments, order and quoting survive
        yaml.preserve_quotes = True
        doc = yaml.load(text) or {}
        envs = doc.setdefault("environments", {})
        if envs is None:
            doc["environments"] = envs = {}
        target = envs.setdefault(key, {})
        if target is None:
            envs[key] = target = {}
        target.update(changes)
        buf = io.StringIO()
        yaml.dump(doc, buf)
        email = actor.subject if "@" in actor.subject else f"{re.sub(r'[^A-Za-z0-9._-]', '_', actor.subject)}@odooops"
        commit = commit_file(source, parent, CONFIG_FILE, buf.getvalue().encode(),
                             f"{message}\n\nRequested through the OdooOps API by {actor.subject}.\n",
                             author=(actor.subject, email), committer=("OdooOps API", "api@odooops"))
        move_branch(source, branch, commit, parent)
        return commit

    def destroy(self, name: str, actor: Actor, confirm: bool) -> dict[str, Any]:
        env, e = self.entry(name)
        branch = str(e.get("branch") or "")
        if branch.startswith(("pull/", "merge-requests/")):
            raise OdooOpsError("DESTROY_REFUSED", f"{env} belongs to the pull/merge request {branch}",
                               "close the pull/merge request on the Git host; the environment is destroyed then")
        if e.get("tier") == "production":
            if not (confirm and actor.admin):
                raise OdooOpsError("DESTROY_NEEDS_CONFIRMATION", f"{env} is production: destroying it needs "
                                   "confirm=true, an admin token and a verified backup from the last 24 hours",
                                   f"odooops db backup {env} --verify, then odooops env destroy {env} --confirm "
                                   "with an admin token")
            self._require_recent_backup(env)
        tip = branch_tip(self.project.source, branch)
        if tip is None:
            raise OdooOpsError("BRANCH_NOT_FOUND", f"branch {branch} of {env} is already gone",
                               f"wait for the next poll; odooops env show {env} shows the state")
        move_branch(self.project.source, branch, None, tip)
        return {"status": "branch_deleted", "env": env, "branch": branch}

    def _require_recent_backup(self, env: str) -> dict[str, Any]:
        """A backup of env from the last 24 hours that restores: the newest one is verified now
        (a scratch restore, dropped afterwards) unless its manifest already records a verification."""
        if self.host is None:
            raise OdooOpsError("HOST_NOT_CONFIGURED", "the server has no host settings",
                               "start odooops serve with its host settings: odooops host show names what is missing")
        ctx = DataContext.for_project(self.project, self.host)
        cutoff = datetime.now(UTC) - timedelta(hours=24)
        fresh = [m for m in list_backups(ctx, env) if m.created >= cutoff]
        if not fresh:
            raise OdooOpsError("BACKUP_REQUIRED", f"{env} has no verified backup from the last 24 hours",
                               f"odooops db backup {env} --verify, then retry")
        for m in fresh:
            if m.extra.get("verified") or m.extra.get("verified_at"):
                return {"backup": m.id, "verified": "recorded"}
        result = verify_backup(ctx, env, fresh[0].id)
        return {"backup": fresh[0].id, "verified": bool(result.get("ok"))}

    # ------------------------------------------------------------------ secrets

    def secret_store(self) -> Any:
        state = self.host.state_dir if self.host is not None else self.project.state_dir
        return SecretStore(state / "secrets")

    def secret_names(self, name: str | None) -> list[str]:
        return [str(n) for n in self.secret_store().names(self._scope(name))]

    def set_secret(self, name: str | None, key: str, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", key):
            raise OdooOpsError("SECRET_NAME_INVALID", f"invalid secret name {key[:70]!r}",
                               "use lowercase letters, digits and underscores, e.g. smtp_password")
        if not value or len(value) > 65536:
            raise OdooOpsError("SECRET_VALUE_INVALID", "a secret value is 1-65536 characters",
                               'send {"value": "..."}')
        scope = self._scope(name)
        self.secret_store().set(scope, key, value)
        return scope

    def _scope(self, name: str | None) -> str:
        """The secret scope of an environment (its key) or, for None, of the project."""
        return project_secret_scope(self.project.name) if name is None else self.project.key(self.resolve_env(name))

    def rotate(self, name: str) -> dict[str, Any]:
        """New platform-generated credentials; the next apply (queued now) rolls them out."""
        env, e = self.entry(name)
        store = self.secret_store()
        scope = self.project.key(env)
        rotated = [n for n in ROTATABLE if n in store.names(scope)]
        for n in rotated:
            store.rotate(scope, n, keep_previous=n == DB_PASSWORD)  # the running version keeps logging in
        if rotated:
            self.daemon.enqueue(str(e.get("branch") or env), "secrets rotated through the API")
        return {"rotated": rotated, "env": env}

