"""Odoo 19 stand-in server for tests and the offline demo (never part of the product)."""
