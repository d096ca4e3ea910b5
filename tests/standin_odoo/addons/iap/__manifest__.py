# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "In-App Purchases",
    "version": "1.1",
    "summary": "Stand-in of In-App Purchases",
    "depends": ["web", "base_setup"],
    "installable": True,
    "auto_install": False,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
