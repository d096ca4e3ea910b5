# ruff: noqa: B018 -- an Odoo manifest is a bare dict literal
{
    "name": "Discuss",
    "version": "1.19",
    "summary": "Stand-in of Discuss: messages, outgoing mails, incoming mail servers",
    "depends": ["base", "base_setup", "bus", "web"],
    "installable": True,
    "auto_install": False,
    "author": "OdooOps stand-in",
    "license": "LGPL-3",
}
