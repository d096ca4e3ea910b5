# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "IM Bus",
    "version": "1.0",
    "summary": "Stand-in of the bus module",
    "depends": ["base", "web"],
    "installable": True,
    "auto_install": True,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
