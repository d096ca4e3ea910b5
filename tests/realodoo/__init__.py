"""Tests against real Odoo 19 (image odoo:19.0): fixtures in conftest.py, HTTP helpers in odoo_http.py."""
