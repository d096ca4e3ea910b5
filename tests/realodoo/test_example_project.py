"""The bundled example project (examples/build_example_repo.py, the demo's repository) is correct Odoo 19:
on real Odoo, every addon of every head installs or updates and its tests pass, under real access rules
(the tests act as a salesman and as a sales manager).

Its tests run where the platform runs them: in dev, feature and preview environments, which have demo
data. So one database, copied from the shared template of sale_management with demo data, takes the heads
in turn, the way a developer's pushes would: main (install acme_sale and acme_website, which brings
website), feature/crm-dashboard (install acme_crm_dashboard, which brings crm), then feature/Invoice-Layout,
release/1.0, develop and pull request 7 (each an update of acme_sale). One install of each Odoo app the
example needs, and a few small updates; the runs are sequential.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from reconciler.core import odoo_log
from tests.example_repo import build_example
from tests.realodoo.conftest import RealOdoo

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

TEMPLATE_MODULES = ("sale_management",)
TAGS = "/acme_sale,/acme_website,/acme_crm_dashboard"
INSTALL_TIMEOUT_S = 1800  # website and crm on a loaded 2-core machine: minutes, bounded
UPDATE_TIMEOUT_S = 900

# (ref, Odoo arguments, acme_sale's version after it); order matters: each head is a push after the previous.
HEADS: list[tuple[str, tuple[str, ...], str]] = [
    ("refs/heads/main", ("-i", "acme_sale,acme_website"), "19.0.1.0.0"),
    # with -i/-u, Odoo runs the post-install tests of the modules of that run only: -u acme_sale runs its tests
    ("refs/heads/feature/crm-dashboard", ("-i", "acme_crm_dashboard", "-u", "acme_sale"), "19.0.1.0.0"),
    ("refs/heads/feature/Invoice-Layout", ("-u", "acme_sale"), "19.0.1.0.0"),
    ("refs/heads/release/1.0", ("-u", "acme_sale"), "19.0.1.1.0"),
    ("refs/heads/develop", ("-u", "acme_sale"), "19.0.1.2.0"),
    ("refs/pull/7/head", ("-u", "acme_sale"), "19.0.1.2.0"),
]


def export_addons(repo: pygit2.Repository, commit: str, dest: Path) -> Path:
    """The addons folder of one commit, written out (what the platform mounts at /mnt/extra-addons)."""

    def write(tree: pygit2.Tree, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for entry in tree:
            if entry.type_str == "tree":
                write(repo[entry.id], path / entry.name)
            else:
                (path / entry.name).write_bytes(repo[entry.id].data)

    write(repo[repo[commit].tree["addons"].id], dest)
    dest.chmod(0o755)
    return dest


def module_states(real_odoo: RealOdoo, db: str) -> dict[str, tuple[str, str | None]]:
    with real_odoo.connect(db) as conn:
        rows = conn.execute("SELECT name, state, latest_version FROM ir_module_module "
                            "WHERE name LIKE 'acme\\_%%' OR name IN ('website', 'crm')").fetchall()
    return {name: (state, version) for name, state, version in rows}


def test_every_head_of_the_example_installs_and_its_tests_pass_on_real_odoo(
        real_odoo: RealOdoo, odoo_db: Callable[..., str], tmp_path: Path) -> None:
    refs = build_example(tmp_path / "acme.git", bare=True, oca_dest=tmp_path / "oca-web.git")
    repo = pygit2.Repository(str(tmp_path / "acme.git"))
    db = odoo_db(TEMPLATE_MODULES, with_demo=True)
    crm_addon: Path | None = None
    timings: list[str] = []
    for ref, args, version in HEADS:
        addons = export_addons(repo, refs[ref], tmp_path / ref.replace("/", "_") / "addons")
        if crm_addon is None and (addons / "acme_crm_dashboard").is_dir():
            crm_addon = addons / "acme_crm_dashboard"
        elif crm_addon is not None and not (addons / "acme_crm_dashboard").exists():
            # installed by the crm head; the other heads do not carry it, and an installed module
            # missing from the addons path is an error of its own
            shutil.copytree(crm_addon, addons / "acme_crm_dashboard")
        run = real_odoo.run(*args, "--test-enable", "--test-tags", TAGS, "--stop-after-init", "--workers", "0",
                            "--http-port", "8070", "--max-cron-threads", "0", db=db, addons=addons,
                            timeout=INSTALL_TIMEOUT_S if args[0] == "-i" else UPDATE_TIMEOUT_S, check=False)
        timings.append(f"{ref} {' '.join(args)}: {run.seconds:.0f} s")
        summary = odoo_log.parse(run.output)
        what = f"{ref}: odoo {' '.join(args)} --test-tags {TAGS}"
        assert run.exit_code == 0, (f"{what} exited {run.exit_code} after {run.seconds:.0f} s: "
                                    f"{summary.headline()}\n{odoo_log.excerpt(run.output, 6000)}")
        assert summary.failures == () and summary.first_error is None, (
            f"{what}: {summary.headline()}\n{odoo_log.excerpt(run.output, 6000)}")
        # acme_sale's two tests ran (a tag matching nothing would pass with 0 tests)
        assert summary.counts is not None and summary.counts[:2] == (0, 0) and summary.counts[2] >= 2, (
            what, summary.counts, run.output[-3000:])
        assert "Starting TestAcmeSaleOrder.test_small_order_confirms_without_approval" in run.output
        states = module_states(real_odoo, db)
        assert states["acme_sale"] == ("installed", version), (what, states)
        assert states["acme_website"][0] == "installed" and states["website"][0] == "installed", (what, states)
        if crm_addon is not None:
            assert states["acme_crm_dashboard"][0] == "installed" and states["crm"][0] == "installed", states
    assert crm_addon is not None, "no head carries acme_crm_dashboard"
    with real_odoo.connect(db) as conn:  # develop's new field reached the database
        assert conn.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'sale_order' "
                            "AND column_name = 'acme_customer_deadline'").fetchone() == (1,)
    print("\n".join(timings))
