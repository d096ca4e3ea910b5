"""The Odoo command lines a deploy runs (install, update, tests), per Odoo version.

Odoo 19 loads no demo data unless `--with-demo`; 17.0 and 18.0 load it unless `--without-demo=all`.
Demo data only ever loads into a new database, so updates carry no demo flag. Tests run threaded
(`--workers 0`: Odoo warns that tests in prefork mode can fail, and its HTTP test cases need the
threaded server), with no cron thread touching the database under test, on an HTTP port of their
own, and stop after the run (implied by `--test-enable` from 19 on, not before).
"""

from __future__ import annotations

TEST_HTTP_PORT = "8070"


def install_command(db: str, modules: list[str], demo: bool, odoo_version: str) -> list[str]:
    cmd = ["odoo", "-d", db, "-i", ",".join(modules or ["base"]), "--stop-after-init", "--no-http"]
    if demo and odoo_version not in ("17.0", "18.0"):
        cmd.append("--with-demo")
    elif not demo and odoo_version in ("17.0", "18.0"):
        cmd.append("--without-demo=all")
    return cmd


def update_command(db: str, install: list[str], update: list[str]) -> list[str]:
    cmd = ["odoo", "-d", db, "--stop-after-init", "--no-http"]
    if install:
        cmd += ["-i", ",".join(install)]
    if update:
        cmd += ["-u", ",".join(update)]
    return cmd


def run_tests_command(db: str, tags: str | None) -> list[str]:
    """`tags` None: Odoo's default selection (every installed module's standard tests)."""
    cmd = ["odoo", "-d", db, "--test-enable", "--stop-after-init", "--workers", "0", "--max-cron-threads", "0",
           "--http-port", TEST_HTTP_PORT]
    if tags is not None:
        cmd += ["--test-tags", tags]
    return cmd
