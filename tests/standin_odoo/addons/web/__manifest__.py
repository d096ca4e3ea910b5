# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Web",
    "version": "1.0",
    "summary": "Stand-in of the web client module",
    "depends": ["base"],
    "installable": True,
    "auto_install": True,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
