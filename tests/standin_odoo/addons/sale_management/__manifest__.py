# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Sales Management",
    "version": "1.0",
    "summary": "Stand-in of Sales Management",
    "depends": ["sale"],
    "installable": True,
    "auto_install": False,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
