# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Products",
    "version": "1.0",
    "summary": "Stand-in of Products",
    "depends": ["base", "mail"],
    "installable": True,
    "auto_install": False,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
