# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Two-Factor Authentication (TOTP)",
    "version": "1.0",
    "summary": "Stand-in of two-factor authentication",
    "depends": ["web"],
    "installable": True,
    "auto_install": True,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
