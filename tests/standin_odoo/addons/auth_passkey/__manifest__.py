# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Passkeys",
    "version": "1.0",
    "summary": "Stand-in of passkey login",
    "depends": ["base_setup", "web"],
    "installable": True,
    "auto_install": True,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
