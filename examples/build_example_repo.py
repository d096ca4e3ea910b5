"""Build the deterministic example Odoo project repository (same commit ids on every run)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, FileMode

AUTHOR = ("OdooOps Example", "example@odooops.dev")
EPOCH = 1_735_722_000  # 2025-01-01 09:00 UTC; commit n is n hours later
TZ_OFFSET = 60  # minutes east of UTC (CET)

CONFIG = """\
# yaml-language-server: $schema=https://odooops.dev/schemas/odooops.schema.json
version: 1
odoo:
  version: "19.0"
addons:
  paths: [addons]
  external:
    - name: oca-web
      url: https://github.com/OCA/web.git
      ref: "19.0"
      commit: @OCA_WEB_COMMIT@
requirements: requirements.txt
modules: [sale_management, acme_sale, acme_website]
tests:
  tags: "/acme_sale,/acme_website"
mail_catcher: true
tiers:
  staging:
    data: {source: production, neutralize: true, mask: true}
environments:
  production:
    workers: 12
    backup_schedule: "0 */3 * * *"
    resource_limits:
      cpu: "4000m"
      memory: "8Gi"
"""
CONFIG_DEVELOP = CONFIG + "  develop:\n    workers: 3\n"
CONFIG_CRM = CONFIG.replace(
    "modules: [sale_management, acme_sale, acme_website]",
    "modules: [sale_management, acme_sale, acme_website, acme_crm_dashboard]",
)

README = """\
# ACME Odoo project

Custom Odoo 19.0 addons for ACME, deployed by OdooOps from this repository.

- `addons/acme_sale`: sales channels on quotations and a manager approval above a threshold.
- `addons/acme_website`: a public "Our stores" page.
- `.odooops.yaml`: what OdooOps builds for each branch (see https://odooops.dev/docs).

Branches: `main` is production, `release/*` staging, `develop` and `feature/*` development.
"""


def manifest(name: str, version: str, summary: str, depends: list[str], data: list[str],
             category: str) -> str:
    lines = "".join(f'        "{d}",\n' for d in data)
    deps = ", ".join(f'"{d}"' for d in depends)
    return f"""{{
    "name": "{name}",
    "version": "{version}",
    "summary": "{summary}",
    "category": "{category}",
    "author": "ACME Corp",
    "website": "https://www.example.com",
    "license": "LGPL-3",
    "depends": [{deps}],
    "data": [
{lines}    ],
    "installable": True,
    "application": False,
}}
"""


SALE_DATA = [
    "security/ir.model.access.csv",
    "views/sale_order_views.xml",
    "views/report_invoice_templates.xml",
]


def sale_manifest(version: str) -> str:
    return manifest("ACME Sales Customisations", version,
                    "Sales channels and manager approval for large quotations",
                    ["sale_management"], SALE_DATA, "Sales/Sales")


SALE_CHANNEL = '''\
from odoo import fields, models


class AcmeSaleChannel(models.Model):
    _name = "acme.sale.channel"
    _description = "ACME Sales Channel"
    _order = "sequence, name"

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
'''

SALE_ORDER = '''\
from odoo import api, fields, models
from odoo.exceptions import UserError

APPROVAL_THRESHOLD = 10000.0


class SaleOrder(models.Model):
    _inherit = "sale.order"

    acme_channel_id = fields.Many2one("acme.sale.channel", string="Sales Channel", index=True)
    acme_requires_approval = fields.Boolean(
        string="Requires Approval",
        compute="_compute_acme_requires_approval",
        store=True,
    )
{extra}
    @api.depends("amount_total")
    def _compute_acme_requires_approval(self):
        for order in self:
            order.acme_requires_approval = order.amount_total > APPROVAL_THRESHOLD

    def action_confirm(self):
        if not self.env.user.has_group("sales_team.group_sale_manager"):
            blocked = self.filtered("acme_requires_approval")
            if blocked:
                raise UserError(self.env._(
                    "Orders above %(limit)s need a sales manager to confirm them: %(orders)s",
                    limit=APPROVAL_THRESHOLD,
                    orders=", ".join(blocked.mapped("name")),
                ))
        return super().action_confirm()
'''
DEADLINE_FIELD = '''    acme_customer_deadline = fields.Date(
        string="Customer Deadline",
        help="{help}",
        tracking=True,
    )
'''
DEADLINE_HELP = "Date the customer needs the goods by."
DEADLINE_HELP_PR = "Date by which the customer needs the goods delivered; shown on the quotation."

SALE_VIEWS = '''\
<?xml version="1.0" encoding="utf-8"?>
<odoo>
    <record id="view_order_form_inherit_acme_sale" model="ir.ui.view">
        <field name="name">sale.order.form.inherit.acme_sale</field>
        <field name="model">sale.order</field>
        <field name="inherit_id" ref="sale.view_order_form"/>
        <field name="arch" type="xml">
            <field name="payment_term_id" position="after">
                <field name="acme_channel_id" options="{{'no_create': True}}"/>{extra}
                <field name="acme_requires_approval" invisible="1"/>
            </field>
        </field>
    </record>

    <record id="acme_sale_channel_view_list" model="ir.ui.view">
        <field name="name">acme.sale.channel.list</field>
        <field name="model">acme.sale.channel</field>
        <field name="arch" type="xml">
            <list editable="bottom">
                <field name="sequence" widget="handle"/>
                <field name="name"/>
            </list>
        </field>
    </record>

    <record id="acme_sale_channel_action" model="ir.actions.act_window">
        <field name="name">Sales Channels</field>
        <field name="res_model">acme.sale.channel</field>
        <field name="view_mode">list</field>
    </record>

    <menuitem id="acme_sale_channel_menu" action="acme_sale_channel_action"
              parent="sale.menu_sale_config" sequence="40"/>
</odoo>
'''
DEADLINE_VIEW = '\n                <field name="acme_customer_deadline"/>'

INVOICE_REPORT = '''\
<?xml version="1.0" encoding="utf-8"?>
<odoo>
    <template id="report_invoice_document_acme" inherit_id="account.report_invoice_document">
        <xpath expr="//div[hasclass('page')]" position="inside">
{body}
        </xpath>
    </template>
</odoo>
'''
INVOICE_BODY = '            <p class="acme-invoice-thanks">Thank you for buying from ACME.</p>'
INVOICE_BODY_NEW = '''\
            <div class="acme-invoice-footer row mt-4">
                <div class="col-8">Thank you for buying from ACME.</div>
                <div class="col-4 text-end" t-if="o.payment_reference">
                    Please quote <strong t-field="o.payment_reference"/> with your payment.
                </div>
            </div>'''

ACCESS_CSV = """\
id,name,model_id:id,group_id:id,perm_read,perm_write,perm_create,perm_unlink
access_acme_sale_channel_user,acme.sale.channel.user,model_acme_sale_channel,\
sales_team.group_sale_salesman,1,0,0,0
access_acme_sale_channel_manager,acme.sale.channel.manager,model_acme_sale_channel,\
sales_team.group_sale_manager,1,1,1,1
"""

SALE_TESTS = '''\
from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestAcmeSaleOrder(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        quiet = {"no_reset_password": True}  # no signup invitation mail for test users
        cls.salesman = new_test_user(cls.env, login="acme-salesman", name="Sam Salesman",
                                     groups="sales_team.group_sale_salesman", context=quiet)
        cls.manager = new_test_user(cls.env, login="acme-sales-manager", name="Mia Manager",
                                    groups="sales_team.group_sale_manager", context=quiet)
        cls.partner = cls.env["res.partner"].create({"name": "ACME Test Customer"})
        cls.product = cls.env["product.product"].create({"name": "Widget", "list_price": 100.0})
        cls.channel = cls.env["acme.sale.channel"].create({"name": "Web shop"})

    def _order(self, quantity):
        # The salesman's own quotation: a salesman sees and confirms only their own documents.
        return self.env["sale.order"].with_user(self.salesman).create({
            "partner_id": self.partner.id,
            "acme_channel_id": self.channel.id,
            "order_line": [Command.create({
                "product_id": self.product.id,
                "product_uom_qty": quantity,
                "price_unit": 100.0,
            })],
        })

    def test_small_order_confirms_without_approval(self):
        order = self._order(5)
        self.assertEqual(order.user_id, self.salesman)
        self.assertFalse(order.acme_requires_approval)
        order.action_confirm()
        self.assertEqual(order.state, "sale")

    def test_large_order_needs_a_manager(self):
        order = self._order(500)
        self.assertTrue(order.acme_requires_approval)
        with self.assertRaisesRegex(UserError, "need a sales manager"):
            order.action_confirm()
        self.assertEqual(order.state, "draft")
        order.with_user(self.manager).action_confirm()
        self.assertEqual(order.state, "sale")
'''

WEBSITE_CONTROLLER = '''\
from odoo import http
from odoo.http import request


class AcmeStores(http.Controller):
    @http.route("/acme/stores", type="http", auth="public", website=True, sitemap=True)
    def stores(self, **kwargs):
        return request.render("acme_website.stores_page", {})
'''
WEBSITE_TEMPLATES = '''\
<?xml version="1.0" encoding="utf-8"?>
<odoo>
    <template id="stores_page" name="ACME Stores">
        <t t-call="website.layout">
            <div id="wrap" class="oe_structure">
                <section class="container py-5">
                    <h1>Our stores</h1>
                    <p>Visit us in Brussels, Lyon and Rotterdam, Monday to Saturday.</p>
                </section>
            </div>
        </t>
    </template>
</odoo>
'''

CRM_LEAD = '''\
from odoo import api, fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"

    acme_days_open = fields.Integer(string="Days Open", compute="_compute_acme_days_open")

    @api.depends("create_date", "date_closed")
    def _compute_acme_days_open(self):
        now = fields.Datetime.now()
        for lead in self:
            end = lead.date_closed or now
            lead.acme_days_open = (end - lead.create_date).days if lead.create_date else 0
'''
CRM_VIEWS = '''\
<?xml version="1.0" encoding="utf-8"?>
<odoo>
    <record id="crm_lead_view_list_acme_dashboard" model="ir.ui.view">
        <field name="name">crm.lead.list.acme_dashboard</field>
        <field name="model">crm.lead</field>
        <field name="inherit_id" ref="crm.crm_case_tree_view_oppor"/>
        <field name="arch" type="xml">
            <field name="expected_revenue" position="after">
                <field name="acme_days_open" optional="show"/>
            </field>
        </field>
    </record>
</odoo>
'''

INIT_MODELS = "from . import models\n"
SALE_FILES = {
    "addons/acme_sale/__manifest__.py": sale_manifest("19.0.1.0.0"),
    "addons/acme_sale/__init__.py": INIT_MODELS,
    "addons/acme_sale/models/__init__.py": "from . import acme_sale_channel, sale_order\n",
    "addons/acme_sale/models/acme_sale_channel.py": SALE_CHANNEL,
    "addons/acme_sale/models/sale_order.py": SALE_ORDER.format(extra=""),
    "addons/acme_sale/views/sale_order_views.xml": SALE_VIEWS.format(extra=""),
    "addons/acme_sale/views/report_invoice_templates.xml": INVOICE_REPORT.format(
        body=INVOICE_BODY),
    "addons/acme_sale/security/ir.model.access.csv": ACCESS_CSV,
}
SALE_TEST_FILES = {
    "addons/acme_sale/tests/__init__.py": "from . import test_sale_order\n",
    "addons/acme_sale/tests/test_sale_order.py": SALE_TESTS,
}
WEBSITE_FILES = {
    "addons/acme_website/__manifest__.py": manifest(
        "ACME Website", "19.0.1.0.0", "Public page listing the ACME stores", ["website"],
        ["views/templates.xml"], "Website/Website"),
    "addons/acme_website/__init__.py": "from . import controllers\n",
    "addons/acme_website/controllers/__init__.py": "from . import main\n",
    "addons/acme_website/controllers/main.py": WEBSITE_CONTROLLER,
    "addons/acme_website/views/templates.xml": WEBSITE_TEMPLATES,
}
CRM_FILES = {
    "addons/acme_crm_dashboard/__manifest__.py": manifest(
        "ACME CRM Dashboard", "19.0.1.0.0", "How long opportunities stay open", ["crm"],
        ["views/crm_lead_views.xml"], "Sales/CRM"),
    "addons/acme_crm_dashboard/__init__.py": INIT_MODELS,
    "addons/acme_crm_dashboard/models/__init__.py": "from . import crm_lead\n",
    "addons/acme_crm_dashboard/models/crm_lead.py": CRM_LEAD,
    "addons/acme_crm_dashboard/views/crm_lead_views.xml": CRM_VIEWS,
}


def _deadline_order(help_text: str) -> str:
    return SALE_ORDER.format(extra=DEADLINE_FIELD.format(help=help_text))


# (branch, start from branch when new, message, {path: content}), in commit order.
HISTORY: list[tuple[str, str | None, str, dict[str, str]]] = [
    ("main", None, "Initial project layout with OdooOps configuration", {
        "README.md": README, "requirements.txt": "phonenumbers==8.13.40\n",
        ".odooops.yaml": CONFIG}),
    ("main", None, "acme_sale: sales channels and manager approval on large quotations",
     SALE_FILES),
    ("main", None, "acme_sale: tests for the approval threshold", SALE_TEST_FILES),
    ("main", None, "acme_website: add the stores page", WEBSITE_FILES),
    ("release/1.0", "main", "acme_sale: approval applies from the threshold amount itself", {
        "addons/acme_sale/models/sale_order.py": SALE_ORDER.format(extra="").replace(
            "amount_total > APPROVAL_THRESHOLD", "amount_total >= APPROVAL_THRESHOLD")}),
    ("release/1.0", None, "acme_sale: release 19.0.1.1.0", {
        "addons/acme_sale/__manifest__.py": sale_manifest("19.0.1.1.0")}),
    ("develop", "main", "acme_sale: customer deadline on quotations", {
        "addons/acme_sale/models/sale_order.py": _deadline_order(DEADLINE_HELP),
        "addons/acme_sale/views/sale_order_views.xml": SALE_VIEWS.format(extra=DEADLINE_VIEW)}),
    ("develop", None, "acme_sale: bump to 19.0.1.2.0", {
        "addons/acme_sale/__manifest__.py": sale_manifest("19.0.1.2.0")}),
    ("develop", None, "odooops: a develop environment with 3 workers", {
        ".odooops.yaml": CONFIG_DEVELOP}),
    ("feature/crm-dashboard", "main", "acme_crm_dashboard: days open on opportunities",
     CRM_FILES),
    ("feature/crm-dashboard", None, "odooops: install acme_crm_dashboard", {
        ".odooops.yaml": CONFIG_CRM}),
    ("feature/Invoice-Layout", "main", "acme_sale: invoice footer with payment reference", {
        "addons/acme_sale/views/report_invoice_templates.xml": INVOICE_REPORT.format(
            body=INVOICE_BODY_NEW)}),
    ("refs/pull/7/head", "develop", "acme_sale: clearer help on the customer deadline", {
        "addons/acme_sale/models/sale_order.py": _deadline_order(DEADLINE_HELP_PR)}),
]


# A small stand-in for the OCA web repository (branch 19.0), so the example's pinned external
# addons resolve offline: `--oca-dest DIR` writes it, and ODOOOPS_GIT_MIRRORS maps the GitHub URL
# to it. Its commit id is fixed like every other here, so .odooops.yaml pins the real id.
OCA_WEB_FILES = {
    "README.md": "# OCA web (example subset built by OdooOps' example script)\n",
    "web_environment_ribbon/__init__.py": "",
    "web_environment_ribbon/__manifest__.py": (
        '{\n    "name": "Web Environment Ribbon",\n    "version": "19.0.1.0.0",\n'
        '    "category": "Web",\n    "license": "AGPL-3",\n    "author": "Odoo Community Association (OCA)",\n'
        '    "depends": ["web"],\n    "data": [],\n    "installable": True,\n}\n'),
}


def build_oca_web(dest: Path) -> str:
    """The OCA web stand-in as a bare repository at dest; returns the 19.0 branch's commit id."""
    repo = pygit2.init_repository(str(dest), bare=True, initial_head="19.0")
    sig = pygit2.Signature("OCA Example", "example@odooops.dev", EPOCH - 86400, 0)
    oid = repo.create_commit("refs/heads/19.0", sig, sig, "web_environment_ribbon: 19.0 port\n",
                             _write_tree(repo, OCA_WEB_FILES), [])
    return str(oid)


def _write_tree(repo: pygit2.Repository, files: dict[str, str]) -> pygit2.Oid:
    index = pygit2.Index()
    for path, content in sorted(files.items()):
        index.add(pygit2.IndexEntry(path, repo.create_blob(content.encode()), FileMode.BLOB))
    return index.write_tree(repo)


def _ref(branch: str) -> str:
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def build(dest: Path, bare: bool = False, oca_dest: Path | None = None) -> dict[str, str]:
    """Create the repository at dest (must not exist or be empty); return ref -> commit id."""
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"error: {dest} exists and is not empty; pick a new directory")
    if oca_dest is not None:
        oca_commit = build_oca_web(oca_dest)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            oca_commit = build_oca_web(Path(tmp) / "oca-web.git")
    repo = pygit2.init_repository(str(dest), bare=bare, initial_head="main")
    tips: dict[str, tuple[pygit2.Oid, dict[str, str]]] = {}
    for n, (branch, start, message, changes) in enumerate(HISTORY):
        parent, files = tips[branch] if branch in tips else tips[start] if start else (None, {})
        files = {**files, **{k: v.replace("@OCA_WEB_COMMIT@", oca_commit) for k, v in changes.items()}}
        sig = pygit2.Signature(*AUTHOR, EPOCH + 3600 * n, TZ_OFFSET)
        oid = repo.create_commit(None, sig, sig, message + "\n", _write_tree(repo, files),
                                 [parent] if parent else [])
        tips[branch] = (oid, files)
    for branch, (oid, _files) in tips.items():
        repo.references.create(_ref(branch), oid, force=True)
    if not bare:
        repo.checkout_head(strategy=CheckoutStrategy.FORCE)
    return {_ref(b): str(oid) for b, (oid, _f) in sorted(tips.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dest", type=Path, help="directory to create")
    parser.add_argument("--bare", action="store_true", help="a bare repository (to serve as a remote)")
    parser.add_argument("--oca-dest", type=Path, help="also write the OCA web stand-in repository here")
    args = parser.parse_args(argv)
    for ref, oid in build(args.dest, args.bare, args.oca_dest).items():
        print(f"{oid} {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
