"""Benchmark: a new preview/dev environment from a template database vs a fresh install of the same modules.

    python bench/bench_preview.py [--runs 3] [--json]

Needs `bash scripts/services.sh start` and .work/services.env. Both sides run in one process on the same
host through the real Applier (Terraform, Docker, PostgreSQL, Caddy; Odoo is the stand-in), on new
feature branches of the example project (modules: its .odooops.yaml list and their dependencies):

  fresh     -- ODOOOPS_TEMPLATE_CAP_COUNT=0: `odoo -i <modules>` into the env's new database
  seed      -- the first env with templates on: the fresh install plus keeping it as the template
  template  -- later envs: FILE_COPY clone of the template + ownership + new uuid/secret + linked filestore
               (+ `-u` of modules changed since the template's commit: none here)

With --modules N (default 40) a base branch adds N generated addons to the example (each: 12 tables
with indexes and ~5,000 rows of data in data/schema.sql + data/data.sql, which the stand-in runs at
install as Odoo loads a module's models and data), so the fresh install does an amount of database
work closer to a real Odoo install of a business module set (hundreds of tables, ~10^5 rows) than the
stand-in's near-empty example modules; --modules 0 measures the example's modules as they are.

With --real the envs run the real Odoo 19 image `odoo:19.0` (build it with `odooops image build`)
instead of the stand-in, on the example's modules as they are (no generated addons): the fresh side is
then a real `odoo -i sale_management,acme_sale,acme_website --with-demo --stop-after-init` on the env's
empty database, the template side a copy of the seed's real database. --fresh-runs sets how many fresh
installs to time (each takes minutes on real Odoo; default: --runs).

Reported per side: the database step's seconds (median of --runs) and the whole deploy (secrets ->
health, including the env's tests); the ratio fresh/template of the database step is the figure
(target >= 10x).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_plan import bench_policy  # noqa: E402
from bench.harness import example_host  # noqa: E402
from reconciler.controller.apply import Applier, EnvReport  # noqa: E402
from reconciler.controller.planning import Project, compute_plan  # noqa: E402
from reconciler.core.model import Action, ActionKind  # noqa: E402
from reconciler.data import mail  # noqa: E402
from reconciler.data.templates import TemplateRegistry  # noqa: E402
from reconciler.executors.postgres import Postgres  # noqa: E402
from reconciler.platform.host import HostSettings  # noqa: E402
from tests.example_repo import git  # noqa: E402
from tests.services import load_services_env  # noqa: E402


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _step(rep: EnvReport, name: str) -> float:
    return next(s.seconds for s in rep.steps if s.name == name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modules", type=int, default=40, help="generated addons added to the module set")
    ap.add_argument("--tables", type=int, default=12, help="tables per generated addon")
    ap.add_argument("--rows", type=int, default=5000, help="data rows per generated addon")
    ap.add_argument("--real", action="store_true", help="real Odoo 19 (image odoo:19.0), the example's modules")
    ap.add_argument("--fresh-runs", type=int, default=None, help="fresh installs to time (default: --runs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.real:
        args.modules = 0  # generated addons are SQL files only the stand-in runs at install
    fresh_runs = args.runs if args.fresh_runs is None else args.fresh_runs
    port = _free_port(load_services_env()["ODOOOPS_PG_HOST_FROM_CONTAINERS"])
    extra = {"ODOOOPS_MAIL_CATCHER_PORT": str(port)}
    if args.real:
        extra["ODOOOPS_IMAGE_OVERRIDES"] = ""  # the project's own image, odoo:19.0, must be on the engine
    tmp, host, work = example_host("bench-preview-", extra)
    catcher = f"odooops-mail-catcher-bench-{os.urandom(3).hex()}"
    policy = bench_policy(tmp)
    tag = os.urandom(3).hex()
    base = "develop"
    if args.modules:
        base = f"bench/modules-{tag}"
        add_modules(work, base, args.modules, args.tables, args.rows)

    def project() -> Project:
        return Project.open(str(work), state_dir=tmp / "state", policy_file=policy)

    def deploy(name: str) -> dict[str, Any]:
        branch = f"feature/p{tag}-{name}"
        git(work, "branch", branch, base)
        t0 = time.perf_counter()
        report = Applier(project(), host, mail_catcher_name=catcher).apply(compute_plan(project(), branches=[branch]))
        total = time.perf_counter() - t0
        [rep] = report.environments
        if rep.result != "ok":
            raise SystemExit(json.dumps(rep.to_json(), indent=1)[:4000])
        detail = next(s.detail for s in rep.steps if s.name == "database")
        return {"env": rep.env, "database_s": _step(rep, "database"), "deploy_s": total, "detail": detail,
                "modules": rep.modules}

    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {"fresh": [], "seed": [], "template": []}
    try:
        os.environ["ODOOOPS_TEMPLATE_CAP_COUNT"] = "0"
        for i in range(fresh_runs):
            results["fresh"].append(deploy(f"fresh{i}"))
        del os.environ["ODOOOPS_TEMPLATE_CAP_COUNT"]
        results["seed"].append(deploy("seed"))
        for i in range(args.runs):
            results["template"].append(deploy(f"tpl{i}"))
        for row in results["template"]:
            assert "cloned from template" in row["detail"], row["detail"]
        templates = TemplateRegistry(host.state_dir).all()
    finally:
        cleanup(project(), host, catcher)
    load_after = os.getloadavg()

    def med(side: str, key: str) -> float:
        return round(statistics.median(r[key] for r in results[side]), 3)

    summary = {
        "odoo": "real odoo:19.0" if args.real else "stand-in", "runs": args.runs, "fresh_runs": fresh_runs,
        "modules": results["fresh"][0]["modules"]["install"] if results["fresh"][0]["modules"] else [],
        "generated_modules": args.modules, "tables_per_module": args.tables, "rows_per_module": args.rows,
        "fresh_database_s": med("fresh", "database_s"), "template_database_s": med("template", "database_s"),
        "seed_database_s": med("seed", "database_s"),
        "fresh_deploy_s": med("fresh", "deploy_s"), "template_deploy_s": med("template", "deploy_s"),
        "template_bytes": templates[0].size_bytes if templates else None,
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(), "raw": results,
    }
    summary["database_speedup"] = round(summary["fresh_database_s"] / summary["template_database_s"], 1)
    summary["deploy_speedup"] = round(summary["fresh_deploy_s"] / summary["template_deploy_s"], 2)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        mods = summary["modules"]
        gen = f" + {args.modules} generated addons x {args.tables} tables, {args.rows} rows" if args.modules else ""
        print(f"odoo: {summary['odoo']}")
        print(f"modules installed: {len(mods)} ({', '.join(m for m in mods if not m.startswith('bench_mod_'))}{gen})")
        print(f"{'':28}{'fresh install':>16}{'from template':>16}{'ratio':>8}")
        print(f"{'database step (median s)':28}{summary['fresh_database_s']:>16.3f}"
              f"{summary['template_database_s']:>16.3f}{summary['database_speedup']:>7.1f}x")
        print(f"{'whole deploy (median s)':28}{summary['fresh_deploy_s']:>16.3f}"
              f"{summary['template_deploy_s']:>16.3f}{summary['deploy_speedup']:>7.2f}x")
        print(f"seed env (install + keep template): database step {summary['seed_database_s']:.3f} s; "
              f"template size {summary['template_bytes']} bytes")
        print(f"load average before {summary['load_before']} after {summary['load_after']} ({os.cpu_count()} cpus)")
    return 0


def add_modules(work: Path, branch: str, count: int, tables: int, rows: int) -> None:
    """Commit `count` generated addons on a new branch from develop and add them to .odooops.yaml's modules."""
    git(work, "checkout", "-q", "-b", branch, "develop")
    names = [f"bench_mod_{i:03d}" for i in range(count)]
    for n, name in enumerate(names):
        d = work / "addons" / name
        (d / "data").mkdir(parents=True)
        deps = ["base"] if n == 0 else ["base", names[n - 1]]
        (d / "__manifest__.py").write_text(repr({"name": name, "version": "1.0", "depends": deps,
                                                 "license": "LGPL-3", "installable": True}) + "\n")
        (d / "__init__.py").write_text("")
        schema, data = [], []
        for k in range(tables):
            tbl = f"{name}_t{k:02d}"
            schema.append(f"CREATE TABLE {tbl} (id serial PRIMARY KEY, name varchar NOT NULL, code varchar, "
                          f"partner_id integer, amount numeric, note text, active boolean DEFAULT true, "
                          f"create_date timestamp DEFAULT now(), write_date timestamp DEFAULT now());\n"
                          f"CREATE INDEX ON {tbl} (name);\nCREATE INDEX ON {tbl} (partner_id);\n")
            data.append(f"INSERT INTO {tbl} (name, code, partner_id, amount, note) SELECT 'rec ' || g, "
                        f"md5(g::text), g % 97, g * 1.5, repeat('x', 80) FROM generate_series(1, "
                        f"{max(1, rows // tables)}) g;\n")
        (d / "data" / "schema.sql").write_text("".join(schema))
        (d / "data" / "data.sql").write_text("".join(data))
    conf = work / ".odooops.yaml"
    text = conf.read_text()
    old = "modules: [sale_management, acme_sale, acme_website]"
    assert old in text, "the example's module list moved"
    conf.write_text(text.replace(old, "modules: [sale_management, acme_sale, acme_website, " + ", ".join(names) + "]"))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", f"bench: {count} generated addons")
    git(work, "checkout", "-q", "develop")


def cleanup(project: Project, host: HostSettings, catcher: str) -> None:
    applier = Applier(project, host, mail_catcher_name=catcher)
    pg = Postgres.from_host(host)
    for t in TemplateRegistry(host.state_dir).all():
        pg.drop(t.db)
    for name, entry in project.store.entries().items():
        applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                tier=entry.get("tier"), reason="bench cleanup", old_commit=entry.get("commit")))
    mail.remove_catcher(applier.runtime, catcher)


if __name__ == "__main__":
    sys.exit(main())
