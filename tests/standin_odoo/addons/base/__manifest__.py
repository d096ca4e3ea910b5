# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Base",
    "version": "1.3",
    "category": "Hidden",
    "summary": "Stand-in of Odoo's kernel module: core tables the platform reads and writes",
    "depends": [],
    "data": [],
    "demo": ["data/demo.sql"],
    "installable": True,
    "auto_install": False,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
