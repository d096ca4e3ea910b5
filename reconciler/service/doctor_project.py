"""The project half of `odooops doctor`: its remote, notes, `.odooops.yaml`, webhook secret, backup store,
and what its plan asks of the host; `diagnose` composes the host and project checks into one run."""

from __future__ import annotations

import json
import math
import re
import stat
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.schedule import runs_per_day
from reconciler.errors import OdooOpsError
from reconciler.platform.host import HostSettings
from reconciler.service.doctor import (
    FAIL,
    GIB,
    OK,
    SKIPPED,
    WARN,
    Check,
    CheckResult,
    HostProbe,
    Once,
    PlanNeeds,
    Verdict,
    host_checks,
    run_checks,
    settings_failure,
)
from reconciler.sources.remote import NOTES_REF, is_url, redact_url
from reconciler.sources.urls import file_url_path

if TYPE_CHECKING:
    from reconciler.controller.outcome import PlanOutcome
    from reconciler.executors.storage import ObjectStore

# Adapters (storage, backups, pygit2 probes) are imported inside the checks: see reconciler/service/doctor.py.

ODOO_DB_MAXCONN = 64  # Odoo's default (odoo/tools/config.py); odoo.conf does not set it
_WORKERS = re.compile(r"^--workers=(\d+)$")
_CRONS = re.compile(r"^--max-cron-threads=(\d+)$")


@dataclass(frozen=True)
class ProjectTarget:
    """A project to check: where it is, how to get its plan, and the webhook secret serve is (or would be) given."""

    location: str
    plan: Callable[[], PlanOutcome]
    webhook_secret_file: Path | None = None
    notes_ref: str = NOTES_REF  # the project's own (docs/adr/0037)


@dataclass
class Doctor:
    """One host (and optionally one project); `run()` may be called again (serve's /readyz): a check still
    hung from an earlier run is reported, not started twice."""

    host: HostSettings | OdooOpsError  # the error when the host settings cannot be read
    project: ProjectTarget | None = None
    timeout_s: float = 5.0
    serial: bool = False  # one check after another: only the benchmark's baseline wants this
    _inflight: dict[str, threading.Thread] = field(default_factory=dict, init=False, repr=False)

    def run(self) -> list[CheckResult]:
        plan = Once(self.project.plan, "project.config") if self.project is not None else None
        head: list[CheckResult] = []
        checks: list[Check] = []
        if isinstance(self.host, OdooOpsError):
            head.append(settings_failure(self.host))
        else:
            needs = Once(lambda: plan_needs(plan.needed()), "project.config") if plan is not None else None
            checks += host_checks(HostProbe(self.host, self.timeout_s, needs))
            checks += _store_checks(self.host, plan)
        if self.project is not None:
            checks += _project_checks(self.project, plan)
        return head + run_checks(checks, self.timeout_s, self._inflight, self.serial)


# -- what the plan asks of the host -------------------------------------------------------------------


def plan_needs(outcome: PlanOutcome) -> PlanNeeds:
    """Processes, connections and memory of the planned environments, read from their rendered artifacts
    (container.json: each container's command and memory limit; main.tf.json: the role's connection limit)."""
    processes = worst = capped = memory = 0
    envs = [spec.name for spec in outcome.plan.environments]
    for env in envs:
        texts = outcome.artifacts[env]
        containers = json.loads(texts["container.json"])["containers"]
        limit = int(json.loads(texts["main.tf.json"])["module"]["env"]["connection_limit"])
        env_processes = sum(_odoo_processes(c["command"]) for c in containers)
        processes += env_processes
        worst += env_processes * ODOO_DB_MAXCONN
        capped += min(env_processes * ODOO_DB_MAXCONN, limit)
        memory += sum(int(c.get("memory_bytes") or 0) for c in containers)
    return PlanNeeds(len(envs), processes, worst, capped, memory, ODOO_DB_MAXCONN)


def _odoo_processes(command: list[str]) -> int:
    """Odoo's processes for one container: threaded (workers 0) is one; prefork is the master, the HTTP
    workers, the gevent (websocket) process and one process per cron worker."""
    workers = next((int(m.group(1)) for a in command if (m := _WORKERS.match(a))), 0)
    crons = next((int(m.group(1)) for a in command if (m := _CRONS.match(a))), 0)
    return 1 if workers == 0 else 1 + workers + 1 + crons


# -- backup store -----------------------------------------------------------------------------------


def _store(host: HostSettings) -> ObjectStore:
    from reconciler.executors.storage import store_for
    from reconciler.secrets import SecretStore

    cfg = host.backup_store or {}
    # The secret store (its key file) is opened only for S3, the one store that needs credentials.
    secrets = SecretStore(Path(host.state_dir) / "secrets") if "s3" in cfg else None
    return store_for(host, secrets)


def _store_checks(host: HostSettings, plan: Once | None) -> list[Check]:
    where = _store_where(host)
    hung = f"check that the backup store {where} answers (a hung mount or S3 endpoint?)"
    return [Check("backup.store", lambda: _store_probe(host), f"the backup store {where}", hung),
            Check("backup.disk", lambda: _retention_disk(host, plan), f"the backup store {where}", hung)]


def _store_where(host: HostSettings) -> str:
    cfg = host.backup_store or {}
    if "s3" in cfg:
        s3 = cfg["s3"] if isinstance(cfg["s3"], dict) else {}
        return f"s3://{s3.get('bucket', '?')}/{s3.get('prefix', '')}"
    return str(cfg.get("local") or Path(host.state_dir) / "backups")


def _store_probe(host: HostSettings) -> Verdict:
    where = _store_where(host)
    store = _store(host)
    key = f"doctor-probe/{uuid.uuid4().hex}"
    body = uuid.uuid4().bytes
    fix = (f"make {where} writable by this user (it must be a directory: mkdir -p {where} && chown $(id -u) {where})"
           if "s3" not in (host.backup_store or {}) else
           f"check the bucket, its endpoint and that the keys in `odooops secrets list` may write to {where}")
    try:
        store.put_bytes(key, body)
        try:
            if store.get_bytes(key) != body:
                return FAIL, f"the probe object read back from {where} differs from what was written", fix
        finally:
            store.delete(key)
    except OdooOpsError as exc:
        return FAIL, exc.message, exc.remediation
    except OSError as exc:
        return FAIL, f"cannot write a probe object to {where}: {exc.strerror or exc}", fix
    return OK, f"{where}: a probe object was written, read back and deleted", ""


def _retention_disk(host: HostSettings, plan: Once | None) -> Verdict:
    if plan is None:
        return SKIPPED, "pass --repo to compare the store's free space with what the retention policy keeps", ""
    from reconciler.data.backup import backup_ids, load_manifest

    outcome: PlanOutcome = plan.needed()
    store = _store(host)
    free = store.free_bytes()
    if free is None:
        return SKIPPED, f"{_store_where(host)} is an object store: no disk to compare with", ""
    need, basis, without = 0, [], []
    for spec in outcome.plan.environments:
        if not spec.settings.get("backup_schedule"):
            continue
        count = _retained_count(spec.settings.get("backup_retention") or {"days": 7},
                                str(spec.settings["backup_schedule"]))
        ids = backup_ids(store, spec.key)
        if not ids:
            without.append(spec.name)
            continue
        size = int(load_manifest(store, spec.key, ids[0]).sizes.get("total") or 0)
        need += count * size
        basis.append(f"{spec.name}: {count} x {size / GIB:.2f} GiB")
    if not basis:
        note = f" (not backed up yet: {', '.join(without)})" if without else ""
        return OK, f"no environment with backups to estimate from{note}; {free / GIB:.1f} GiB free", ""
    detail = (f"estimate {need / GIB:.1f} GiB (backups the retention keeps x the newest backup's size, an upper "
              f"bound: backups share unchanged files; {'; '.join(basis)}) against {free / GIB:.1f} GiB free on "
              f"{_store_where(host)}")
    if without:
        detail += f"; not counted (no backup yet): {', '.join(without)}"
    fix = ("free space or move the store to a larger disk (ODOOOPS_BACKUP_STORE), or keep fewer backups "
           "(backup_retention in .odooops.yaml)")
    if need > free:
        return FAIL, detail, fix
    if need > free * 0.8:
        return WARN, detail, fix
    return OK, detail, ""


def _retained_count(policy: dict[str, Any], schedule: str) -> int:
    """Backups the policy keeps: every one younger than N days (N x the schedule's runs a day), or the newest
    of each of so many days, weeks and months (their sum: an upper bound, one backup may count twice)."""
    if "days" in policy:
        return math.ceil(int(policy["days"]) * runs_per_day(schedule, datetime.now(UTC)))
    return sum(int(policy.get(k) or 0) for k in ("daily", "weekly", "monthly"))


# -- the project ------------------------------------------------------------------------------------


def _project_checks(project: ProjectTarget, plan: Once | None) -> list[Check]:
    shown = redact_url(project.location)
    remote_hung = f"check the remote answers: git ls-remote {shown}"
    checks = [
        Check("project.remote", lambda: _remote(project.location), f"the remote {shown}", remote_hung),
        Check("project.notes_push", lambda: _notes_push(project.location, project.notes_ref), f"the remote {shown}",
              remote_hung),
        Check("project.webhook_secret", lambda: _webhook_secret(project), str(project.webhook_secret_file or ""),
              "check the file system holding the webhook secret file"),
    ]
    if plan is not None:
        checks.append(Check("project.config", lambda: _config(plan), f"the plan of {shown}",
                            f"run `odooops plan --repo {shown}` to see where planning stops"))
    return checks


def _remote(location: str) -> Verdict:
    from reconciler.sources.probe import list_remote

    refs = list_remote(location)
    return OK, f"{redact_url(location)} answers: {refs} refs", ""


def _notes_push(location: str, ref: str) -> Verdict:
    from reconciler.sources.probe import notes_push_access

    access = notes_push_access(location, notes_ref=ref)
    if not access.checked:
        return SKIPPED, f"not checked: {access.detail}", ""
    return OK, f"{ref}: {access.detail}", ""


def _config(plan: Once) -> Verdict:
    outcome: PlanOutcome = plan.get()
    errors = outcome.plan.errors
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more: odooops plan shows all)" if len(errors) > 1 else ""
        return FAIL, f"{first.branch}: {first.file}:{first.line}:{first.column} {first.message}{more}", \
            first.remediation
    return OK, f".odooops.yaml valid on every planned branch: {len(outcome.plan.environments)} environments", ""


def _webhook_secret(project: ProjectTarget) -> Verdict:
    path = project.webhook_secret_file
    if path is None:
        if file_url_path(project.location) is not None or not is_url(project.location):
            return SKIPPED, "the repository is on this disk: no forge sends webhooks, serve polls it", ""
        return WARN, "no webhook secret: serve would refuse webhooks and see pushes only at its next poll", \
            "head -c 32 /dev/urandom | base64 > ~/.config/odooops/webhook.secret && chmod 600 " \
            "~/.config/odooops/webhook.secret; pass --webhook-secret-file ~/.config/odooops/webhook.secret to " \
            "odooops serve and set the same secret in the repository's webhook settings"
    try:
        st = path.stat()
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    except OSError as exc:
        return FAIL, f"cannot read the webhook secret file {path}: {exc.strerror or exc}", \
            f"head -c 32 /dev/urandom | base64 > {path}; chmod 600 {path}"
    if not lines:
        return FAIL, f"the webhook secret file {path} is empty: serve refuses every webhook", \
            f"head -c 32 /dev/urandom | base64 > {path}; chmod 600 {path}"
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return WARN, f"{path} holds {len(lines)} secret(s) but others may read it (mode {st.st_mode & 0o777:o})", \
            f"chmod 600 {path}"
    return OK, f"{path}: {len(lines)} secret(s), mode 600", ""
