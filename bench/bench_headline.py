"""Benchmark (the headline): `git push` of a new branch -> a preview serving a neutralized, masked copy of a
real Odoo 19 production of --size-mb (database + filestore), healthy; the first preview and later ones.

    python bench/bench_headline.py [--size-mb 1024] [--previews 3] [--json]

Needs `bash scripts/services.sh start`, .work/services.env and the image `odoo:19.0` on the engine
(`odooops image build`). Everything runs through the real Applier (Terraform, Docker, PostgreSQL 15, Caddy,
real Odoo 19) on a small project of its own: `contacts` plus one tiny addon with one test, feature branches
deployed as preview-style environments (tier ephemeral) with `data: {source: production, neutralize: true,
mask: true}`:

  1. production: push `main`, apply (a real `odoo -i contacts,acme_note`);
  2. grow production to --size-mb with bench/realdata.py (contacts, messages, attachments + filestore files);
  3. a verified backup of production (as its schedule would have made; timed, not part of a preview);
  4. previews: for each, `git push` of a new branch, then what the daemon does on the push (fetch, plan,
     apply) until `/web/health` passes through the router. The first builds the masked production snapshot;
     later ones copy it.

Reported per preview: push -> healthy seconds, and where the time goes (each apply step, and the database
step's own phases: copy, neutralize, mask, scan, ...). Each preview is then checked: it is neutralized, and
a production contact's e-mail is in none of its partners.

Takes the shared lock on the environment name `production` (.work/test-locks), as the tests that deploy a
production do: one database named production per PostgreSQL server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.realdata import conninfo_from_env, grow  # noqa: E402
from reconciler.controller.apply import Applier, ApplyReport  # noqa: E402
from reconciler.controller.planning import Project, compute_plan  # noqa: E402
from reconciler.core.model import Action, ActionKind  # noqa: E402
from reconciler.data import mail  # noqa: E402
from reconciler.data.templates import TemplateRegistry  # noqa: E402
from reconciler.executors.postgres import Postgres  # noqa: E402
from reconciler.platform.env_lock import env_lock  # noqa: E402
from reconciler.platform.host import HostSettings  # noqa: E402
from tests.example_repo import git  # noqa: E402
from tests.services import load_services_env  # noqa: E402

SHARED_LOCKS = ROOT / ".work" / "test-locks"
IMAGE = "odoo:19.0"

CONFIG = """\
version: 1
odoo:
  version: "19.0"
addons:
  paths: [addons]
modules: [contacts, acme_note]
tests:
  tags: "/acme_note"
mail_catcher: true
tiers:
  ephemeral:
    data: {source: production, neutralize: true, mask: true}
"""
ADDON = {
    "addons/acme_note/__manifest__.py": repr({
        "name": "ACME Notes", "version": "19.0.1.0.0", "license": "LGPL-3", "depends": ["contacts"],
        "data": ["security/ir.model.access.csv"], "installable": True}) + "\n",
    "addons/acme_note/__init__.py": "from . import models\n",
    "addons/acme_note/models/__init__.py": "from . import acme_note\n",
    "addons/acme_note/models/acme_note.py": (
        "from odoo import fields, models\n\n\n"
        "class AcmeNote(models.Model):\n"
        "    _name = \"acme.note\"\n"
        "    _description = \"ACME Note\"\n\n"
        "    name = fields.Char(required=True)\n"
        "    partner_id = fields.Many2one(\"res.partner\")\n"),
    "addons/acme_note/security/ir.model.access.csv": (
        "id,name,model_id:id,group_id:id,perm_read,perm_write,perm_create,perm_unlink\n"
        "access_acme_note_user,acme.note.user,model_acme_note,base.group_user,1,1,1,1\n"),
    "addons/acme_note/tests/__init__.py": "from . import test_acme_note\n",
    "addons/acme_note/tests/test_acme_note.py": (
        "from odoo.tests import TransactionCase, tagged\n\n\n"
        "@tagged(\"post_install\", \"-at_install\")\n"
        "class TestAcmeNote(TransactionCase):\n"
        "    def test_note_on_a_partner(self):\n"
        "        partner = self.env[\"res.partner\"].create({\"name\": \"Note Owner\"})\n"
        "        note = self.env[\"acme.note\"].create({\"name\": \"hello\", \"partner_id\": partner.id})\n"
        "        self.assertEqual(note.partner_id, partner)\n"),
}


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def build_project(tmp: Path) -> tuple[Path, Path]:
    """A bare remote (what the platform watches) and a work clone with `main` pushed; (remote, work)."""
    remote, work = tmp / "remote.git", tmp / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for path, text in {".odooops.yaml": CONFIG, **ADDON}.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text, encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "contacts and acme_note")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "origin", "main")
    return remote, work


class Bench:
    def __init__(self, tmp: Path, host: HostSettings, remote: Path, work: Path, catcher: str) -> None:
        self.tmp, self.host, self.remote, self.work, self.catcher = tmp, host, remote, work, catcher
        self.pg = Postgres.from_host(host)

    def project(self) -> Project:
        return Project.open(self.remote.as_uri(), state_dir=self.host.state_dir)

    def apply(self, branch: str, strict: bool = True) -> ApplyReport:
        project = self.project()
        report = Applier(project, self.host, mail_catcher_name=self.catcher).apply(
            compute_plan(project, branches=[branch]))
        bad = [e for e in report.environments if e.result != "ok"]
        if not report.environments or (strict and bad):
            raise SystemExit(json.dumps([e.to_json() for e in bad] or "nothing applied", indent=1)[:6000])
        return report

    def push_to_healthy(self, branch: str) -> dict[str, Any]:
        git(self.work, "branch", branch, "main")
        t0 = time.perf_counter()
        git(self.work, "push", "-q", "origin", branch)
        pushed = time.perf_counter()
        report = self.apply(branch, strict=False)
        total = time.perf_counter() - t0
        [rep] = report.environments
        entry = self.project().store.entries()[rep.env]
        data = entry.get("data") or {}
        row = {"branch": branch, "env": rep.env, "result": rep.result, "push_to_healthy_s": round(total, 2),
               "git_push_s": round(pushed - t0, 2), "fetch_plan_s": round(total - (pushed - t0) - report.seconds, 2),
               "steps": {s.name: round(s.seconds, 2) for s in rep.steps},
               "database_phases": data.get("timings") or {},
               "database_detail": next((s.detail for s in rep.steps if s.name == "database"), ""),
               "from_snapshot": bool(data.get("snapshot"))}
        if rep.result != "ok":
            # Reported as measured: a preview that never became healthy has no push -> healthy time.
            row["error"] = (rep.error or {}).get("message", "")[:600]
            row["checks"] = {"neutralized": None, "production_email_found": None, "partners": None}
            return row
        row["checks"] = self.check_preview(rep.env)
        return row

    def check_preview(self, env: str) -> dict[str, Any]:
        """The preview serves a neutralized copy in which a production contact's e-mail is nowhere in res_partner."""
        with self.pg.connect("production") as prod:
            row = prod.execute("SELECT email FROM res_partner WHERE email LIKE '%%@customer-%%' "
                               "ORDER BY id DESC LIMIT 1").fetchone()
        with self.pg.connect(env) as conn:
            neutral = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
                                   ).fetchone()
            leaked = conn.execute("SELECT count(*) FROM res_partner WHERE email = %s", (row[0],)).fetchone() if row \
                else (None,)
            partners = conn.execute("SELECT count(*) FROM res_partner").fetchone()
        return {"neutralized": bool(neutral and neutral[0] in ("True", "true", "1")),
                "production_email_found": int(leaked[0]) if leaked and leaked[0] is not None else None,
                "partners": int(partners[0]) if partners else 0}

    def cleanup(self) -> None:
        project = self.project()
        applier = Applier(project, self.host, mail_catcher_name=self.catcher)
        for t in TemplateRegistry(self.host.state_dir).all():
            self.pg.drop(t.db)
        for name, entry in project.store.entries().items():
            if name == "production":
                continue
            for db in self.pg.list_databases("oo_"):
                with self.pg.connect() as conn:
                    owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                         (db,)).fetchone()
                if owner and owner[0] == name:
                    self.pg.drop(db)
            applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                    tier=entry.get("tier"), reason="bench cleanup", old_commit=entry.get("commit")))
        mail.remove_catcher(applier.runtime, self.catcher)
        if "production" in project.store.entries():
            # Terraform refuses to drop production (by design): take it down by hand.
            applier.runtime.remove("production")
            applier.router.remove_route("production")
            self.pg.drop("production")
            with self.pg.connect() as conn:
                if self.pg.role_exists("production"):
                    conn.execute("DROP OWNED BY production")
                    conn.execute("DROP ROLE production")


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = load_services_env()
    tmp = Path(tempfile.mkdtemp(prefix="bench-headline-"))
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp / "secret.key")
    env["ODOOOPS_IMAGE_OVERRIDES"] = ""
    env["ODOOOPS_MAIL_CATCHER_PORT"] = str(_free_port(env["ODOOOPS_PG_HOST_FROM_CONTAINERS"]))
    host = HostSettings.from_env(tmp / "state", env)
    remote, work = build_project(tmp)
    bench = Bench(tmp, host, remote, work, f"odooops-mail-catcher-bench-{uuid.uuid4().hex[:6]}")
    tag = uuid.uuid4().hex[:6]
    out: dict[str, Any] = {"size_mb_target": args.size_mb, "cpus": os.cpu_count(),
                           "load_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        with env_lock(SHARED_LOCKS, "production", f"bench/bench_headline.py pid {os.getpid()}", wait_s=1800):
            if bench.pg.exists("production"):
                raise SystemExit("a database named production exists on the shared server (a test or the demo "
                                 "runs): try again when it is gone")
            try:
                t0 = time.perf_counter()
                report = bench.apply("main")
                out["production_init_s"] = round(time.perf_counter() - t0, 2)
                out["production_steps"] = {s.name: round(s.seconds, 2) for s in report.environments[0].steps}
                progress = (lambda m: print(m, file=sys.stderr)) if not args.quiet else (lambda _m: None)
                growth = grow(conninfo_from_env(env), "production", host.filestore_dir("production"),
                              int(args.size_mb * 1e6), progress=progress)
                out["growth"] = growth.to_json()
                if args.backup:
                    from reconciler.service.data import DataService

                    t0 = time.perf_counter()
                    backup = DataService(bench.project(), host).backup("production", verify=True)
                    out["backup"] = {"seconds": round(time.perf_counter() - t0, 2), "id": backup.get("id"),
                                     "verified": backup.get("ok", backup.get("verified"))}
                out["previews"] = []
                for i in range(args.previews):
                    row = bench.push_to_healthy(f"feature/hl-{tag}-{i}")
                    out["previews"].append(row)
                    print(f"preview {i}: {row['result']} after {row['push_to_healthy_s']:.1f} s "
                          f"{row.get('error', '')}", file=sys.stderr)
                    if row["result"] != "ok":
                        break  # the next one would fail the same way
            finally:
                bench.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    later = [p["push_to_healthy_s"] for p in out["previews"][1:] if p["result"] == "ok"]
    first = out["previews"][0] if out["previews"] else None
    out["first_s"] = first["push_to_healthy_s"] if first and first["result"] == "ok" else None
    out["later_median_s"] = round(statistics.median(later), 2) if later else None
    return out


def print_table(out: dict[str, Any]) -> None:
    g = out["growth"]
    print(f"production: {g['total_bytes'] / 1e6:,.0f} MB (database {g['database_bytes'] / 1e6:,.0f} MB + filestore "
          f"{g['filestore_bytes'] / 1e6:,.0f} MB; {g['partners']:,} contacts, {g['messages']:,} messages, "
          f"{g['attachments']:,} attachments added in {g['seconds']:.0f} s); init {out['production_init_s']:.0f} s")
    if "backup" in out:
        print(f"verified backup of production: {out['backup']['seconds']:.1f} s")
    steps = sorted({k for p in out["previews"] for k in p["steps"]}, key=lambda k: list(
        out["previews"][0]["steps"]).index(k) if k in out["previews"][0]["steps"] else 99)
    phases = sorted({k for p in out["previews"] for k, v in p["database_phases"].items()
                     if isinstance(v, int | float)})
    head = f"{'':24}" + "".join(f"{('first' if i == 0 else f'later {i}'):>10}" for i in range(len(out["previews"])))
    print(head)
    print(f"{'result':24}" + "".join(f"{p['result']:>10}" for p in out["previews"]))
    print(f"{'push -> healthy (s)':24}" + "".join(f"{p['push_to_healthy_s']:>10.1f}" for p in out["previews"]))
    print(f"{'  git push':24}" + "".join(f"{p['git_push_s']:>10.2f}" for p in out["previews"]))
    print(f"{'  fetch + plan':24}" + "".join(f"{p['fetch_plan_s']:>10.2f}" for p in out["previews"]))
    for s in steps:
        print(f"{'  ' + s:24}" + "".join(f"{p['steps'].get(s, 0):>10.2f}" for p in out["previews"]))
        if s == "database":
            for ph in phases:
                print(f"{'    ' + ph:24}" + "".join(f"{float(p['database_phases'].get(ph, 0)):>10.2f}"
                                                    for p in out["previews"]))
    print(f"{'neutralized':24}" + "".join(f"{p['checks']['neutralized']!s:>10}" for p in out["previews"]))
    print(f"{'prod e-mail found':24}" + "".join(f"{p['checks']['production_email_found']!s:>10}"
                                               for p in out["previews"]))
    for i, p in enumerate(out["previews"]):
        if p.get("error"):
            print(f"preview {i} failed: {p['error']}")
    print(f"first {out['first_s']} s (goal <= 90), later median {out['later_median_s']} s (goal <= 10); "
          f"load {out['load_before']} -> {out['load_after']} ({out['cpus']} cpus)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=1024.0, help="production's database + filestore (MB)")
    ap.add_argument("--previews", type=int, default=3, help="previews in a row (the first builds the snapshot)")
    ap.add_argument("--no-backup", dest="backup", action="store_false",
                    help="skip the verified backup of production before the previews")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = run(args)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print_table(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
