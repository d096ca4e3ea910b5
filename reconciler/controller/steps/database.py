"""The database step of apply: build a new env's database (production clone, template, fresh install) or migrate it.

How a database is first built follows the env's `data_source` setting:
- `production`: a neutralized (and, by policy, masked) verified clone of the running production,
  renamed into place, then `-u` of the modules that differ from the code; for dev, ephemeral
  and preview envs the sanitized copy is kept as a production snapshot (snapshots.py) that the next
  such env copies instead of neutralizing and masking production again;
- `fresh`/`fresh_demo`: a FILE_COPY clone of a template database for the same image, module set and
  demo flag plus `-u`/`-i` of what differs from the code; without a template, a full install that is
  then kept as the next template.
What differs is read from the database itself (controller/modules.py: module states and the addons'
digests it records), and a schema gate checks the result. An existing database of a tier that runs
tests is updated on a working copy (working_copy.py), swapped in by apply once the tests passed.
Production deploys that install or update modules take a backup first, restored automatically when
the update fails (the rollback helper restores it later on request).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.controller.modules import (
    ModuleChanges,
    db_now,
    module_plan,
    read_database,
    repo_modules,
    schema_gate,
    store_digests,
)
from reconciler.controller.steps.context import (
    DeployContext,
    StepFailed,
    StepResult,
    need,
    platform_values,
)
from reconciler.core import odoo_log
from reconciler.core.model import EnvSpec
from reconciler.core.naming import PRODUCTION_NAME
from reconciler.data import snapshots
from reconciler.data.admin_password import ensure_admin_password
from reconciler.data.backup import create_backup
from reconciler.data.clone import clone_to_scratch
from reconciler.data.context import DataContext
from reconciler.data.filestore import link_tree
from reconciler.data.mail import catcher_login
from reconciler.data.odoo_cli import install_command, update_command
from reconciler.data.restore import restore_to_scratch
from reconciler.data.scratch import scratch_name
from reconciler.data.swap import swap_in
from reconciler.data.templates import Template, TemplateKey, TemplateRegistry, keep_copy
from reconciler.data.working_copy import WorkingCopy
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres
from reconciler.executors.runtime import RunResult, Runtime
from reconciler.executors.sql import database_initialised
from reconciler.platform.host import HostSettings
from reconciler.render.artifacts import fill
from reconciler.secrets import SecretStore

if TYPE_CHECKING:
    from reconciler.controller.planning import Project


@dataclass
class DatabaseOutcome:
    result: str  # ok | changed
    detail: str
    modules: ModuleChanges | None = None
    data: dict[str, Any] | None = None  # how the database was built: kept in the state entry and note
    pre_deploy_backup: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    working_copy: WorkingCopy | None = None  # tiers that run tests: what the update and the tests ran on


@dataclass
class DatabaseStep:
    """Everything one env's database step needs; `run()` is safe to re-run after a crash."""

    project: Project
    host: HostSettings
    runtime: Runtime
    secrets: SecretStore
    spec: EnvSpec
    previous: dict[str, Any]
    container_spec: dict[str, Any]
    owner: str  # uid:gid of the image's user, owner of the filestore
    image_id: str
    external: list[tuple[str, str, str]] = field(default_factory=list)  # (name, url, commit)
    progress: Callable[[str], None] = lambda _msg: None
    backup: dict[str, Any] | None = None  # the pre-deploy backup, once taken (also when a later part fails)
    _pg: Postgres | None = None
    _code: dict[str, tuple[str, str]] | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def env(self) -> str:
        return self.spec.name

    @property
    def db(self) -> str:
        """The environment's database, which is also its owning role and secret scope (its key)."""
        return self.spec.key

    @property
    def pg(self) -> Postgres:
        if self._pg is None:
            self._pg = Postgres.from_host(self.host)
        return self._pg

    def data_context(self) -> DataContext:
        return DataContext(host=self.host, pg=self.pg, secrets=self.secrets, runtime=self.runtime,
                           store=self.project.store, project_id=self.project.id, project=self.project.name)

    def odoo(self, cmd: list[str], timeout_s: float = 1800) -> RunResult:
        """A one-off Odoo command with THIS deploy's image, config and mounts (not the running ones)."""
        return self.runtime.run_once(self.container_spec, self.container_spec["containers"][0], cmd, timeout_s)

    def _odoo_or_fail(self, cmd: list[str], code: str) -> RunResult:
        run = self.odoo(cmd)
        if not run.ok:
            why = odoo_log.parse(run.logs).headline()  # the first error and its exception, from Odoo's log
            raise StepFailed(OdooOpsError(
                code, f"odoo {' '.join(cmd[1:])} exited with {run.exit_code}{' (timed out)' if run.timed_out else ''}"
                + (f": {why}" if why else ""),
                f"fix the module on {self.spec.branch} and push; the previous version keeps serving "
                f"(log: odooops status {self.env} --json)"), odoo_log.excerpt(run.logs))
        return run

    @property
    def code(self) -> dict[str, tuple[str, str]]:
        """The repository's addons at this deploy's commit: name -> (tree id, manifest version)."""
        if self._code is None:
            self._code = repo_modules(self.project.source, self.spec.commit, self.spec["addons_paths"])
        return self._code

    def _changes(self, db: str | None = None) -> ModuleChanges:
        """What to install and update, from the database's own module states and digests."""
        with self.pg.connect(db or self.db) as conn:
            return module_plan(self.code, read_database(conn), self.spec["modules"])

    def _db_now(self) -> Any:
        with self.pg.connect() as conn:
            return db_now(conn)

    def _gate(self, db: str, ran: ModuleChanges | None, since: Any, logs: str = "") -> None:
        """The schema gate: the database matches the code (nothing pending, every changed module written
        by the run); then the digests of this commit's addons are recorded in it."""
        with self.pg.connect(db) as conn:
            try:
                schema_gate(self.code, read_database(conn), self.spec["modules"], self.env, db, self.spec.branch,
                            ran, since)
            except OdooOpsError as exc:
                raise StepFailed(exc, logs) from exc
            store_digests(conn, self.code)

    def _migrate(self, mods: ModuleChanges, code: str = "ODOO_UPDATE_FAILED", db: str | None = None) -> str:
        """-i of new modules and -u of changed ones on `db` (default: the env's); '' when nothing changed."""
        db = db or self.db
        if not (mods.install or mods.update):
            self._gate(db, None, None)
            return ""
        since = self._db_now()
        run = self._odoo_or_fail(update_command(db, list(mods.install), list(mods.update)), code)
        self._gate(db, mods, since, run.logs)
        return f"installed {', '.join(mods.install) or '-'}; updated {', '.join(mods.update) or '-'}"

    # ------------------------------------------------------------------ entry point

    def run(self) -> DatabaseOutcome:
        out = self._build_or_migrate()
        try:
            return self._finish(out)
        except BaseException:
            if out.working_copy is not None:
                out.working_copy.discard(self.pg)
            raise

    def _finish(self, out: DatabaseOutcome) -> DatabaseOutcome:
        # On every tier the admin user's password is the platform's, whatever built the database (an init
        # leaves `admin`, a clone empties it, a template or snapshot holds another env's); cheap when it is.
        # (On the working copy when there is one: the live database only changes by the swap.)
        target = out.working_copy.db if out.working_copy is not None else None
        if ensure_admin_password(self.pg, self.secrets, self.db, target).changed:
            out.detail += f"; admin password set (odooops env credentials {self.env})"
        return out

    def _build_or_migrate(self) -> DatabaseOutcome:
        if database_initialised(self.host, self.db):
            return self._existing()
        if self.spec["data_source"] == "production" and self.env != PRODUCTION_NAME:
            prod = self._running_production()
            if prod is not None:
                return self._from_production(prod)
            fallback = ("no running production environment to clone: built as a fresh database "
                        "(it is cloned from production once production runs and this env is recreated)")
            out = self._fresh(use_templates=True)
            out.detail += f"; {fallback}"
            out.data = {"source": "fresh", "fallback_from": "production", "reason": fallback}
            return out
        return self._fresh(use_templates=self.env != PRODUCTION_NAME)

    # ------------------------------------------------------------------ existing database: migrate

    def _existing(self) -> DatabaseOutcome:
        prev = self.previous
        data = prev.get("data")
        if self.spec["run_tests"] and str(self.spec.tier) != "production":
            return self._on_working_copy(data)
        old_commit = prev.get("commit") if prev.get("state") == "running" else prev.get("running_commit")
        mods = self._changes()
        if not (mods.install or mods.update):
            self._gate(self.db, None, None)
            return DatabaseOutcome("ok", "no module changed", mods, data=data)
        backup = None
        if str(self.spec.tier) == "production":
            backup = self._pre_deploy_backup(old_commit)
        try:
            what = self._migrate(mods)
        except StepFailed as failed:
            if backup is not None:
                self.restore_pre_deploy_backup(backup, failed)
            raise
        if backup is not None:
            what += f"; pre-deploy backup {backup['id']}"
        return DatabaseOutcome("changed", what, mods, data=data, pre_deploy_backup=backup)

    def _on_working_copy(self, data: dict[str, Any] | None) -> DatabaseOutcome:
        """Update (and, in the tests step, test) a copy: the live database only changes by the swap of a
        copy that passed, when the new version starts (data/working_copy.py)."""
        self.progress("working copy of the database")
        uid, gid = (int(x) for x in self.owner.split(":"))
        copy = WorkingCopy.make(self.pg, self.host, self.db, owner=(uid, gid))
        try:
            mods = self._changes(copy.db)
            what = self._migrate(mods, db=copy.db)
        except BaseException:
            copy.discard(self.pg)
            raise
        copy.changed = bool(mods.install or mods.update)
        size = f"{copy.bytes / 2**20:.0f} MiB" if copy.bytes else "empty"
        detail = (f"working copy {copy.db} ({size}) in {copy.timings['copy_database']:.2f}s; "
                  + (what or "no module changed")
                  + ("; swapped in when the tests passed and the new version starts" if copy.changed
                     else "; the tests run on it, the live database stays"))
        return DatabaseOutcome("changed" if copy.changed else "ok", detail, mods, data=data, working_copy=copy)

    def restore_pre_deploy_backup(self, backup: dict[str, Any], failed: StepFailed) -> None:
        """A failed update of production: its pre-deploy backup is restored (verified, then swapped in)
        and the previous version restarted on it, so code and data are as before the deploy."""
        ctx = self.data_context()
        self.progress(f"the update failed: restoring the pre-deploy backup {backup['id']}")
        t = time.monotonic()
        try:
            db, filestore = restore_to_scratch(ctx, self.env, backup["id"], self.env)
            try:
                result = swap_in(ctx, self.env, db, filestore, confirm_production=True)
            except BaseException:
                with contextlib.suppress(OdooOpsError):
                    self.pg.drop(db)
                shutil.rmtree(filestore, ignore_errors=True)
                raise
        except (OdooOpsError, OSError) as exc:
            why = exc.message if isinstance(exc, OdooOpsError) else str(exc)
            failed.error.remediation = (
                f"the automatic restore of the pre-deploy backup {backup['id']} FAILED ({why}): restore it now with "
                f"odooops db restore {self.env} --backup {backup['id']} --confirm; then fix the module on "
                f"{self.spec.branch} and push")
            failed.error.details["restore"] = {"backup": backup["id"], "ok": False, "error": why}
            return
        seconds = round(time.monotonic() - t, 3)
        failed.error.message += (f"; the pre-deploy backup {backup['id']} was restored automatically in "
                                 f"{seconds:.1f}s: code and data are as before the deploy")
        failed.error.remediation = (f"fix the module on {self.spec.branch} and push; writes to {self.env} between "
                                    "the backup and the restore were discarded with the failed update")
        failed.error.details["restore"] = {"backup": backup["id"], "ok": True, "seconds": seconds,
                                           "phases": result.get("phases")}
        backup["restored_after_failed_update"] = True

    def _pre_deploy_backup(self, old_commit: str | None) -> dict[str, Any]:
        """Production data is never migrated without a backup of the version that ran before."""
        self.progress("pre-deploy backup")
        try:
            manifest = create_backup(self.data_context(), self.env, reason="pre-deploy", commit=old_commit)
        except (OdooOpsError, OSError) as exc:
            cause = exc.to_dict() if isinstance(exc, OdooOpsError) else {"error": str(exc)}
            fix = exc.remediation if isinstance(exc, OdooOpsError) else "fix the backup store (space, permissions)"
            raise OdooOpsError(
                "BACKUP_BEFORE_DEPLOY_FAILED",
                f"the pre-deploy backup of {self.env} failed, so the deploy of {self.spec.commit[:12]} did not "
                f"touch the database: {cause.get('message') or cause.get('error')}",
                f"{fix}; then re-run the deploy (odooops apply --retry-failed, or push again); "
                f"check the store with: odooops db backup {self.env}", {"cause": cause}) from exc
        backup_id = getattr(manifest, "id", None) or getattr(manifest, "backup_id", None) or str(manifest)
        self.backup = {"id": backup_id, "from_commit": old_commit, "to_commit": self.spec.commit,
                       "taken_at": time.time()}
        return self.backup

    # ------------------------------------------------------------------ production clone

    def _running_production(self) -> dict[str, Any] | None:
        entry = self.project.store.entries().get(PRODUCTION_NAME) or {}
        live = self.project.key(PRODUCTION_NAME)
        if entry.get("state") == "running" and entry.get("container_spec") and self.pg.exists(live):
            return entry
        return None

    def _catcher_row(self) -> dict[str, Any] | None:
        if not self.spec["mail_catcher"]:
            return None

        return catcher_login(self.host, self.secrets, self.db, self.container_spec)

    def _from_production(self, prod: dict[str, Any]) -> DatabaseOutcome:
        prod_commit = str(prod.get("running_commit") or prod.get("commit"))
        registry = TemplateRegistry(self.host.state_dir) if str(self.spec.tier) in snapshots.SNAPSHOT_TIERS else None
        if registry is not None and (registry.cap_count == 0 or snapshots.max_age_s() == 0):
            registry = None  # templates or snapshots switched off
        key = snapshots.SnapshotKey.make(self.project.id, self.image_id, prod_commit, str(self.spec["odoo_version"]),
                                         bool(self.spec["mask"]), self.spec["masking_rules"])
        snapshot = snapshots.usable(self.data_context(), registry, key) if registry is not None else None
        kept = ""
        if snapshot is not None:
            self.progress("cloning the production snapshot")
            db, verification, timings = snapshots.clone_from(self.data_context(), snapshot, self.env,
                                                             self._catcher_row())
            filestore = Path(snapshot.filestore)
            source = f"production snapshot {snapshot.db} (taken {time.time() - snapshot.created_at:.0f}s ago)"
            seconds = sum(timings.values())
        else:
            self.progress("cloning production")
            result = clone_to_scratch(self.data_context(), PRODUCTION_NAME, self.env, neutralize=True,
                                      mask=bool(self.spec["mask"]), rules=self.spec["masking_rules"] or None,
                                      run_odoo=self.odoo, mail_server=self._catcher_row())
            db, verification, seconds = result.db, result.verification, result.seconds
            filestore = Path(result.filestore)
            timings = {k: round(v, 3) for k, v in result.steps.items()}
            source = f"production at {prod_commit[:12]}"
            if result.source_backup is not None:
                backup = result.source_backup
                source = (f"production's backup {backup['id']} ({backup['age_s']:.0f}s old"
                          + (", taken now" if backup.get("taken_now") else "") + ")")
            if registry is not None:
                kept = "; " + snapshots.keep(self.data_context(), registry, key, db, filestore, self.env, verification)
        # Verified: swap the scratch database in under the env's name (nothing serves it yet).
        try:
            self._replace_empty_database()
            self.pg.rename(db, self.db)
        except BaseException:
            self.pg.drop(db)
            raise
        self.pg.restrict_connect(self.db, self.db)
        if snapshot is not None:
            self._link_filestore(filestore, self.host.filestore_dir(self.db))
        else:
            self._move_filestore(filestore, self.host.filestore_dir(self.db))
        mods = self._changes()
        migrated = self._migrate(mods)
        data = {"source": "production", "cloned_at": time.time(), "production_commit": prod_commit,
                "commit": self.spec.commit, "neutralized": True, "masked": bool(self.spec["mask"]),
                "verification": verification, "timings": timings}
        if snapshot is not None:
            data.update(snapshot=snapshot.db, snapshot_taken_at=snapshot.created_at,
                        snapshot_verified=snapshot.inputs.get("verified"))
        elif result.source_backup is not None:
            data["production_backup"] = result.source_backup
        detail = (f"cloned from {source} (neutralized{', masked' if self.spec['mask'] else ''}, verified) "
                  f"in {seconds:.1f}s{kept}")
        if migrated:
            detail += f"; {migrated}"
        return DatabaseOutcome("changed", detail, mods, data=data)

    # ------------------------------------------------------------------ fresh: template or install

    def template_key(self) -> TemplateKey:
        return TemplateKey.make(self.project.id, self.image_id, self.spec["modules"], bool(self.spec["demo"]),
                                str(self.spec["odoo_version"]), [(n, c) for n, _u, c in self.external])

    def _fresh(self, use_templates: bool) -> DatabaseOutcome:
        registry = TemplateRegistry(self.host.state_dir) if use_templates else None
        if registry is not None and registry.cap_count == 0:
            registry = None  # ODOOOPS_TEMPLATE_CAP_COUNT=0: templates switched off
        if registry is not None:
            key = self.template_key()
            template = registry.lookup(key)
            if template is not None:
                if self.project.source.repo.get(template.commit) is None or not self.pg.exists(template.db):
                    # Its commit is gone (branch deleted and collected: -u cannot know what changed) or
                    # its database was dropped behind the registry's back: forget it and install.
                    registry.discard(self.pg, template)
                else:
                    try:
                        return self._from_template(template, registry)
                    except OdooOpsError as exc:
                        if exc.code != "CLONE_SOURCE_MISSING":
                            raise
                        # Evicted or replaced by a concurrent apply between lookup and copy: install.
                        registry.discard(self.pg, template)
        out = self._install()
        if registry is not None:
            out.detail += "; " + self._keep_template(registry)
        return out

    def _install(self) -> DatabaseOutcome:
        mods = ModuleChanges(install=tuple(sorted(set(self.spec["modules"]))) or ("base",), update=(), removed=())
        cmd = install_command(self.db, list(mods.install), bool(self.spec["demo"]), str(self.spec["odoo_version"]))
        since = self._db_now()
        run = self._odoo_or_fail(cmd, "ODOO_INIT_FAILED")
        self._gate(self.db, mods, since, run.logs)
        return DatabaseOutcome("changed", f"initialised with {', '.join(mods.install)}", mods,
                               data={"source": "fresh", "demo": bool(self.spec["demo"])})

    def _keep_template(self, registry: TemplateRegistry) -> str:
        """Copy the just-initialised database (nothing has connected yet) as the next env's template."""
        key = self.template_key()
        if registry.lookup(key) is not None:
            return "a template for these inputs was kept meanwhile by another apply"
        try:
            template, seconds, evicted = keep_copy(
                self.pg, registry, self.db, self.host.filestore_dir(self.db), admin=self.host.pg_admin_user,
                key=key.id, commit=self.spec.commit, inputs=key.to_json(), built_by=self.env)
        except OdooOpsError as exc:
            # A template is an optimisation: the env is fine without one, the next one tries again.
            return f"no template kept ({exc.code}: {exc.message})"
        tail = f", evicted {', '.join(t.db for t in evicted)}" if evicted else ""
        return f"kept as template {template.db} (key {key.id}, {seconds:.1f}s{tail})"

    def _from_template(self, template: Template, registry: TemplateRegistry) -> DatabaseOutcome:
        marks = [("start", time.monotonic())]
        # Built under a scratch name and renamed when complete: a failed copy leaves the env's (empty)
        # database as it was, and a crash leaves only an oo_clone_* for the sweep.
        scratch = scratch_name("clone")
        self.pg.clone(template.db, scratch, owner=self.db)
        marks.append(("copy", time.monotonic()))
        try:
            self.pg.reassign_objects(scratch, self.db)
            self._new_identity(scratch)
            self._replace_empty_database()
            self.pg.rename(scratch, self.db)
        except BaseException:
            self.pg.drop(scratch)
            raise
        self.pg.restrict_connect(self.db, self.db)
        marks.append(("ownership", time.monotonic()))
        self._link_filestore(Path(template.filestore), self.host.filestore_dir(self.db))
        marks.append(("filestore", time.monotonic()))
        cloned_s = marks[-1][1] - marks[0][1]
        timings = {name: round(t - marks[i][1], 3) for i, (name, t) in enumerate(marks[1:])}
        mods = self._changes()
        migrated = self._migrate(mods)
        detail = (f"cloned from template {template.db} (key {template.key}, built at {template.commit[:12]}) "
                  f"in {cloned_s:.1f}s (" + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()) + ")")
        if migrated:
            detail += f"; {migrated}"
        data = {"source": "template", "template": template.db, "template_key": template.key,
                "template_commit": template.commit, "demo": bool(self.spec["demo"]), "timings": timings}
        # What this deploy installs as a whole: the template's modules plus what was added on top.
        full = ModuleChanges(install=tuple(sorted(set(self.spec["modules"]))), update=mods.update,
                             removed=mods.removed)
        return DatabaseOutcome("changed", detail, full, data=data)

    # ------------------------------------------------------------------ database and filestore moves

    def _replace_empty_database(self) -> None:
        """Terraform created the env's database empty; a clone takes its place (never one with data)."""
        if not self.pg.exists(self.db):
            return
        if database_initialised(self.host, self.db):
            raise OdooOpsError("DATABASE_NOT_EMPTY", f"database {self.db} already holds an Odoo database",
                               f"odooops status {self.env}  # it was initialised meanwhile; re-run odooops apply")
        with self.pg.connect(self.db) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                                  ).fetchone()
        if tables and tables[0]:
            raise OdooOpsError("DATABASE_NOT_EMPTY", f"database {self.db} has {tables[0]} tables but no Odoo registry",
                               f"inspect it (psql {self.db}); drop it yourself if it is garbage, then re-run apply")
        self.pg.drop(self.db)

    def _new_identity(self, db: str) -> None:
        """A copied database is a new database for Odoo: its own uuid and secret (sessions, signed tokens)."""
        with self.pg.connect(db) as conn:
            conn.execute("UPDATE ir_config_parameter SET value = gen_random_uuid()::text "
                         "WHERE key IN ('database.uuid', 'database.secret')")
            conn.execute("UPDATE ir_config_parameter SET value = to_char(now() AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD HH24:MI:SS') WHERE key = 'database.create_date'")

    def _chown(self, *paths: Path) -> None:
        """Odoo writes new attachments as the image's user. link_tree keeps the owners of what it links,
        so only the directories made here need one."""
        uid, gid = (int(x) for x in self.owner.split(":"))
        for path in paths:
            os.chown(path, uid, gid)

    def _link_filestore(self, src: Path, dst: Path) -> None:
        """Hardlink/reflink a filestore (Odoo never rewrites its files in place, so sharing is safe)."""
        if dst.exists():
            shutil.rmtree(dst)  # left by a crashed attempt: the database it belonged to is gone
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            link_tree(src, dst)
        else:
            dst.mkdir()
        self._chown(dst.parent, dst)

    def _move_filestore(self, src: Path, dst: Path) -> None:
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            os.replace(src, dst)
        else:
            dst.mkdir()
        self._chown(dst.parent, dst)


def run(ctx: DeployContext) -> StepResult:
    """The database step of a deploy: the container spec, then the database built or migrated (DatabaseStep)."""
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    container_spec = _container_spec(ctx)
    st.container_spec = container_spec
    step = DatabaseStep(project=p.project, host=p.host, runtime=p.runtime, secrets=p.secrets,
                        spec=spec, previous=ctx.previous, container_spec=container_spec, owner=need(st.owner, "owner"),
                        image_id=need(st.image_id, "image_id"), external=st.external if st.external is not None else [],
                        progress=lambda msg: p.progress(spec.name, "database", "start", msg))
    try:
        out = step.run()
    finally:
        # Even a failed step may have taken the pre-deploy backup: record it with the failure.
        st.pre_deploy_backup = step.backup
        st.database_step = step
    ctx.report.modules = out.modules.to_json() if out.modules is not None else None
    st.data = out.data
    st.working_copy = out.working_copy
    return StepResult(out.result, out.detail)


def _container_spec(ctx: DeployContext) -> dict[str, Any]:
    p, st = ctx.platform, ctx.state
    doc: dict[str, Any] = json.loads(fill(ctx.rendered["container.json"], platform_values(ctx)))
    host_cpus = p.host_cpus()
    for c in doc["containers"]:
        c["image"] = need(st.image, "image")
        c["config_digest"] = st.config_digest
        if c.get("cpus") and c["cpus"] > host_cpus:
            # The engine refuses a limit above the host's CPUs; the tier's request is recorded
            # in the plan and the limit becomes "all of this host".
            note = f"{c['role']} CPU limit {c['cpus']:g} capped to the host's {host_cpus}"
            st.notes.append(note)
            c["cpus"] = float(host_cpus)
    return doc
