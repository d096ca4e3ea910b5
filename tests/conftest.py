"""Shared pytest fixtures: the real services come from tests/services.py (its __all__ lists them)."""

from tests.services import *  # noqa: F403
