# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Initial Setup Tools",
    "version": "1.0",
    "summary": "Stand-in of the initial setup tools",
    "depends": ["base", "web"],
    "installable": True,
    "auto_install": False,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
