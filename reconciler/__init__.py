"""OdooOps: a GitOps reconciler that turns an Odoo project's Git repository into environments."""

__version__ = "0.1.0"
