"""Tests of the data layer (PostgreSQL executor, filestore, clone, neutralize, mask)."""
