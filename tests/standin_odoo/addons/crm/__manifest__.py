# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "CRM",
    "version": "1.0",
    "summary": "Stand-in of CRM",
    "depends": ["mail", "contacts"],
    "installable": True,
    "auto_install": False,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
